"""Segmentation data: images with class-index masks (one uint8 PNG per image, same
file stem and size, 255 = ignore), as ``../shared/data/coco128`` and Pascal VOC
(``SegmentationClass``) store them."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..images import IMAGENET_MEAN, IMAGENET_STD

IGNORE_INDEX = 255
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


class SegmentationFolder(torch.utils.data.Dataset):
    """Pairs ``images/<stem>.jpg`` with ``masks/<stem>.png``; images without a mask are
    left out (coco128 has masks for 100 of its 128 images per split).

    Each item is ``(image [3, H, W] normalised float, mask [H, W] int64)``. ``size``
    (an int: the short side; a pair: (H, W)) resizes both, bilinear for the image and
    nearest for the mask, so labels are never blended; None keeps the file's size.
    """

    def __init__(self, images: str | os.PathLike, masks: str | os.PathLike, *, size: int | tuple[int, int] | None = None,
                 mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD,
                 num_classes: int | None = None) -> None:
        self.images_dir, self.masks_dir = Path(images), Path(masks)
        for what, folder in (("images", self.images_dir), ("masks", self.masks_dir)):
            if not folder.is_dir():
                raise FileNotFoundError(f"{what} folder {folder} does not exist")
        masks_by_stem = {p.stem: p for p in self.masks_dir.glob("*.png")}
        self.pairs = [(p, masks_by_stem[p.stem]) for p in sorted(self.images_dir.iterdir())
                      if p.suffix.lower() in IMAGE_SUFFIXES and p.stem in masks_by_stem]
        if not self.pairs:
            raise ValueError(f"no image in {self.images_dir} has a mask (<stem>.png) in {self.masks_dir}")
        self.size, self.num_classes = size, num_classes
        self.mean = torch.tensor(mean).view(3, 1, 1)
        self.std = torch.tensor(std).view(3, 1, 1)

    @classmethod
    def coco128(cls, root: str | os.PathLike, split: str = "val2017", labels: str = "voc", **kwargs) -> SegmentationFolder:
        """``root/images/<split>`` with ``root/masks_<labels>/<split>`` (``labels``: voc or coco133)."""
        root = Path(root)
        return cls(root / "images" / split, root / f"masks_{labels}" / split, **kwargs)

    def __len__(self) -> int:
        return len(self.pairs)

    def _size(self, h: int, w: int) -> tuple[int, int] | None:
        if self.size is None:
            return None
        if isinstance(self.size, int):
            scale = self.size / min(h, w)
            return round(h * scale), round(w * scale)
        return tuple(self.size)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image_path, mask_path = self.pairs[index]
        image = torch.from_numpy(np.asarray(Image.open(image_path).convert("RGB"), dtype=np.uint8).copy())
        mask = Image.open(mask_path)
        if mask.mode not in ("L", "P"):
            raise ValueError(f"{mask_path}: a class-index mask must be a single-channel PNG, got mode {mask.mode}")
        target = torch.from_numpy(np.asarray(mask, dtype=np.uint8).astype(np.int64))
        if target.shape != image.shape[:2]:
            raise ValueError(f"{mask_path}: mask {tuple(target.shape)} and image {tuple(image.shape[:2])} differ in size")
        if self.num_classes is not None:
            bad = target[(target >= self.num_classes) & (target != IGNORE_INDEX)]
            if bad.numel():
                raise ValueError(f"{mask_path}: class {int(bad[0])} is outside 0..{self.num_classes - 1} (255 = ignore)")
        x = image.permute(2, 0, 1).float().div(255)
        new = self._size(*target.shape)
        if new is not None:
            x = F.interpolate(x[None], size=new, mode="bilinear", align_corners=False, antialias=True)[0]
            target = F.interpolate(target[None, None].float(), size=new, mode="nearest")[0, 0].long()
        return (x - self.mean) / self.std, target


def preprocess_of(model: torch.nn.Module, resolution: int | None = None):
    """How ``model``'s weights expect images, as torchvision's ``SemanticSegmentation``
    preset: the short side to ``resolution`` (default: the weights' own, else 520), no crop.
    (Files written before ``crop_mode="resize"`` existed say resize_crop with crop_pct 1.0,
    which was meant the same way.)"""
    from dataclasses import replace

    from ..images import Preprocess

    cfg = getattr(model, "pretrained_cfg", None) or {}
    pre = Preprocess.from_dict(cfg["preprocess"]) if cfg.get("preprocess") else Preprocess(resolution=520)
    return replace(pre, crop_mode="resize", crop_pct=1.0, resolution=resolution or pre.resolution)


def resize_mask(mask: Image.Image, size: tuple[int, int]) -> torch.Tensor:
    """A class-index mask (PIL) at ``size`` (H, W), nearest, as torchvision's references resize
    the target to the transformed image's size; uint8 [H, W]."""
    if mask.size != (size[1], size[0]):
        mask = mask.resize((size[1], size[0]), Image.Resampling.NEAREST)
    return torch.from_numpy(np.array(mask, dtype=np.uint8))


def eval_pair(resize, image: Image.Image, mask: Image.Image) -> tuple[torch.Tensor, torch.Tensor]:
    """What `mobilenet eval` and training's validation score, before normalisation: the image
    through ``resize`` (a ``Preprocess.resize_transform()``: torchvision's SemanticSegmentation
    preset, uint8 [3, H, W]) and its mask at that size (``resize_mask``)."""
    x = resize(image)
    return x, resize_mask(mask, tuple(x.shape[-2:]))
