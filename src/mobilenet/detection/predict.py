"""Boxes on photos: a detector's detections on image files, drawn into PNGs."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..files import atomic_write_bytes
from ..images import load_image


@dataclass(frozen=True)
class Detection:
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in the image's pixels
    score: float
    label: int
    name: str


@dataclass(frozen=True)
class DetectionResult:
    image: str
    detections: tuple[Detection, ...]
    drawn: str | None = None  # the PNG written

    def to_dict(self) -> dict:
        return {"image": self.image, "drawn": self.drawn,
                "detections": [dict(d.__dict__, box=list(d.box)) for d in self.detections]}


def is_detector(model: nn.Module) -> bool:
    """Our detectors, and detector files loaded in their runtime (:mod:`.artifact`)."""
    return (hasattr(model, "decode") and hasattr(model, "forward_raw")) or getattr(model, "task", None) == "detection"


def label_name(labels: Sequence[str] | None, index: int) -> str:
    return labels[index] if labels and 0 <= index < len(labels) else f"class {index}"


@torch.no_grad()
def detect(model: nn.Module, images: Sequence[str | os.PathLike], score_min: float = 0.3) -> list[DetectionResult]:
    """Detections scoring at least ``score_min`` on each image file (any mode PIL reads)."""
    if not 0.0 <= score_min <= 1.0:
        raise ValueError(f"score_min must be in [0, 1], got {score_min}")
    labels = (getattr(model, "pretrained_cfg", None) or {}).get("labels")
    model = model.eval()
    results = []
    for path in images:
        pixels = torch.from_numpy(np.array(load_image(path))).permute(2, 0, 1)
        det = model([pixels.float() / 255])[0]
        keep = det["scores"] >= score_min
        found = tuple(Detection(tuple(round(v, 2) for v in box), round(score, 4), label, label_name(labels, label))
                      for box, score, label in zip(det["boxes"][keep].tolist(), det["scores"][keep].tolist(),
                                                   det["labels"][keep].tolist()))
        results.append(DetectionResult(str(path), found))
    return results


def draw(path: str | os.PathLike, result: DetectionResult, out: str | os.PathLike) -> Path:
    """``path`` with ``result``'s boxes and labels drawn, written as the PNG ``out`` (atomically)."""
    from PIL import Image
    from torchvision.utils import draw_bounding_boxes

    pixels = torch.from_numpy(np.array(load_image(path))).permute(2, 0, 1).contiguous()
    if result.detections:
        boxes = torch.tensor([d.box for d in result.detections], dtype=torch.float32)
        captions = [f"{d.name} {d.score:.2f}" for d in result.detections]
        width = max(2, round(max(pixels.shape[1:]) / 300))
        pixels = draw_bounding_boxes(pixels, boxes, captions, colors="red", width=width)
    buffer = io.BytesIO()
    Image.fromarray(pixels.permute(1, 2, 0).numpy()).save(buffer, format="PNG")
    out = Path(out)
    atomic_write_bytes(out, buffer.getvalue())
    return out
