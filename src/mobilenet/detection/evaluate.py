"""COCO-JSON detection data and COCO box mAP.

The metric is pycocotools' ``COCOeval`` (or faster-coco-eval's drop-in copy when
pycocotools is missing), never our own: AP over IoU 0.50:0.95, AP50, AP75 and AP
for small, medium and large objects, as COCO defines them.

Labels: a detector's label is the COCO ``category_id`` itself when it has room for
every id (torchvision's 91-way COCO models, ids 1..90); a detector trained on a
dataset's own classes uses contiguous labels 1..K in the order of the JSON's
``categories`` (see :meth:`CocoDetection.label_to_category`).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl")  # COCOeval.stats[0:6]


class DetectionDataError(ValueError):
    """A detection dataset we cannot read; the message names the file and what to do."""


def _coco_api():
    """pycocotools' COCO and COCOeval, or faster-coco-eval's copies of them."""
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ModuleNotFoundError:
        try:
            from faster_coco_eval import COCO, COCOeval_faster as COCOeval
        except ModuleNotFoundError:
            raise DetectionDataError("COCO mAP needs pycocotools (or faster-coco-eval): "
                                     "pip install 'mobilenet[detection]'") from None
    return COCO, COCOeval


class CocoDetection(torch.utils.data.Dataset):
    """Images and boxes of a COCO-JSON annotation file.

    ``dataset[i]`` is ``(image, target)``: ``image`` a ``[3, H, W]`` float tensor in
    [0, 1]; ``target`` has ``boxes`` (x1, y1, x2, y2 pixels), ``labels`` (see the
    module doc), ``image_id``, ``iscrowd`` and ``area``. Crowd boxes are kept in
    ``target`` (the evaluation ignores them as COCO does), and ``train_targets``
    drops them and degenerate boxes for a loss.
    """

    def __init__(self, images: str | os.PathLike, annotations: str | os.PathLike, *,
                 contiguous_labels: bool | None = None) -> None:
        self.images, self.annotations = Path(images), Path(annotations)
        if not self.annotations.is_file():
            raise DetectionDataError(f"{self.annotations}: no such annotation file (COCO JSON expected)")
        if not self.images.is_dir():
            raise DetectionDataError(f"{self.images}: no such image folder")
        try:
            data = json.loads(self.annotations.read_text())
            self.records = sorted(data["images"], key=lambda r: r["id"])
            self.categories = sorted(data["categories"], key=lambda c: c["id"])
            anns = data["annotations"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise DetectionDataError(f"{self.annotations}: not COCO detection JSON ({exc!r}); it needs "
                                     "'images', 'annotations' and 'categories'") from None
        self.by_image: dict[int, list[dict]] = {r["id"]: [] for r in self.records}
        for a in anns:
            self.by_image.setdefault(a["image_id"], []).append(a)
        ids = [c["id"] for c in self.categories]
        # COCO's own ids when they are small enough to be labels (torchvision's convention).
        self.contiguous = (max(ids) > 90) if contiguous_labels is None else contiguous_labels
        self._cat_to_label = {c: (i + 1 if self.contiguous else c) for i, c in enumerate(ids)}

    def __len__(self) -> int:
        return len(self.records)

    @property
    def num_classes(self) -> int:
        """Classes a detector needs for these labels, background included."""
        return max(self._cat_to_label.values()) + 1

    @property
    def label_names(self) -> list[str]:
        names = ["__background__"] + ["N/A"] * (self.num_classes - 1)
        for c in self.categories:
            names[self._cat_to_label[c["id"]]] = c["name"]
        return names

    def label_to_category(self) -> dict[int, int]:
        return {label: cat for cat, label in self._cat_to_label.items()}

    def image_path(self, index: int) -> Path:
        return self.images / self.records[index]["file_name"]

    def target(self, index: int) -> dict[str, torch.Tensor]:
        record = self.records[index]
        anns = self.by_image.get(record["id"], [])
        boxes = torch.tensor([a["bbox"] for a in anns], dtype=torch.float32).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]  # xywh -> xyxy
        return {
            "boxes": boxes,
            "labels": torch.tensor([self._cat_to_label[a["category_id"]] for a in anns], dtype=torch.int64),
            "image_id": torch.tensor(record["id"]),
            "iscrowd": torch.tensor([int(a.get("iscrowd", 0)) for a in anns], dtype=torch.int64),
            "area": torch.tensor([float(a.get("area", 0.0)) for a in anns], dtype=torch.float32),
        }

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        from torchvision.io import ImageReadMode, decode_image

        path = self.image_path(index)
        try:
            image = decode_image(str(path), mode=ImageReadMode.RGB)
        except (RuntimeError, OSError) as exc:
            raise DetectionDataError(f"{path}: cannot read it as an image ({str(exc).splitlines()[0]})") from None
        return image.float() / 255, self.target(index)


def train_targets(target: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The boxes a loss may use: no crowd regions, no empty boxes."""
    keep = (target["iscrowd"] == 0) & (target["boxes"][:, 2:] > target["boxes"][:, :2]).all(1)
    return {"boxes": target["boxes"][keep], "labels": target["labels"][keep]}


