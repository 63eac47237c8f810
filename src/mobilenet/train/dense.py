"""The dense tasks of the training loop (``--task detection|segmentation``).

The loop (:mod:`.loop`) stays one loop: a task object gives it the data, the model,
the augmented training set and its collation, the loss of a batch and the validation
metric; run folders, resumption, torchrun, metrics.csv and curves are the loop's.
Augmentation is torchvision's ``transforms.v2`` on (image, boxes) or (image, mask),
seeded per sample as the classifiers' is, so resumed and distributed runs see the
same batches as one uninterrupted run.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import Dataset

from ..images import IMAGENET_MEAN, IMAGENET_STD, Preprocess
from . import distributed as D
from .config import TrainConfig
from .data import DataError

IGNORE = 255


@dataclass
class DenseData:
    """What the loop reads from ``self.data``: the splits (task-specific items), the label
    names, where they came from."""

    train: Any
    val: Any
    classes: list[str]
    source: str
    skipped: list = field(default_factory=list)
    crop_pct: float = 1.0
    hflip: bool = True


class _Seeded(Dataset):
    """``make(index)`` under a generator seeded by (seed, epoch, index), as ``loader.Augmented``."""

    def __init__(self, n: int, make: Callable[[int], Any], seed: int) -> None:
        self.n, self.make, self.seed, self.epoch = n, make, seed, 0

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(((self.seed * 1_000_003 + self.epoch) * 1_000_033 + index) % (2**63))
            return self.make(index)


def _check_dense_options(cfg: TrainConfig) -> None:
    for flag, on in (("--head-only", cfg.head_only), ("--qat", cfg.qat), ("--auto-augment", cfg.auto_augment),
                     ("--random-erase", cfg.random_erase > 0), ("--label-smoothing", cfg.label_smoothing > 0)):
        if on:
            raise ValueError(f"{flag} is an option of --task classification, not {cfg.task}")


def build_dense_model(cfg: TrainConfig, num_classes: int) -> nn.Module:
    """``cfg.model`` with ``num_classes`` (background included), fresh, from dense weights
    (``--pretrained``) or on an ImageNet backbone (``--pretrained-backbone``)."""
    from ..registry import create_model, get_spec, list_models
    from .build import set_bn_momentum

    _check_dense_options(cfg)
    spec = get_spec(cfg.model)
    if spec.task != cfg.task:
        raise ValueError(f"--model {cfg.model} is a {spec.task} model; --task {cfg.task} trains one of: "
                         f"{', '.join(list_models(task=cfg.task))}")
    options: dict[str, Any] = {}
    if cfg.backbone:
        if "backbone" in spec.kwargs:
            raise ValueError(f"--backbone: {cfg.model} fixes its backbone ({spec.kwargs['backbone']}); give a generic "
                             f"head instead ({', '.join(n for n in list_models(task=cfg.task) if n.isalpha()) or 'none'})")
        options["backbone"] = cfg.backbone
    if cfg.task == "detection":
        options["size"] = cfg.resolution or spec.resolution
    if cfg.pretrained:
        if cfg.pretrained_backbone:
            raise ValueError("give --pretrained (weights of the whole dense model) or --pretrained-backbone, not both")
        model = create_model(cfg.model, pretrained=cfg.pretrained, **options)
        if model.num_classes != num_classes:
            model.reset_classifier(num_classes)
    else:
        if cfg.pretrained_backbone:
            options["pretrained_backbone"] = cfg.pretrained_backbone
        model = create_model(cfg.model, num_classes=num_classes, **options)
    set_bn_momentum(model, cfg.bn_momentum)
    return model


@torch.no_grad()
def calibrate_batchnorm(model: nn.Module, modules: list[nn.Module], forward: Callable[[Any], Any], batches) -> int:
    """Give each BatchNorm layer in ``modules`` the statistics of its input on ``batches``,
    rescaling its affine weights so that the eval-mode function is unchanged.

    A pretrained backbone's running statistics need not be those of its inputs: TFLite
    files fold them into the convolutions (running mean 0, variance 1), and new data has
    its own. In train mode BatchNorm normalises with the batch's statistics, so such a
    backbone computes something else in training than in evaluation, and the head learns
    on features that validation never sees. With (mean, var) measured in eval mode,
    (c - mean) / sqrt(var + eps) * w' + b' = (c - rm) / sqrt(rv + eps) * w + b for every c
    when w' = w * sqrt(var + eps) / sqrt(rv + eps) and b' = b + w * (mean - rm) / sqrt(rv + eps):
    the pretrained function, now the same in both modes. Returns the images used."""
    sums: dict[nn.Module, list] = {m: [0.0, 0.0, 0] for m in modules}

    def hook(m, inputs, _output):
        x = inputs[0].detach().double()
        dims = [d for d in range(x.dim()) if d != 1]
        s = sums[m]
        s[0] = s[0] + x.sum(dims)
        s[1] = s[1] + (x * x).sum(dims)
        s[2] += x.numel() // x.shape[1]

    handles = [m.register_forward_hook(hook) for m in modules]
    was_training = model.training
    model.eval()
    seen = 0
    try:
        for batch in batches:
            forward(batch)
            seen += len(batch[0])
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    for m, (total, squares, n) in sums.items():
        if not n or m.running_mean is None:
            continue
        mean = total / n
        var = (squares / n - mean * mean).clamp_min(0)
        old = (m.running_var.double() + m.eps).sqrt()
        new = (var + m.eps).sqrt()
        w = m.weight.double() if m.affine else torch.ones_like(mean)
        b = m.bias.double() if m.affine else torch.zeros_like(mean)
        if m.affine:
            m.weight.copy_(w * new / old)
            m.bias.copy_(b + w * (mean - m.running_mean.double()) / old)
        m.running_mean.copy_(mean)
        m.running_var.copy_(var)
    return seen


class _BackboneCalibration:
    """What both tasks do before the first step (they differ in ``collate`` and ``_features``)."""

    cfg: TrainConfig

    def calibrate(self, model: nn.Module, train_set: Dataset, device: torch.device) -> int:
        """A pretrained backbone's BatchNorm statistics, measured on (up to) 64 augmented
        training samples (see :func:`calibrate_batchnorm`); nothing without one."""
        if not self.cfg.pretrained_backbone:
            return 0
        modules = [m for m in model.backbone.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        n = min(64, len(train_set))
        batches = [self.collate([train_set[i] for i in range(start, min(n, start + 8))]) for start in range(0, n, 8)]
        return calibrate_batchnorm(model, modules, lambda b: self._features(model, b[0], device), batches)


    @staticmethod
    def freeze_backbone(model: nn.Module, frozen: bool) -> None:
        """``--freeze-backbone``: the backbone's weights get no gradient (so its backward pass is
        skipped) while ``frozen``; its BatchNorm layers stay as the rest of the model, normalising
        with batch statistics in training, so a random backbone is treated as a pretrained one."""
        for param in model.backbone.parameters():
            param.requires_grad_(not frozen)


def make_task(cfg: TrainConfig) -> DetectionTask | SegmentationTask:
    return {"detection": DetectionTask, "segmentation": SegmentationTask}[cfg.task](cfg)


def _list_collate(batch: list):
    batch = [b for b in batch if b is not None]
    return (list(b[0] for b in batch), list(b[1] for b in batch)) if batch else None


# -- detection ------------------------------------------------------------------------------------
def coco_splits(root: str | os.PathLike):
    """The train and val splits of a COCO-style folder: ``annotations/instances_<split>.json`` with
    ``images/<split>/``, split ``train2017``/``val2017`` (or ``train``/``val``)."""
    from ..detection.evaluate import CocoDetection

    root = Path(root)
    found = {}
    for kind in ("train", "val"):
        for name in (f"{kind}2017", kind):
            ann, images = root / "annotations" / f"instances_{name}.json", root / "images" / name
            if ann.is_file() and images.is_dir():
                found[kind] = (images, ann)
                break
    if len(found) < 2:
        raise DataError(f"--data {root}: expected COCO-JSON detection data: annotations/instances_train2017.json "
                        "with images/train2017/ and annotations/instances_val2017.json with images/val2017/ "
                        "(or train/val without 2017)")
    train = CocoDetection(*found["train"])
    val = CocoDetection(*found["val"], contiguous_labels=train.contiguous)
    if train.num_classes != val.num_classes:
        val = CocoDetection(*found["val"], contiguous_labels=True)
        train = CocoDetection(*found["train"], contiguous_labels=True)
    return train, val


class DetectionTask(_BackboneCalibration):
    """SSDLite on COCO-JSON boxes; validation: COCO box AP (pycocotools' COCOeval)."""

    name = "detection"
    metric, metric_label = "val_ap", "box AP"
    columns = ("epoch", "step", "lr", "train_loss", "val_ap", "val_ap50", "val_ap75", "images_per_s", "elapsed_s")

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg

    def load_data(self, log: Callable[[str], None]) -> DenseData:
        from ..detection.evaluate import DetectionDataError

        try:
            train, val = coco_splits(self.cfg.data)
        except DetectionDataError as exc:
            raise DataError(str(exc)) from None
        if train.num_classes != val.num_classes or train.label_names != val.label_names:
            raise DataError(f"--data {self.cfg.data}: the train and val JSON files list different categories")
        return DenseData(train, val, train.label_names, str(self.cfg.data))

    def build_model(self, data: DenseData) -> tuple[nn.Module, Preprocess]:
        model = build_dense_model(self.cfg, data.train.num_classes)
        return model, Preprocess(resolution=model.size, crop_pct=1.0, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))

    def train_set(self, data: DenseData, pre: Preprocess) -> Dataset:
        from torchvision import tv_tensors
        from torchvision.io import ImageReadMode, decode_image
        from torchvision.transforms import v2 as T

        from ..detection.evaluate import train_targets

        coco, size, flip = data.train, pre.resolution, self.cfg.hflip
        finish = T.Compose([T.RandomHorizontalFlip(flip), T.Resize((size, size), antialias=True),
                            T.SanitizeBoundingBoxes(), T.ToDtype(torch.float32, scale=True)])

        def make(i: int):
            image = tv_tensors.Image(decode_image(str(coco.image_path(i)), mode=ImageReadMode.RGB))
            t = train_targets(coco.target(i))
            target = {"boxes": tv_tensors.BoundingBoxes(t["boxes"], format="XYXY", canvas_size=image.shape[-2:]),
                      "labels": t["labels"]}
            if len(t["boxes"]):  # torchvision's "ssdlite" preset: SSD's IoU crop, then a flip
                image, target = T.RandomIoUCrop()(image, target)
            image, target = finish(image, target)
            return image.as_subclass(torch.Tensor), {"boxes": target["boxes"].as_subclass(torch.Tensor),
                                                     "labels": target["labels"]}

        return _Seeded(len(coco), make, self.cfg.seed)

    def val_set(self, data: DenseData, pre: Preprocess) -> Dataset:
        return data.val

    collate = staticmethod(_list_collate)
    val_collate = staticmethod(_list_collate)
    val_batch = 8

    @staticmethod
    def _features(model: nn.Module, images: list[torch.Tensor], device: torch.device):
        return model.forward_raw(model.preprocess([im.to(device) for im in images]))

    def loss(self, net: nn.Module, images: list[torch.Tensor], targets: list[dict]) -> tuple[torch.Tensor, float]:
        losses = net(torch.stack(images), targets)
        return losses["bbox_regression"] + losses["classification"], 0.0

    @torch.no_grad()
    def validate(self, model: nn.Module, loader, ctx: D.Context, data: DenseData) -> dict[str, Any]:
        from ..detection.evaluate import coco_map, to_coco_results

        model.eval()
        mapping = data.val.label_to_category()
        results, ids = [], []
        for batch in loader:
            if batch is None:
                continue
            images, targets = batch
            for target, det in zip(targets, model([img.to(ctx.device) for img in images])):
                ids.append(int(target["image_id"]))
                results += to_coco_results(ids[-1], {k: v.cpu() for k, v in det.items()}, mapping)
        gathered = D.gather(ctx, (ids, results))
        all_ids = [i for g in gathered for i in g[0]]
        all_results = [r for g in gathered for r in g[1]]
        m = coco_map(data.val.annotations, all_results, all_ids)
        return {"val_ap": m["AP"], "val_ap50": m["AP50"], "val_ap75": m["AP75"], "val_aps": m["APs"],
                "val_apm": m["APm"], "val_apl": m["APl"], "val_detections": len(all_results)}

    def log_line(self, row: dict[str, Any]) -> str:
        return f"train loss {row['train_loss']:.4f}  val box AP {row['val_ap']:.4f} AP50 {row['val_ap50']:.4f}"


