"""Top-k ImageNet predictions for image files, with the preprocessing and labels
the weights came with (``model.pretrained_cfg``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from PIL import Image
from torch import nn

from .images import Preprocess, load_image


@dataclass(frozen=True)
class Guess:
    index: int  # output index of the model
    label: str
    probability: float


@dataclass(frozen=True)
class Prediction:
    image: str
    top: tuple[Guess, ...]

    def to_dict(self) -> dict:
        return {"image": self.image, "top": [g.__dict__ for g in self.top]}


def load_model(weights: str | os.PathLike | None = None, name: str | None = None,
               pretrained: bool | str | None = None) -> nn.Module:
    """A model with weights: any weights file the commands take (see
    :mod:`mobilenet.weights.sources`: ours, a run folder, torchvision's or timm's
    checkpoint, TFLite, or a file ``mobilenet export`` wrote, run in its runtime), or
    ``name`` with an official tag."""
    from .registry import create_model
    from .weights.sources import load_weights_file

    if weights is not None:
        return load_weights_file(weights, name, runtime=True)
    if name is None:
        raise ValueError("give weights or a model name")
    if not pretrained:
        raise ValueError(f"{name} needs weights: pass pretrained=True, a tag, or a weights file")
    return create_model(name, pretrained=pretrained).eval()


def preprocess_of(model: nn.Module) -> Preprocess:
    cfg = getattr(model, "pretrained_cfg", None) or {}
    return Preprocess.from_dict(cfg["preprocess"]) if cfg.get("preprocess") else Preprocess()


def classify(model: nn.Module, images: Sequence[str | os.PathLike | Image.Image], k: int = 5,
             batch_size: int = 16) -> list[Prediction]:
    """The ``k`` most probable classes for each image (softmax over the logits)."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    pictures = [(str(img), load_image(img)) if not isinstance(img, Image.Image) else ("<image>", img.convert("RGB"))
                for img in images]
    transform = preprocess_of(model).transform()
    labels = (getattr(model, "pretrained_cfg", None) or {}).get("labels")
    model = model.eval()
    results: list[Prediction] = []
    for start in range(0, len(pictures), batch_size):
        chunk = pictures[start : start + batch_size]
        batch = torch.stack([transform(pic) for _, pic in chunk])
        with torch.no_grad():
            probs = model(batch).float().softmax(dim=1)
        values, indices = probs.topk(min(k, probs.shape[1]), dim=1)
        for (name, _), vals, idxs in zip(chunk, values.tolist(), indices.tolist()):
            top = tuple(Guess(i, labels[i] if labels and i < len(labels) else f"class {i}", p)
                        for i, p in zip(idxs, vals))
            results.append(Prediction(name, top))
    return results
