"""A detector file (:mod:`.export`: ONNX with decoding and NMS in the graph; :mod:`.executorch`:
a program with the decoding, NMS applied by its loader) as a module
that takes what our detectors take, a list of [3, H, W] images in [0, 1], and gives
what they give, one dict of boxes (in each image's pixels), scores and labels per
image; so ``mobilenet eval`` / ``predict`` run it as they run the eager model.

Each image is resized (bilinear) to the file's input size, as the eager detector's
preprocessing resizes it to the network's, and the boxes are scaled back to the
image; the file normalises inside the graph (normalising and bilinear resizing
commute, so this is the eager computation up to float rounding).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class DetectorFile(nn.Module):
    task = "detection"

    def __init__(self, artifact) -> None:
        super().__init__()
        meta = artifact.metadata
        if not meta.get("nms", True) and not meta.get("decoded"):
            raise ValueError(f"{artifact.path}: a raw-head detector file (exported with --no-nms) gives box offsets "
                             "and logits, not detections; export it without --no-nms to evaluate or predict with it")
        self.artifact = artifact
        if meta.get("decoded"):  # an ExecuTorch file that stops before NMS: its loader applies it
            from .executorch import load_pte

            self.run = load_pte(artifact.path)
        else:
            self.run = artifact
        self.image_size = tuple(meta.get("image_size") or (320, 320))
        labels = meta.get("labels")
        self.num_classes = meta.get("num_classes") or (len(labels) if labels else None)  # background included
        self.model_name = meta.get("model")
        self.pretrained_cfg = {"labels": labels, "source": str(artifact.path)}

    @torch.no_grad()
    def forward(self, images: Sequence[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        out = []
        for img in images:
            h, w = img.shape[-2:]
            x = img[None].float()
            if (h, w) != self.image_size:
                x = F.interpolate(x, size=list(self.image_size), mode="bilinear", align_corners=False)
            boxes, scores, labels = self.run(x.contiguous())[:3]
            ih, iw = self.image_size
            scale = torch.tensor([w / iw, h / ih] * 2, dtype=boxes.dtype)
            out.append({"boxes": boxes * scale, "scores": scores, "labels": labels.long()})
        return out
