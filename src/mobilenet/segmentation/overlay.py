"""A segmentation model's classes on photos: per-image class shares, and the coloured
mask blended over the picture as a PNG."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..files import atomic_write_bytes
from ..images import load_image


def palette(n: int) -> np.ndarray:
    """Pascal VOC's colour map (bit-interleaved class index), for ``n`` classes; class 0 black."""
    colours = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        colours[i] = (r, g, b)
    return colours


@dataclass(frozen=True)
class SegmentationResult:
    image: str
    size: tuple[int, int]  # width, height
    shares: dict[str, float]  # class -> fraction of the image's pixels, largest first
    drawn: str | None = None
    mask: np.ndarray | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        return {"image": self.image, "width": self.size[0], "height": self.size[1], "drawn": self.drawn,
                "classes": self.shares}


@torch.no_grad()
def segment(model: nn.Module, images: Sequence[str | os.PathLike]) -> list[SegmentationResult]:
    """The class of every pixel of each image: preprocessed as torchvision's
    ``SemanticSegmentation`` preset (short side to the weights' resolution, no crop), the
    logits resized back to the image's own size."""
    from .data import preprocess_of

    cfg = getattr(model, "pretrained_cfg", None) or {}
    transform = preprocess_of(model).transform()
    labels = cfg.get("labels") or [f"class {i}" for i in range(model.num_classes)]
    model = model.eval()
    out = []
    for path in images:
        img = load_image(path)
        logits = F.interpolate(model(transform(img)[None]), size=(img.height, img.width), mode="bilinear",
                               align_corners=False)
        mask = logits.argmax(1)[0].numpy().astype(np.uint8)
        counts = np.bincount(mask.ravel(), minlength=len(labels))
        shares = {labels[i]: round(float(counts[i]) / mask.size, 4) for i in np.argsort(-counts) if counts[i]}
        out.append(SegmentationResult(str(path), img.size, shares, mask=mask))
    return out


def draw(path: str | os.PathLike, result: SegmentationResult, out: str | os.PathLike, alpha: float = 0.5) -> Path:
    """``path`` with ``result``'s mask in Pascal VOC colours blended over it (background left
    as it is), written as the PNG ``out`` (atomically)."""
    from PIL import Image

    pixels = np.array(load_image(path)).astype(np.float32)
    colours = palette(int(result.mask.max()) + 1)[result.mask].astype(np.float32)
    painted = result.mask > 0
    pixels[painted] = (1 - alpha) * pixels[painted] + alpha * colours[painted]
    buffer = io.BytesIO()
    Image.fromarray(pixels.round().clip(0, 255).astype(np.uint8)).save(buffer, format="PNG")
    out = Path(out)
    atomic_write_bytes(out, buffer.getvalue())
    return out
