"""Mean IoU with per-class IoU and pixel accuracy, from a confusion matrix
accumulated over batches (pixels labelled 255 are ignored)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .data import IGNORE_INDEX


class SegmentationMetrics:
    """``update(logits_or_labels, target)`` per batch, then ``compute()``.

    IoU of class c = TP / (TP + FP + FN) over all pixels seen. The mean is over the
    classes that occur in the targets or the predictions (a class absent from both
    has no IoU, shown as None), which on a small set such as coco128, where cow never
    appears, is the only mean that means anything.
    """

    def __init__(self, num_classes: int, labels: Sequence[str] | None = None, ignore_index: int = IGNORE_INDEX) -> None:
        if labels is not None and len(labels) != num_classes:
            raise ValueError(f"{len(labels)} labels for {num_classes} classes")
        self.num_classes, self.labels, self.ignore_index = num_classes, labels, ignore_index
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)  # [target, prediction]

    @torch.no_grad()
    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        if prediction.dim() == target.dim() + 1:  # logits [N, C, H, W]
            prediction = prediction.argmax(1)
        if prediction.shape != target.shape:
            raise ValueError(f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ in shape")
        keep = target != self.ignore_index
        t, p = target[keep].long(), prediction[keep].long()
        if t.numel() and (int(t.max()) >= self.num_classes or int(t.min()) < 0):
            raise ValueError(f"target holds class {int(t.max())}, outside 0..{self.num_classes - 1} "
                             f"({self.ignore_index} = ignore)")
        self.confusion += torch.bincount(t * self.num_classes + p, minlength=self.num_classes ** 2).view(
            self.num_classes, self.num_classes)

    def compute(self) -> dict:
        c = self.confusion.double()
        tp = c.diag()
        union = c.sum(0) + c.sum(1) - tp
        iou = [float(tp[i] / union[i]) if union[i] > 0 else None for i in range(self.num_classes)]
        present = [v for v in iou if v is not None]
        total = float(c.sum())
        names = self.labels or [str(i) for i in range(self.num_classes)]
        return {
            "miou": sum(present) / len(present) if present else None,
            "pixel_accuracy": float(tp.sum()) / total if total else None,
            "pixels": int(total),
            "classes_present": len(present),
            "per_class_iou": dict(zip(names, iou)),
        }