# -- segmentation -------------------------------------------------------------------------------------
def segmentation_layout(root: str | os.PathLike, masks: str | None = None) -> tuple[dict[str, tuple[Path, Path]], list[str]]:
    """``images/<split>/`` with ``<masks>/<split>/`` (split train2017/val2017 or train/val) and
    the class names (``classes_<suffix>.txt`` for ``masks_<suffix>/``, or ``classes.txt``)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"--data {root}: no such folder")
    if masks is None:
        candidates = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name.startswith("masks"))
        masks = next((m for m in ("masks", "masks_voc") if m in candidates), None) or \
            (candidates[0] if len(candidates) == 1 else None)
        if masks is None:
            raise DataError(f"--data {root}: no masks/ folder" + (f"; several mask sets ({', '.join(candidates)}): "
                            "choose one with --masks" if candidates else " (class-index PNG masks, 255 = ignore)"))
    mask_root = root / masks
    if not mask_root.is_dir():
        raise DataError(f"--masks {masks}: no folder {mask_root}")
    splits = {}
    for kind in ("train", "val"):
        for name in (f"{kind}2017", kind):
            if (root / "images" / name).is_dir() and (mask_root / name).is_dir():
                splits[kind] = (root / "images" / name, mask_root / name)
                break
    if len(splits) < 2:
        raise DataError(f"--data {root}: expected images/train2017/ and images/val2017/ (or train/, val/) with "
                        f"their masks in {masks}/train2017/ and {masks}/val2017/")
    suffix = masks.removeprefix("masks").lstrip("_")
    for name in ([f"classes_{suffix}.txt"] if suffix else []) + ["classes.txt"]:
        if (root / name).is_file():
            classes = [c.strip() for c in (root / name).read_text().splitlines() if c.strip()]
            break
    else:
        raise DataError(f"--data {root}: no classes file (classes_{suffix or '<name>'}.txt or classes.txt: one class "
                        "name per line, class 0 first)")
    return splits, classes


def mask_pairs(images: Path, masks: Path) -> list[tuple[Path, Path]]:
    by_stem = {p.stem: p for p in masks.glob("*.png")}
    pairs = [(p, by_stem[p.stem]) for p in sorted(images.iterdir())
             if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp") and p.stem in by_stem]
    if not pairs:
        raise DataError(f"no image in {images} has a mask (<stem>.png) in {masks}")
    return pairs


def load_pair(image: Path, mask: Path, side: int | None, num_classes: int) -> tuple[Image.Image, Image.Image]:
    """The image (RGB) and its mask, both shrunk so their short side is ``side`` (nearest for the mask)."""
    img = Image.open(image).convert("RGB")
    m = Image.open(mask)
    if m.mode not in ("L", "P"):
        raise DataError(f"{mask}: a class-index mask must be a single-channel PNG, got mode {m.mode}")
    if m.size != img.size:
        raise DataError(f"{mask}: mask {m.size} and image {img.size} differ in size")
    values = np.unique(np.asarray(m))
    bad = values[(values >= num_classes) & (values != IGNORE)]
    if len(bad):
        raise DataError(f"{mask}: class {int(bad[0])} is outside 0..{num_classes - 1} of the classes file "
                        f"({IGNORE} = ignore)")
    if side is not None and min(img.size) != side:
        scale = side / min(img.size)
        size = (max(side, round(img.width * scale)), max(side, round(img.height * scale)))
        img = img.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
        m = m.resize(size, Image.Resampling.NEAREST)
    return img, m.convert("L")


def load_segmentation(root: str | os.PathLike, masks: str | None, split: str, side: int | None,
                      prepare: Callable[[Image.Image, Image.Image], Any] | None = None) -> tuple[list, list[str], str]:
    """The (image, mask) pairs of ``split`` (each through ``prepare`` when given), the class names
    and the masks folder."""
    splits, classes = segmentation_layout(root, masks)
    pairs = mask_pairs(*splits[split])

    def read(pair: tuple[Path, Path]):
        img, mask = load_pair(*pair, side, len(classes))
        return prepare(img, mask) if prepare else (img, mask)

    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        items = list(pool.map(read, pairs))
    return items, classes, str(splits[split][1])


class SegmentationTask(_BackboneCalibration):
    """A segmentation model on images + class-index masks; validation: mean IoU
    (:class:`mobilenet.segmentation.metrics.SegmentationMetrics`), 255 ignored."""

    name = "segmentation"
    metric, metric_label = "val_miou", "mIoU"
    columns = ("epoch", "step", "lr", "train_loss", "train_acc", "val_loss", "val_miou", "val_pixel_acc",
               "images_per_s", "elapsed_s")

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg

    def preprocess(self, model: nn.Module | None = None) -> Preprocess:
        """torchvision's SemanticSegmentation preset at the run's resolution, with the mean and std
        of ``model``'s weights: what validation and `mobilenet eval` of the run's weights use."""
        cfg = (getattr(model, "pretrained_cfg", None) or {}).get("preprocess") or {}
        mean, std = tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD))
        return Preprocess(resolution=self.cfg.resolution or 192, crop_pct=1.0, mean=mean, std=std, crop_mode="resize")

    def load_data(self, log: Callable[[str], None]) -> DenseData:
        from ..segmentation.data import eval_pair

        cfg, side = self.cfg, self.preprocess().resolution
        # decoded once: training crops from images a little larger than the crop; validation
        # images resized (8-bit) as `mobilenet eval` resizes them, normalised in val_set
        train, classes, source = load_segmentation(cfg.data, cfg.masks, "train", side * 8 // 7 + 1)
        val, _, _ = load_segmentation(cfg.data, cfg.masks, "val", None,
                                      prepare=partial(eval_pair, self.preprocess().resize_transform()))
        return DenseData(train, val, classes, f"{cfg.data} ({Path(source).parent.name})")

    def build_model(self, data: DenseData) -> tuple[nn.Module, Preprocess]:
        model = build_dense_model(self.cfg, len(data.classes))
        return model, self.preprocess(model)

    def train_set(self, data: DenseData, pre: Preprocess) -> Dataset:
        from torchvision import tv_tensors
        from torchvision.transforms import v2 as T

        steps = [T.RandomResizedCrop(pre.resolution, scale=self.cfg.crop_scale, antialias=True)]
        if self.cfg.hflip > 0:
            steps.append(T.RandomHorizontalFlip(self.cfg.hflip))
        steps += [T.ToDtype(torch.float32, scale=True), T.Normalize(pre.mean, pre.std)]
        transform = T.Compose(steps)
        items = data.train

        def make(i: int):
            img, mask = items[i]
            image = tv_tensors.Image(torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1))
            target = tv_tensors.Mask(torch.from_numpy(np.asarray(mask).astype(np.int64)))
            image, target = transform(image, target)
            return image.as_subclass(torch.Tensor), target.as_subclass(torch.Tensor)

        return _Seeded(len(items), make, self.cfg.seed)

    def val_set(self, data: DenseData, pre: Preprocess) -> Dataset:
        normalize, items = pre.normalize_transform(), data.val

        def make(i: int):
            img, mask = items[i]
            return normalize(img), mask.long()

        return _Seeded(len(items), make, 0)

    @staticmethod
    def collate(batch: list):
        batch = [b for b in batch if b is not None]
        return (torch.stack([b[0] for b in batch]), torch.stack([b[1] for b in batch])) if batch else None

    val_collate = collate
    val_batch = 1  # images keep their aspect ratio: sizes differ

    @staticmethod
    def _features(model: nn.Module, images: torch.Tensor, device: torch.device):
        return model(images.to(device))

    def loss(self, net: nn.Module, images: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, float]:
        logits = net(images).float()
        labelled = masks != IGNORE
        n = int(labelled.sum())
        # a batch with no labelled pixel contributes nothing (the mean of no pixels would be NaN)
        loss = F.cross_entropy(logits, masks, ignore_index=IGNORE, reduction="sum") / max(1, n)
        hits = float(((logits.argmax(1) == masks) & labelled).sum()) / max(1, n) * len(images)
        return loss, hits

    @torch.no_grad()
    def validate(self, model: nn.Module, loader, ctx: D.Context, data: DenseData) -> dict[str, Any]:
        from ..segmentation.metrics import SegmentationMetrics

        model.eval()
        metrics = SegmentationMetrics(len(data.classes), data.classes)
        loss_sum = pixels = 0.0
        for batch in loader:
            if batch is None:
                continue
            images, masks = (t.to(ctx.device) for t in batch)
            logits = model(images).float()
            loss_sum += float(F.cross_entropy(logits, masks, ignore_index=IGNORE, reduction="sum"))
            pixels += float((masks != IGNORE).sum())
            metrics.update(logits.argmax(1).cpu(), masks.cpu())
        summed = D.all_sum(ctx, [loss_sum, pixels, *metrics.confusion.flatten().double().tolist()])
        metrics.confusion = torch.tensor(summed[2:], dtype=torch.float64).round().long().view_as(metrics.confusion)
        m = metrics.compute()
        return {"val_loss": summed[0] / max(1.0, summed[1]), "val_miou": m["miou"] or 0.0,
                "val_pixel_acc": m["pixel_accuracy"] or 0.0, "val_per_class_iou": m["per_class_iou"]}

    def log_line(self, row: dict[str, Any]) -> str:
        return (f"train loss {row['train_loss']:.4f} pixel acc {row['train_acc']:.4f}  val loss {row['val_loss']:.4f} "
                f"mIoU {row['val_miou']:.4f} pixel acc {row['val_pixel_acc']:.4f}")
