"""Recipes of the dense tasks (``--task detection|segmentation``): each returns the
TrainConfig fields it sets; its docstring is the source it follows."""

from __future__ import annotations

from typing import Any

from .config import ConfigError


def _quick_detection() -> dict[str, Any]:
    """Ours, for a few hundred COCO-JSON images on a CPU in minutes: AdamW lr 2e-3 at batch 8,
    wd 1e-4, 1 warm-up epoch then cosine, 24 epochs at 320 px (SSDLite's input size).
    Augmentation as torchvision's "ssdlite" preset (RandomIoUCrop, horizontal flip), no
    photometric distortion."""
    return dict(optimizer="adamw", lr=2e-3, lr_batch=None, batch_size=8, weight_decay=1e-4, schedule="cosine",
                warmup_epochs=1.0, epochs=24, label_smoothing=0.0, bn_momentum=None, ema_decay=0.0, resolution=320,
                hflip=0.5)


def _quick_segmentation() -> dict[str, Any]:
    """Ours, for about a hundred masked images on a CPU in minutes: AdamW lr 2e-3 at batch 8,
    wd 1e-4, 1 warm-up epoch then cosine, 30 epochs, random-resized crops (25-100 %) at 192 px
    and horizontal flips; BatchNorm momentum 0.1."""
    return dict(optimizer="adamw", lr=2e-3, lr_batch=None, batch_size=8, weight_decay=1e-4, schedule="cosine",
                warmup_epochs=1.0, epochs=30, label_smoothing=0.0, bn_momentum=0.1, ema_decay=0.0, resolution=192,
                crop_scale=(0.25, 1.0), hflip=0.5)


def _torchvision_detection() -> dict[str, Any]:
    """torchvision's reference command for ssdlite320_mobilenet_v3_large (github.com/pytorch/vision,
    references/detection/README.md; 8 GPUs x 24 images): SGD momentum 0.9, lr 0.15 at batch 192,
    wd 4e-5, cosine annealing, 600 epochs, "ssdlite" augmentation, 320 px."""
    return dict(optimizer="sgd", momentum=0.9, lr=0.15, lr_batch=192, batch_size=24, weight_decay=4e-5,
                schedule="cosine", warmup_epochs=0.0, epochs=600, label_smoothing=0.0, bn_momentum=None,
                ema_decay=0.0, resolution=320, hflip=0.5)


def _torchvision_segmentation() -> dict[str, Any]:
    """torchvision's reference command for lraspp_mobilenet_v3_large (references/segmentation/
    README.md; 8 GPUs x 4 images; train.py defaults): SGD momentum 0.9, lr 0.01 at batch 32,
    wd 1e-6, 30 epochs, 520 px crops of images resized 0.5-2x. Its polynomial decay (power 0.9)
    is not one of our schedules: cosine here."""
    return dict(optimizer="sgd", momentum=0.9, lr=0.01, lr_batch=32, batch_size=32, weight_decay=1e-6,
                schedule="cosine", warmup_epochs=0.0, epochs=30, label_smoothing=0.0, bn_momentum=None,
                ema_decay=0.0, resolution=520, crop_scale=(0.25, 1.0), hflip=0.5)


DENSE_RECIPES = {
    ("detection", "quick"): _quick_detection,
    ("segmentation", "quick"): _quick_segmentation,
    ("detection", "torchvision"): _torchvision_detection,
    ("segmentation", "torchvision"): _torchvision_segmentation,
}


def dense_recipe(task: str, recipe: str) -> dict[str, Any]:
    if (task, recipe) not in DENSE_RECIPES:
        have = ", ".join(r for t, r in DENSE_RECIPES if t == task)
        raise ConfigError("recipe", f"{recipe!r} has no {task} version; --task {task} takes: {have}")
    return DENSE_RECIPES[task, recipe]()
