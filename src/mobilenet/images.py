"""Reading images of any mode, and the preprocessing that weights were trained with."""

from __future__ import annotations

import contextlib
import math
import os
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torchvision.transforms import v2 as T

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
from .limits import MAX_RESOLUTION, MIN_RESOLUTION  # noqa: F401 (re-exported)


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class ImageError(ValueError):
    """A file that cannot be read as an image; the message names the file."""


def load_image(path: str | os.PathLike) -> Image.Image:
    """Open ``path`` as 8-bit RGB whatever its mode: grayscale, palette, RGBA/LA
    (alpha dropped), CMYK, 16-bit and 32-bit integer or float images."""
    path = Path(path)
    with _reading(path):
        with Image.open(path) as img:
            img.load()
            return to_rgb(img)


def verify_image(path: str | os.PathLike) -> None:
    """Check ``path`` is an image we can read without decoding it (header and
    structure only: cheap for big folders); raises :class:`ImageError` like
    :func:`load_image`."""
    path = Path(path)
    with _reading(path):
        with Image.open(path) as img:
            img.verify()


@contextlib.contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Every way PIL fails on a file, as one :class:`ImageError` naming it."""
    if path.exists() and not path.is_dir() and not path.is_file():  # PIL would wait on a FIFO forever
        raise ImageError(f"{path}: not a regular file (a pipe or a device), not an image")
    try:
        yield
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{path}: is a folder, not an image") from None
    except Image.DecompressionBombError as exc:
        # PIL refuses images over 2 x MAX_IMAGE_PIXELS before decoding (a 20000x20000 PNG
        # of a few kB would take 1.2 GB as RGB): a bad image like any other.
        found = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(found.group(1)):,} pixels" if found else "too many pixels"
        raise ImageError(f"{path}: {size}, over the {2 * Image.MAX_IMAGE_PIXELS:,} an image may have "
                         "(a decompression bomb?); resize it to use it") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        reason = "not an image PIL can read" if isinstance(exc, UnidentifiedImageError) else str(exc)
        raise ImageError(f"{path}: {reason}") from None


def to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        img = Image.fromarray(arr, mode="L")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    return img.convert("RGB")


@dataclass(frozen=True)
class Preprocess:
    """How a model's weights expect images: resize, crop and normalisation.

    ``crop_mode="resize_crop"`` is torchvision's and timm's eval transform (resize
    the short side to ``resolution / crop_pct``, centre crop). ``"crop_resize"`` is
    TensorFlow's (centre crop ``crop_pct`` of each side, resize to a square), which
    Google's TFLite models were evaluated with. ``"resize"`` is torchvision's
    ``SemanticSegmentation`` preset: the short side resized to ``resolution`` (antialiased,
    on the 8-bit image), nothing cropped, so a mask covers the whole picture.
    """

    resolution: int = 224
    crop_pct: float = 0.875
    interpolation: Literal["bilinear", "bicubic", "nearest"] = "bilinear"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    crop_mode: Literal["resize_crop", "crop_resize", "resize"] = "resize_crop"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Preprocess:
        """From a file's metadata: every field checked like user input (ValueError)."""
        if not isinstance(d, dict):
            raise ValueError(f"preprocess is a {type(d).__name__}, not an object")
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"preprocess has unknown field(s) {', '.join(map(str, unknown))}")
        d = dict(d)
        for key in ("mean", "std"):
            if key in d:
                value = d[key]
                if not (isinstance(value, (list, tuple)) and len(value) == 3 and all(_finite(v) for v in value)):
                    raise ValueError(f"preprocess.{key} must be 3 finite numbers, got {value!r}")
                d[key] = tuple(float(v) for v in value)
        if any(v <= 0 for v in d.get("std", (1.0,))):
            raise ValueError(f"preprocess.std must be positive, got {d['std']!r}")
        res = d.get("resolution", cls.resolution)
        if not (isinstance(res, int) and not isinstance(res, bool) and MIN_RESOLUTION <= res <= MAX_RESOLUTION):
            raise ValueError(f"preprocess.resolution must be an integer in {MIN_RESOLUTION}..{MAX_RESOLUTION}, "
                             f"got {res!r}")
        crop = d.get("crop_pct", cls.crop_pct)
        if not (_finite(crop) and 0 < crop <= 1):
            raise ValueError(f"preprocess.crop_pct must be in (0, 1], got {crop!r}")
        for key, choices in (("interpolation", ("bilinear", "bicubic", "nearest")),
                             ("crop_mode", ("resize_crop", "crop_resize", "resize"))):
            if d.get(key, getattr(cls, key)) not in choices:
                raise ValueError(f"preprocess.{key} must be one of {', '.join(choices)}, got {d[key]!r}")
        return cls(**d)

    def transform(self) -> T.Compose:
        """PIL image -> normalised float tensor [3, resolution, resolution] ([3, H, W] with
        min(H, W) = resolution for ``crop_mode="resize"``): ``resize_transform()`` then
        ``normalize_transform()``."""
        return T.Compose([*self.resize_transform().transforms, *self.normalize_transform().transforms])

    def resize_transform(self) -> T.Compose:
        """PIL image -> the resized and cropped 8-bit tensor: the part of ``transform()`` that
        validation, which sees the same images every epoch, does once and keeps."""
        interp = getattr(T.InterpolationMode, self.interpolation.upper())
        if self.crop_mode == "resize":
            geometry = [_ShortSide(self.resolution, interp)]
        elif self.crop_mode == "crop_resize":
            geometry = [_CentralFraction(self.crop_pct), T.Resize((self.resolution, self.resolution), interp, antialias=False)]
        else:
            geometry = [T.Resize(int(self.resolution / self.crop_pct), interp, antialias=True), T.CenterCrop(self.resolution)]
        return T.Compose([T.PILToTensor(), *geometry])

    def normalize_transform(self) -> T.Compose:
        """8-bit tensor -> normalised float tensor: the rest of ``transform()``."""
        return T.Compose([T.ToDtype(torch.float32, scale=True), T.Normalize(self.mean, self.std)])


class _ShortSide(torch.nn.Module):
    """torchvision's SemanticSegmentation resize, through the same (v1) function: v2's
    Resize has its own uint8 kernel, which rounds some pixels one level apart."""

    def __init__(self, size: int, interpolation: T.InterpolationMode) -> None:
        super().__init__()
        self.size, self.interpolation = size, interpolation

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        from torchvision.transforms import functional as F1

        return F1.resize(img, [self.size], interpolation=self.interpolation, antialias=True)


class _CentralFraction(torch.nn.Module):
    """tf.image.central_crop: keep the central ``fraction`` of each side."""

    def __init__(self, fraction: float) -> None:
        super().__init__()
        self.fraction = fraction

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        h, w = img.shape[-2:]
        top = int((h - h * self.fraction) / 2)
        left = int((w - w * self.fraction) / 2)
        return img[..., top : h - top, left : w - left]


def imagenet_labels() -> list[str]:
    """The 1000 ImageNet class names in the standard (sorted wnid) order."""
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    return list(_IMAGENET_CATEGORIES)


def find_images(folder: str | os.PathLike) -> list[Path]:
    """Image files under ``folder`` (recursively, by extension), sorted."""
    folder = Path(folder)
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
