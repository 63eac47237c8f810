"""What every runtime, the exporter and the quantizer share, below all of them:
the errors, the model's preprocessing, example and calibration batches, the
dynamic batch dimension and the metadata every written file carries."""

from __future__ import annotations

import dataclasses

import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..images import ImageError, Preprocess, find_images, load_image

DEFAULT_CALIB_IMAGES = 200
METADATA_NAME = "mobilenet"
ARTIFACT_FORMAT = "mobilenet-artifact"


class ExportError(ValueError):
    """An export request we cannot honour, or a file that failed its own check."""


class MissingExtra(ExportError):
    """A runtime's optional dependency is not installed; the message names the extra."""

    def __init__(self, runtime: str, module: str, extra: str | None) -> None:
        install = f"pip install 'mobilenet[{extra}]'" if extra else f"pip install {module}"
        super().__init__(f"the {runtime} runtime needs {module}, which is not installed: {install}")


class QuantizeError(ValueError):
    """A quantization request we cannot honour; the message says what to change."""


def model_preprocess(model: nn.Module) -> Preprocess:
    """The preprocessing a model's weights were trained with (224 px ImageNet defaults
    when it carries none)."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    if cfg.get("preprocess"):
        return Preprocess.from_dict(cfg["preprocess"])
    if getattr(model, "task", None) == "segmentation":  # torchvision's SemanticSegmentation preset
        return Preprocess(resolution=520, crop_pct=1.0, crop_mode="resize")
    return Preprocess()


def example_batch(model: nn.Module, resolution: int | None = None, batch: int = 2) -> torch.Tensor:
    """A random input of the model's resolution (from its preprocessing)."""
    resolution = resolution or model_preprocess(model).resolution
    in_chans = (getattr(model, "arch_args", None) or {}).get("input_channel", 3)
    return torch.randn(batch, in_chans, resolution, resolution)


def batch_dim(max_batch: int = 1024) -> dict[int, Any]:
    """Dynamic batch dimension for torch.export (example batches have 2 images, as a
    batch of 1 would be specialised)."""
    return {0: torch.export.Dim("batch", min=1, max=max_batch)}


def calibration_batches(
    calib: str | os.PathLike | Iterable[torch.Tensor],
    preprocess: Preprocess,
    *,
    limit: int = DEFAULT_CALIB_IMAGES,
    batch_size: int = 25,
    log: Callable[[str], None] | None = None,
) -> list[torch.Tensor]:
    """Calibration input as batches: ``calib`` is a folder of images (the first
    ``limit`` found, preprocessed as the weights expect; unreadable files are
    skipped, each reported to ``log``, by default a warning line on stderr) or
    already-made batches. Raises :class:`QuantizeError` when none."""
    if isinstance(calib, (str, os.PathLike)):
        folder = Path(calib)
        if not folder.is_dir():
            raise QuantizeError(f"calibration folder {folder} does not exist or is not a folder")
        from .. import progress

        files = find_images(folder)
        if preprocess.crop_mode == "resize":  # a batch has one size: segmentation images cropped square here
            from dataclasses import replace

            preprocess = replace(preprocess, crop_mode="resize_crop", crop_pct=1.0)
        transform = preprocess.transform()
        images, skipped = [], 0
        advance = progress.counter(min(limit, len(files)), f"read images from {folder}")
        for path in files:
            if len(images) >= limit:
                break
            try:
                images.append(transform(load_image(path)))
                advance()
            except ImageError as exc:
                skipped += 1
                (log or _warn)(f"warning: skipped {exc}")
        if not images:
            what = f"{skipped} unreadable files" if skipped else "no image files (.jpg, .png, ...)"
            raise QuantizeError(f"calibration folder {folder} holds {what}; point --calib at a folder of images")
        return [torch.stack(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
    batches = [b for b in calib]
    if not batches or not all(isinstance(b, torch.Tensor) and b.dim() == 4 and len(b) for b in batches):
        raise QuantizeError("calibration data must be a folder of images or a non-empty list of [N, C, H, W] batches")
    return batches


def _warn(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def artifact_metadata(model: nn.Module, *, fmt: str, int8: bool, backend: str | None, resolution: int,
                      max_batch: int, precision: str | None = None) -> dict[str, Any]:
    """What a written file says about itself: the model, its preprocessing and labels,
    and how it was made. ``precision`` (e.g. bf16) is only set where it differs from
    what the weights say."""
    from .. import __version__

    cfg = getattr(model, "pretrained_cfg", None) or {}
    meta = {
        "format": ARTIFACT_FORMAT,
        "mobilenet_version": __version__,
        "export_format": fmt,
        "model_name": getattr(model, "model_name", None),
        "arch": getattr(model, "arch", type(model).__name__) if hasattr(model, "arch_args") else None,
        "arch_args": getattr(model, "arch_args", None),
        "num_classes": getattr(model, "num_classes", None),
        # The file takes `resolution` px images: its preprocessing says so, whatever the weights came with.
        "preprocess": dataclasses.replace(model_preprocess(model), resolution=resolution).to_dict(),
        "labels": cfg.get("labels"),
        "int8": int8,
        "backend": backend,
        "resolution": resolution,
        "max_batch": max_batch,
    }
    if precision and precision != "fp32":
        meta["precision"] = precision
    return meta


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else repr(exc)
