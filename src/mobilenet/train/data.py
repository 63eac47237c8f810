"""Datasets for training and evaluation: the built-in digits, image folders, and
torchvision's CIFAR, each as (PIL RGB image, label) samples; bad files are found
once, reported by path and left out before any sampler sees the dataset, so data
order, resumption and distributed shards never depend on them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset

from ..images import IMAGE_EXTENSIONS, ImageError, load_image, verify_image

BUILTIN = ("digits", "cifar10", "cifar100")
# An image with fewer distinct colours than this is a graphic (a "photo not found"
# placeholder, an icon), not a photo; only left out where nearly every other image
# has more (PLACEHOLDER_SHARE), so datasets of graphics are kept whole.
PLACEHOLDER_COLOURS = 64
PLACEHOLDER_SHARE = 0.1
CACHE_LIMIT = 50_000  # image folders up to this size are decoded once into memory


class DataError(ValueError):
    """Data we cannot train on; the message says what was expected."""


@dataclass
class Skipped:
    path: str
    reason: str


@dataclass
class Samples(Dataset):
    """A list of (image, label) where an image is a PIL image or a path read on demand."""

    items: list[tuple[Image.Image | Path, int]]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[Image.Image | None, int]:
        img, label = self.items[index]
        if isinstance(img, Path):
            try:
                img = load_image(img)
            except ImageError as exc:  # a file that went bad after the scan
                _warn_once(str(exc))
                return None, label
        return img, label


_WARNED: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _WARNED:
        _WARNED.add(message)
        print(f"warning: skipped {message}", flush=True)


@dataclass
class DataSplit:
    train: Samples
    val: Samples
    classes: list[str]
    source: str
    skipped: list[Skipped] = field(default_factory=list)
    crop_pct: float = 0.875  # natural eval crop for this data
    hflip: bool = True  # whether mirrored images keep their label


def load_data(data: str, *, val_split: float = 0.2, seed: int = 0, root: str | None = None, strict: bool = False,
              cache_side: int | None = None, log: Callable[[str], None] = print) -> DataSplit:
    """``data``: "digits", "cifar10", "cifar100" or a folder (``train/`` + ``val/``, or
    class folders split by ``val_split``). ``cache_side``: decode folder images once,
    shrunk so their short side is this many pixels (training images only: validation reads
    its files as `mobilenet eval` does, see ``loader.EvalDataset``)."""
    if data == "digits":
        return _digits(val_split, seed)
    if data in ("cifar10", "cifar100"):
        return _cifar(data, root)
    path = Path(data)
    if not path.exists():
        raise DataError(f"--data {data}: no such folder (or use one of: {', '.join(BUILTIN)})")
    if not path.is_dir():
        raise DataError(f"--data {data}: is a file; expected a folder of class folders of images")
    if (path / "train").is_dir() and (path / "val").is_dir():
        classes = class_folders(path / "train")
        train_items = scan(path / "train", classes)
        val_items = scan(path / "val", classes, require_all=False)
    else:
        classes = class_folders(path)
        items = scan(path, classes)
        train_items, val_items = seeded_split(items, val_split, seed)
    split = DataSplit(Samples(train_items), Samples(val_items), classes, str(path))
    _check_images(split, strict=strict, cache_side=cache_side, log=log)
    return split


def class_folders(folder: Path) -> list[str]:
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(
            f"{folder}: no class folders; expected {folder}/<class>/<image> (or train/ and val/ holding them)"
        )
    return classes


def scan(folder: Path, classes: Sequence[str], require_all: bool = True) -> list[tuple[Path, int]]:
    items: list[tuple[Path, int]] = []
    for label, name in enumerate(classes):
        sub = folder / name
        files = sorted(p for p in sub.rglob("*") if p.is_file() and not p.name.startswith(".")) if sub.is_dir() else []
        if not files and (require_all or sub.is_dir()):
            raise DataError(f"{sub}: empty class folder; expected image files ({', '.join(IMAGE_EXTENSIONS)})")
        items += [(p, label) for p in files]
    return items


def seeded_split(items: list, fraction: float, seed: int) -> tuple[list, list]:
    """A stratified split: ``fraction`` of each class, chosen with ``seed``, held out."""
    g = torch.Generator().manual_seed(seed)
    train, val = [], []
    labels = sorted({label for _, label in items})
    for label in labels:
        members = [it for it in items if it[1] == label]
        order = torch.randperm(len(members), generator=g).tolist()
        n_val = max(1, round(len(members) * fraction)) if len(members) > 1 else 0
        val += [members[i] for i in order[:n_val]]
        train += [members[i] for i in order[n_val:]]
    return train, val


def _check_images(split: DataSplit, *, strict: bool, cache_side: int | None, log: Callable[[str], None]) -> None:
    """Open every file once (decoding it, and caching a training image, when ``cache_side``),
    leave out the unreadable ones and the placeholders, and say which."""
    parts = [split.train.items, split.val.items]
    everything = [item for part in parts for item in part]
    if not everything:
        raise DataError(f"{split.source}: no images found")
    decode = cache_side is not None and len(everything) <= CACHE_LIMIT

    n_train = len(split.train.items)

    def check(index: int) -> tuple[Image.Image | Path | None, str | None, int]:
        path = everything[index][0]
        try:
            if not decode:
                verify_image(path)  # header only: cheap for big folders
                return path, None, PLACEHOLDER_COLOURS
            img = load_image(path)
        except (ImageError, OSError, SyntaxError, ValueError) as exc:
            return None, str(exc).removeprefix(f"{path}: ") or "unreadable", 0
        colours = img.getcolors(PLACEHOLDER_COLOURS - 1)
        kept = shrink(img, cache_side) if index < n_train else path
        return kept, None, (len(colours) if colours else PLACEHOLDER_COLOURS)

    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        results = list(pool.map(check, range(len(everything))))
    few = [i for i, (img, _, n) in enumerate(results) if img is not None and n < PLACEHOLDER_COLOURS]
    placeholders = set(few) if len(few) <= PLACEHOLDER_SHARE * len(everything) else set()
    kept_parts, start = [], 0
    for part in parts:
        kept = []
        for j, (path, label) in enumerate(part):
            img, reason, colours = results[start + j]
            if img is None:
                split.skipped.append(Skipped(str(path), reason or "unreadable"))
            elif start + j in placeholders:
                split.skipped.append(Skipped(str(path), f"not a photo (only {colours} colours: a placeholder?)"))
            else:
                kept.append((img, label))
        kept_parts.append(kept)
        start += len(part)
    for s in split.skipped:
        if strict:
            raise DataError(f"{s.path}: {s.reason} (drop --strict to skip such files)")
        log(f"warning: skipped {s.path}: {s.reason}")
    split.train.items, split.val.items = kept_parts
    if not split.train.items:
        raise DataError(f"{split.source}: no readable training images")
    present = {label for _, label in split.train.items}
    for label, name in enumerate(split.classes):
        if label not in present:
            raise DataError(f"{split.source}: class {name!r} has no readable training images")


def shrink(img: Image.Image, side: int | None) -> Image.Image:
    """Downscale so the short side is ``side`` (never upscale): what the crops need."""
    if side is None or min(img.size) <= side:
        return img
    scale = side / min(img.size)
    size = (max(side, round(img.width * scale)), max(side, round(img.height * scale)))
    return img.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)


def _digits(val_split: float, seed: int) -> DataSplit:
    """scikit-learn's 1797 handwritten digits (8x8, 17 grey levels; UCI, Alpaydin &
    Kaynak 1998), shipped inside scikit-learn: training that needs no download."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DataError("the digits data set ships with scikit-learn: pip install 'mobilenet[train]'") from None
    digits = load_digits()
    images = (digits.images * (255.0 / 16.0)).round().clip(0, 255).astype("uint8")
    items = [(Image.fromarray(img, mode="L").convert("RGB"), int(t)) for img, t in zip(images, digits.target)]
    train, val = seeded_split(items, val_split, seed)
    return DataSplit(Samples(train), Samples(val), [str(i) for i in range(10)], "digits (scikit-learn)",
                     crop_pct=1.0, hflip=False)


def _cifar(name: str, root: str | None) -> DataSplit:
    import torchvision

    root = root or os.path.join(os.path.expanduser("~"), ".cache", "mobilenet", "data")
    cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
    try:
        train = cls(root, train=True, download=True)
        val = cls(root, train=False, download=True)
    except (OSError, RuntimeError) as exc:  # URLError is an OSError
        raise DataError(
            f"{name}: not in {root} and cannot be downloaded ({exc}); when offline, copy the "
            f"python-version archive into {root} or pass --data-root, or --data FOLDER"
        ) from None
    return DataSplit(Samples(list(zip(_pil(train.data), map(int, train.targets)))),
                     Samples(list(zip(_pil(val.data), map(int, val.targets)))),
                     list(train.classes), f"{name} ({root})", crop_pct=1.0)


def _pil(arrays) -> list[Image.Image]:
    return [Image.fromarray(a) for a in arrays]
