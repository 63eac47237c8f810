"""Evaluation: top-1, top-5, loss, per-class accuracy, confusion matrix, images/s.

Class ``c`` of the data is model output ``c + offset``: offset 1 for Google's
1001-output classifiers (output 0 is "background"), 0 otherwise. A flat folder of
``<key>_<anything>.<ext>`` files (ImageNet's ``<wnid>_<name>.JPEG``) is labelled by
its sorted keys with ``labels_from_filenames``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .images import Preprocess, find_images


@dataclass
class Tally:
    """Sums that add up across batches and processes."""

    num_classes: int
    loss_sum: float = 0.0
    top1: int = 0
    top5: int = 0
    count: int = 0
    confusion: torch.Tensor | None = None  # [true, predicted], data classes

    def add(self, logits: torch.Tensor, labels: torch.Tensor, offset: int = 0) -> None:
        logits = logits.float()
        self.loss_sum += F.cross_entropy(logits, labels + offset, reduction="sum").item()
        k = min(5, logits.shape[1])
        top = logits.topk(k, dim=1).indices - offset
        self.top1 += (top[:, 0] == labels).sum().item()
        self.top5 += (top == labels[:, None]).any(dim=1).sum().item()
        self.count += len(labels)
        pred = top[:, 0].clamp(-1, self.num_classes - 1).cpu()
        pred = torch.where(pred < 0, torch.full_like(pred, self.num_classes), pred)  # "background"
        if self.confusion is None:
            self.confusion = torch.zeros(self.num_classes, self.num_classes + 1, dtype=torch.long)
        flat = labels.cpu() * (self.num_classes + 1) + pred
        self.confusion += torch.bincount(flat, minlength=self.confusion.numel()).view_as(self.confusion)

    def merge(self, sums: list[float]) -> None:
        self.loss_sum, self.top1, self.top5, self.count = sums[0], int(sums[1]), int(sums[2]), int(sums[3])

    def sums(self) -> list[float]:
        return [self.loss_sum, float(self.top1), float(self.top5), float(self.count)]

    @property
    def acc(self) -> float:
        return self.top1 / max(1, self.count)

    @property
    def acc5(self) -> float:
        return self.top5 / max(1, self.count)

    @property
    def loss(self) -> float:
        return self.loss_sum / max(1, self.count)


def amp_dtype(name: str, device: torch.device) -> torch.dtype | None:
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "none": None}[name]


@torch.no_grad()
def tally(model: nn.Module, batches, num_classes: int, *, device: torch.device, offset: int = 0,
          amp: torch.dtype | None = None, channels_last: bool = True, on_batch: Callable[[int], None] | None = None) -> Tally:
    was_training = model.training
    model.eval()
    t = Tally(num_classes)
    for batch in batches:
        if batch is None:
            continue
        images, labels = batch
        images = images.to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
            logits = model(images)
        t.add(logits, labels.to(device), offset)
        if on_batch:
            on_batch(len(labels))
    model.train(was_training)
    return t


def output_offset(model_classes: int, data_classes: int, labels: list[str] | None) -> int:
    """0, or 1 where the model has one more output than the data, a "background" first."""
    if model_classes == data_classes:
        return 0
    if model_classes == data_classes + 1 and (labels is None or labels[0].lower() == "background"):
        return 1
    raise ValueError(
        f"the model has {model_classes} outputs but the data has {data_classes} classes; "
        "evaluate on data with the classes it was trained on"
    )


def filename_items(folder: str | os.PathLike) -> tuple[list[tuple[Path, int]], list[str]]:
    """(path, label) for a flat folder of ``<key>_<rest>.<ext>`` files; labels are
    indices into the sorted keys (ImageNet: sorted wnids = the standard order)."""
    files = find_images(folder)
    if not files:
        raise ValueError(f"{folder}: no images found")
    keys = [p.name.split("_", 1)[0] for p in files]
    classes = sorted(set(keys))
    index = {k: i for i, k in enumerate(classes)}
    return [(p, index[k]) for p, k in zip(files, keys)], classes


@dataclass
class EvalResult:
    top1: float
    top5: float
    loss: float
    images: int
    images_per_s: float
    seconds: float
    classes: list[str]
    per_class: list[dict[str, Any]] = field(default_factory=list)
    confusion: list[list[int]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    offset: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("top1", "top5", "loss", "images", "images_per_s", "seconds",
                                              "offset", "per_class", "skipped", "classes", "confusion")}


def evaluate(model: nn.Module, items: list, classes: list[str], *, preprocess: Preprocess, batch_size: int = 50,
             workers: int = 0, device: str | torch.device = "cpu", amp: str = "none",
             channels_last: bool = True) -> EvalResult:
    """Evaluate ``model`` on ``items`` ((PIL image or path, label) pairs). ``channels_last``
    runs it in that layout (faster on CPU) and gives it back in the layout it came in."""
    device = torch.device(device)
    model = model.to(device)
    restore = channels_last and _standard_layout(model)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    try:
        return _evaluate(model, items, classes, preprocess, batch_size, workers, device, amp, channels_last)
    finally:
        if restore:  # the caller's model leaves in the layout it came in
            model.to(memory_format=torch.contiguous_format)


def _standard_layout(model: nn.Module) -> bool:
    return all(p.is_contiguous() for p in model.parameters() if p.dim() == 4)


def _evaluate(model: nn.Module, items: list, classes: list[str], preprocess: Preprocess, batch_size: int,
              workers: int, device: torch.device, amp: str, channels_last: bool) -> EvalResult:
    from .train.loader import EvalDataset, collate
    from .train.data import Samples

    cfg = getattr(model, "pretrained_cfg", {}) or {}
    offset = output_offset(model.num_classes, len(classes), cfg.get("labels"))
    ds = EvalDataset(Samples(list(items)), preprocess)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, num_workers=workers, collate_fn=collate)
    from . import progress

    start = time.perf_counter()
    t = tally(model, loader, len(classes), device=device, offset=offset, amp=amp_dtype(amp, device),
              channels_last=channels_last, on_batch=progress.counter(len(items), "evaluated images"))
    seconds = time.perf_counter() - start
    cm = t.confusion if t.confusion is not None else torch.zeros(len(classes), len(classes) + 1, dtype=torch.long)
    per_class = []
    for i, name in enumerate(classes):
        n = int(cm[i].sum())
        per_class.append({"class": name, "images": n, "top1": (int(cm[i, i]) / n) if n else None})
    return EvalResult(t.acc, t.acc5, t.loss, t.count, t.count / max(seconds, 1e-9), seconds, list(classes),
                      per_class, cm[:, : len(classes)].tolist(), offset=offset)


def confusion_png(result: EvalResult, path: str | os.PathLike, title: str = "") -> Path:
    """The confusion matrix as a PNG (rows: true class, columns: predicted), atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .files import atomic_path

    cm = torch.tensor(result.confusion, dtype=torch.float64)
    rows = cm / cm.sum(1, keepdim=True).clamp(min=1)
    n = len(result.classes)
    size = min(12.0, 3.0 + 0.4 * n)
    fig, ax = plt.subplots(figsize=(size, size))
    im = ax.imshow(rows.numpy(), cmap="Blues", vmin=0, vmax=1)
    if n <= 30:
        ax.set_xticks(range(n), result.classes, rotation=90)
        ax.set_yticks(range(n), result.classes)
        if n <= 12:
            for i in range(n):
                for j in range(n):
                    if cm[i, j]:
                        ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=8,
                                color="white" if rows[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or f"top-1 {result.top1:.4f} on {result.images} images")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return path
