"""``mobilenet eval`` of a dense model: COCO box AP of a detector (pycocotools' COCOeval
through :mod:`mobilenet.detection.evaluate`), mean and per-class IoU of a segmentation
model (:class:`mobilenet.segmentation.metrics.SegmentationMetrics`), on the same data
layouts training reads (:mod:`.dense`)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .data import DataError

SPLITS = {"val": "val", "train": "train"}


def dense_task(model: nn.Module) -> str | None:
    """"detection", "segmentation", or None for a classifier."""
    from ..detection.predict import is_detector
    from ..segmentation import SegmentationModel

    if is_detector(model):
        return "detection"
    if isinstance(model, SegmentationModel) or getattr(model, "task", None) == "segmentation":
        return "segmentation"
    return None


def coco_split(root: str | os.PathLike, split: str):
    from ..detection.evaluate import CocoDetection, DetectionDataError

    root = Path(root)
    for name in (f"{split}2017", split):
        ann, images = root / "annotations" / f"instances_{name}.json", root / "images" / name
        if ann.is_file() and images.is_dir():
            try:
                return CocoDetection(images, ann)
            except DetectionDataError as exc:
                raise DataError(str(exc)) from None
    raise DataError(f"--data {root}: expected COCO-JSON detection data: annotations/instances_{split}2017.json with "
                    f"images/{split}2017/ (or {split} without 2017)")


def evaluate_detection(model: nn.Module, data: str, split: str = "val", batch_size: int = 8,
                       progress: bool = True) -> dict[str, Any]:
    """COCO box AP, AP50, AP75 and AP small/medium/large of ``model`` on ``data``'s ``split``."""
    from ..detection.evaluate import evaluate_detector

    dataset = coco_split(data, split)
    if model.num_classes is not None and dataset.num_classes > model.num_classes:
        raise DataError(f"--data {data}: its labels go up to {dataset.num_classes - 1}, the detector has "
                        f"{model.num_classes} classes (background included)")
    start = time.perf_counter()
    result = evaluate_detector(model, dataset, batch_size=batch_size, progress=progress)
    seconds = time.perf_counter() - start
    return {"task": "detection", **result, "annotations": str(dataset.annotations),
            "images_per_s": result["images"] / max(seconds, 1e-9)}


@torch.no_grad()
def evaluate_segmentation(model: nn.Module, data: str, split: str = "val", masks: str | None = None,
                          resolution: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Mean IoU, pixel accuracy and per-class IoU of ``model`` on ``data``'s ``split``, each image
    preprocessed as torchvision's ``SemanticSegmentation`` preset (short side to ``resolution``,
    default the weights' own; no crop) and its mask resized to it (nearest), as torchvision's
    reference evaluation does: every pixel of the image is scored."""
    from functools import partial

    from ..segmentation.data import eval_pair, preprocess_of
    from ..segmentation.metrics import SegmentationMetrics
    from .dense import load_segmentation

    pre = preprocess_of(model, resolution)
    normalize = pre.normalize_transform()
    items, classes, source = load_segmentation(data, masks, split, None, prepare=partial(eval_pair, pre.resize_transform()))
    if len(classes) != model.num_classes:
        raise DataError(f"--data {data}: {len(classes)} classes in its classes file, the model has {model.num_classes}")
    metrics = SegmentationMetrics(len(classes), classes)
    model.eval()
    start = time.perf_counter()
    for i, (img, mask) in enumerate(items):
        logits = model(normalize(img)[None])
        metrics.update(logits.argmax(1), mask.long()[None])
        if progress:
            print(f"\revaluated {i + 1}/{len(items)} images", end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    seconds = time.perf_counter() - start
    m = metrics.compute()
    return {"task": "segmentation", "images": len(items), "resolution": pre.resolution, "masks": source, **m,
            "images_per_s": len(items) / max(seconds, 1e-9)}