def coco_split(root: str | os.PathLike, split: str = "val2017", **kwargs: Any) -> CocoDetection:
    """``root/images/<split>`` with ``root/annotations/instances_<split>.json`` (COCO's
    own layout, and coco128's)."""
    root = Path(root)
    return CocoDetection(root / "images" / split, root / "annotations" / f"instances_{split}.json", **kwargs)


def to_coco_results(image_id: int, detections: dict[str, torch.Tensor],
                    label_to_category: dict[int, int] | None = None) -> list[dict]:
    """One image's detections as COCO result records (xywh boxes)."""
    boxes = detections["boxes"].detach().cpu().double()
    boxes[:, 2:] -= boxes[:, :2]
    out = []
    for box, score, label in zip(boxes.tolist(), detections["scores"].tolist(), detections["labels"].tolist()):
        category = label_to_category.get(label) if label_to_category is not None else label
        if category is not None:
            out.append({"image_id": int(image_id), "category_id": int(category), "bbox": box, "score": float(score)})
    return out


def coco_map(annotations: str | os.PathLike, results: list[dict], image_ids: Iterable[int] | None = None,
             ) -> dict[str, float]:
    """COCO box AP of ``results`` against ``annotations`` (pycocotools' COCOeval)."""
    COCO, COCOeval = _coco_api()
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(annotations))
        if not results:  # loadRes cannot take an empty list: nothing detected scores 0
            return {m: 0.0 for m in METRICS}
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, "bbox")
        if image_ids is not None:
            ev.params.imgIds = sorted(int(i) for i in image_ids)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {m: max(0.0, float(v)) for m, v in zip(METRICS, ev.stats[:6])}  # -1 (no such objects) -> 0


@torch.no_grad()
def evaluate_detector(model: nn.Module | Callable, dataset: CocoDetection, *, batch_size: int = 8,
                      limit: int | None = None, label_to_category: dict[int, int] | None = None,
                      progress: bool = False) -> dict[str, Any]:
    """Run ``model`` (a list of [3, H, W] images -> one dict of boxes/scores/labels per
    image, in each image's pixels) over ``dataset`` and score it with COCO's evaluator.
    ``label_to_category`` defaults to the dataset's own mapping."""
    if isinstance(model, nn.Module):
        model.eval()
    mapping = label_to_category if label_to_category is not None else dataset.label_to_category()
    n = len(dataset) if limit is None else min(limit, len(dataset))
    results: list[dict] = []
    ids: list[int] = []
    for start in range(0, n, batch_size):
        items = [dataset[i] for i in range(start, min(start + batch_size, n))]
        outputs = model([img for img, _ in items])
        for (_, target), det in zip(items, outputs):
            ids.append(int(target["image_id"]))
            results += to_coco_results(ids[-1], det, mapping)
        if progress:
            print(f"\revaluated {min(start + batch_size, n)}/{n} images", end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    metrics = coco_map(dataset.annotations, results, ids)
    return {**metrics, "images": n, "detections": len(results)}


def ground_truth_as_detections(dataset: CocoDetection, indices: Sequence[int] | None = None) -> list[dict]:
    """The dataset's own boxes as results with score 1 (a check of the evaluation: AP 1.0)."""
    out = []
    for i in indices if indices is not None else range(len(dataset)):
        t = dataset.target(i)
        det = {"boxes": t["boxes"], "scores": torch.ones(len(t["labels"])), "labels": t["labels"]}
        out += to_coco_results(int(t["image_id"]), det, dataset.label_to_category())
    return out
