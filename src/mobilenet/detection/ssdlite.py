"""SSDLite (MobileNetV2 paper, Sandler et al. 2018, Section 6.3) on any of our MobileNets.

A backbone plus a head. The backbone gives two maps, found by stride, never by block
index: the input of the depthwise conv of the first stride-32 block (for V2/V3 the
output of that block's 1x1 expansion, "layer 15's expansion" in the V2 paper; for V1
the stride-16 features) and the backbone's last conv (stride 32). Four extra blocks
(1x1 reduce, 3x3 stride-2 depthwise, 1x1 expand) add maps at strides 64 to 512
(320 px: 20, 10, 5, 3, 2, 1). Every box and class predictor is depthwise-separable: a
3x3 depthwise conv + BN + ReLU6, then a 1x1 conv with bias.

The configuration is torchvision's ``ssdlite320_mobilenet_v3_large`` (its default boxes,
box coder, thresholds, BN eps 1e-3 and momentum 0.03, [-1, 1] input scaling), and the
decoding uses torchvision's own pieces (``DefaultBoxGenerator``, ``BoxCoder``,
``nms``), so its checkpoint computes the same detections here.
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.ops import boxes as box_ops

from ..layers import ConvNormAct, DepthwiseSeparable, InvertedResidual, check_positive

# torchvision's ssdlite320_mobilenet_v3_large, which follows the V2 paper's SSDLite.
SIZE = 320
EXTRA_DEPTHS = (512, 256, 256, 128)  # the four extra blocks' output widths (V2 paper's TF config too)
ASPECT_RATIOS = (2, 3)  # per map: 1, 1' (the geometric mean scale), 2, 1/2, 3, 1/3 -> 6 boxes
MIN_RATIO, MAX_RATIO = 0.2, 0.95  # default-box scales of the first and last map (SSD paper, eq. 4)
BOX_CODER_WEIGHTS = (10.0, 10.0, 5.0, 5.0)
IMAGE_MEAN = (0.5, 0.5, 0.5)  # [0, 1] -> [-1, 1]
IMAGE_STD = (0.5, 0.5, 0.5)
BN_EPS, BN_MOMENTUM = 1e-3, 0.03  # TensorFlow's decay 0.97
HEAD_INIT_STD = 0.03

# Registry names -> (options, input size). The V3 detectors default to the V3 paper's
# reduced tail (Section 6.3, Table 6: C4 to C5 halved), as torchvision's checkpoint;
# the V2 paper's SSDLite has none.
DETECTION_MODELS: dict[str, tuple[dict[str, Any], int]] = {
    "ssdlite320_mobilenet_v3_large": ({"backbone": "mobilenet_v3_large_100"}, SIZE),
    "ssdlite320_mobilenet_v3_small": ({"backbone": "mobilenet_v3_small_100"}, SIZE),
    "ssdlite320_mobilenet_v2_100": ({"backbone": "mobilenet_v2_100"}, SIZE),
}


def c4_index(backbone: nn.Module) -> int:
    """Index in ``backbone.blocks`` of the first block whose output is at stride 32."""
    reduction = backbone.stem.stride
    for i, block in enumerate(backbone.blocks):
        if reduction < 32 <= reduction * block.stride:
            if reduction != 16:
                break
            return i
        reduction *= block.stride
    raise ValueError(
        f"SSDLite needs a backbone that goes from stride 16 to 32 with a strided block "
        f"({getattr(backbone, 'model_name', type(backbone).__name__)} does not: output_stride must be 32)"
    )


def c4_channels(block: nn.Module) -> int:
    """Width of the map SSDLite taps inside the C4 block: what its depthwise conv reads."""
    if isinstance(block, InvertedResidual):
        return block.dw.conv.in_channels
    if isinstance(block, DepthwiseSeparable):
        return block.dw.conv.in_channels
    raise TypeError(f"SSDLite cannot tap a {type(block).__name__} block (expected an inverted residual or a V1 unit)")


def backbone_maps(backbone: nn.Module, c4: int, x: torch.Tensor) -> list[torch.Tensor]:
    """The C4 tap (the input of the stride-32 block's depthwise conv) and the last conv's output."""
    x = backbone.stem(x)
    tap = x
    for i, block in enumerate(backbone.blocks):
        if i == c4 and isinstance(block, InvertedResidual):
            tap = block.expand(x)
            # A strided block has no residual: dw -> se -> project is the whole rest of it.
            x = block.project(block.se(block.dw(tap)))
        else:
            if i == c4:
                tap = x
            x = block(x)
    return [tap, backbone.last_conv(x)]


class ExtraBlock(nn.Sequential):
    """1x1 conv to half the width, 3x3 depthwise stride 2, 1x1 conv to ``out_ch``; each BN + ReLU6."""

    def __init__(self, in_ch: int, out_ch: int, **bn: float) -> None:
        mid = out_ch // 2
        super().__init__(OrderedDict(
            reduce=ConvNormAct(in_ch, mid, 1, act="relu6", **bn),
            dw=ConvNormAct(mid, mid, 3, 2, groups=mid, act="relu6", **bn),
            expand=ConvNormAct(mid, out_ch, 1, act="relu6", **bn),
        ))
        self.out_channels = out_ch


class Predictor(nn.Sequential):
    """SSDLite's depthwise-separable predictor: 3x3 depthwise + BN + ReLU6, 1x1 conv with bias."""

    def __init__(self, in_ch: int, out_ch: int, **bn: float) -> None:
        super().__init__(OrderedDict(
            dw=ConvNormAct(in_ch, in_ch, 3, groups=in_ch, act="relu6", **bn),
            pw=nn.Conv2d(in_ch, out_ch, 1),
        ))


class SSDLiteHead(nn.Module):
    """One box predictor and one class predictor per map; outputs ``(N, anchors, 4)`` box
    offsets and ``(N, anchors, num_classes)`` logits, anchors ordered map, row, column, box."""

    def __init__(self, in_channels: Sequence[int], anchors_per_cell: Sequence[int], num_classes: int,
                 **bn: float) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.box = nn.ModuleList(Predictor(c, 4 * a, **bn) for c, a in zip(in_channels, anchors_per_cell))
        self.cls = nn.ModuleList(Predictor(c, num_classes * a, **bn) for c, a in zip(in_channels, anchors_per_cell))

    @staticmethod
    def _flatten(outputs: list[torch.Tensor], columns: int) -> torch.Tensor:
        flat = []
        for out in outputs:
            n, _, h, w = out.shape
            flat.append(out.view(n, -1, columns, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, columns))
        return torch.cat(flat, dim=1)

    def forward(self, maps: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        boxes = self._flatten([p(m) for p, m in zip(self.box, maps)], 4)
        logits = self._flatten([p(m) for p, m in zip(self.cls, maps)], self.num_classes)
        return boxes, logits


def map_sizes(size: int, levels: int) -> list[int]:
    """Side of each map for a ``size`` input: stride 16, then halved (rounding up) per level."""
    sides = [math.ceil(size / 16)]
    for _ in range(levels - 1):
        sides.append(math.ceil(sides[-1] / 2))
    return sides


def _normal_init(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, 0.0, HEAD_INIT_STD)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class SSDLite(nn.Module):
    """SSDLite on a MobileNet ``backbone`` (a registry name): ``backbone``, ``extras``, ``head``.

    ``forward`` takes a list of ``[3, H, W]`` images in [0, 1] (any sizes, or one
    ``[N, 3, H, W]`` tensor) and returns, in eval mode, one dict per image with
    ``boxes`` (x1, y1, x2, y2 in that image's pixels), ``scores`` and ``labels``; in
    train mode, with ``targets``, torchvision's SSD losses. ``forward_raw`` is the
    network alone on a normalised ``[N, 3, size, size]`` batch.
    ``n_classes`` counts the background (index 0): 91 for COCO's id scheme.
    """

    def __init__(
        self,
        n_classes: int = 91,
        input_channel: int = 3,
        *,
        backbone: str = "mobilenet_v3_large_100",
        reduced_tail: bool | None = None,
        pretrained_backbone: bool | str | os.PathLike | None = None,
        size: int = SIZE,
        score_thresh: float = 0.001,
        nms_thresh: float = 0.55,
        topk_candidates: int = 300,
        detections_per_img: int = 300,
        bn_eps: float = BN_EPS,
        bn_momentum: float = BN_MOMENTUM,
        padding: str = "symmetric",
        backbone_bn_eps: float | None = None,
    ) -> None:
        super().__init__()
        from ..registry import create_model

        if not isinstance(n_classes, int) or isinstance(n_classes, bool) or n_classes < 2:
            raise ValueError(f"n_classes must be an integer >= 2 (background + classes), got {n_classes!r}")
        if not isinstance(size, int) or size < 64:
            raise ValueError(f"size must be an integer >= 64 pixels, got {size!r}")
        for name, value in (("score_thresh", score_thresh), ("nms_thresh", nms_thresh)):
            if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value!r}")
        for name, value in (("topk_candidates", topk_candidates), ("detections_per_img", detections_per_img)):
            check_positive(name, value)
        bn = dict(bn_eps=bn_eps, bn_momentum=bn_momentum)
        if reduced_tail is None:  # the papers' detectors: V3 with its reduced tail, V1/V2 as they are
            reduced_tail = backbone.startswith("mobilenet_v3_") and not pretrained_backbone
        # The backbone's own numerics: TF "same" padding and BN eps of the weights it was trained with.
        backbone_args: dict[str, Any] = {"padding": padding, "bn_eps": bn_eps if backbone_bn_eps is None else backbone_bn_eps}
        if reduced_tail:
            if pretrained_backbone:
                raise ValueError("pretrained_backbone: ImageNet classifiers have the full tail; "
                                 "pass reduced_tail=False (or no pretrained_backbone)")
            backbone_args["reduced_tail"] = True
        if pretrained_backbone:
            self.backbone = pretrained_features(backbone, pretrained_backbone, in_chans=input_channel,
                                                **{k: v for k, v in backbone_args.items() if k == "reduced_tail"})
            # The weights' own BatchNorm eps (and TF padding) stay: they are part of what they compute.
            backbone_args.update({k: v for k, v in self.backbone.arch_args.items() if k in ("padding", "bn_eps")})
            for m in self.backbone.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.momentum = bn_momentum
        else:
            self.backbone = create_model(backbone, in_chans=input_channel, features_only=True,
                                         bn_momentum=bn_momentum, **backbone_args)
        self.c4 = c4_index(self.backbone)
        widths = [c4_channels(self.backbone.blocks[self.c4]), self.backbone.num_features]
        extras = []
        for depth in EXTRA_DEPTHS:
            extras.append(ExtraBlock(widths[-1], depth, **bn))
            widths.append(depth)
        self.extras = nn.ModuleList(extras)
        self.default_boxes = DefaultBoxGenerator([list(ASPECT_RATIOS)] * len(widths), MIN_RATIO, MAX_RATIO)
        self.head = SSDLiteHead(widths, self.default_boxes.num_anchors_per_location(), n_classes, **bn)
        self.box_coder = det_utils.BoxCoder(weights=BOX_CODER_WEIGHTS)
        self.proposal_matcher = det_utils.SSDMatcher(0.5)
        self.neg_to_pos_ratio = 3.0  # positive_fraction 0.25
        _normal_init(self.extras)
        _normal_init(self.head)
        self.num_classes = n_classes
        self.size = size
        self.map_channels = widths
        self.score_thresh, self.nms_thresh = float(score_thresh), float(nms_thresh)
        self.topk_candidates, self.detections_per_img = int(topk_candidates), int(detections_per_img)
        self.register_buffer("anchors", self._anchors(), persistent=False)
        self.register_buffer("image_mean", torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("image_std", torch.tensor(IMAGE_STD).view(1, 3, 1, 1), persistent=False)
        self.arch_args = dict(n_classes=n_classes, input_channel=input_channel, backbone=backbone,
                              reduced_tail=reduced_tail, size=size, score_thresh=score_thresh, nms_thresh=nms_thresh,
                              topk_candidates=topk_candidates, detections_per_img=detections_per_img, **bn,
                              padding=backbone_args["padding"], backbone_bn_eps=backbone_args["bn_eps"])
        # Where the backbone's weights came from; the detector's own file holds them after.
        self.pretrained_backbone = str(pretrained_backbone) if pretrained_backbone else None

    @classmethod
    def from_pretrained(cls, name: str, pretrained: Any, **kwargs: Any) -> SSDLite:
        """``create_model(name, pretrained=tag or FILE)``, see :mod:`.weights`."""
        from .weights import load_pretrained

        return load_pretrained(name, pretrained, **kwargs)

    def reset_classifier(self, num_classes: int) -> None:
        """Fresh class predictors for ``num_classes`` (background included); boxes kept."""
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2 (background + classes), got {num_classes!r}")
        bn = dict(bn_eps=self.arch_args["bn_eps"], bn_momentum=self.arch_args["bn_momentum"])
        anchors = self.default_boxes.num_anchors_per_location()
        self.head.cls = nn.ModuleList(Predictor(c, num_classes * a, **bn) for c, a in zip(self.map_channels, anchors))
        _normal_init(self.head.cls)
        self.head.num_classes = self.num_classes = num_classes
        self.arch_args["n_classes"] = num_classes

    def _anchors(self) -> torch.Tensor:
        """The default boxes (x1, y1, x2, y2 in input pixels), fixed by ``size``."""
        sides = map_sizes(self.size, len(self.map_channels))
        images = ImageList(torch.empty(1, 3, self.size, self.size, device="cpu"), [(self.size, self.size)])
        maps = [torch.empty(1, 1, s, s, device="cpu") for s in sides]
        with torch.device("cpu"):
            return self.default_boxes(images, maps)[0]

    # -- the network ----------------------------------------------------------------------
    def forward_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        maps = backbone_maps(self.backbone, self.c4, x)
        for block in self.extras:
            maps.append(block(maps[-1]))
        return maps

    def forward_raw(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Box offsets ``(N, A, 4)`` and class logits ``(N, A, num_classes)`` for a normalised batch."""
        return self.head(self.forward_maps(x))

    # -- images in, detections out ------------------------------------------------------
    def preprocess(self, images: Sequence[torch.Tensor] | torch.Tensor) -> torch.Tensor:
        """[0, 1] images of any sizes -> one normalised ``[N, 3, size, size]`` batch
        (normalise, then bilinear resize, as torchvision's GeneralizedRCNNTransform)."""
        batch = []
        for img in images:
            img = (img[None] - self.image_mean) / self.image_std
            if tuple(img.shape[-2:]) != (self.size, self.size):
                img = F.interpolate(img, size=[self.size, self.size], mode="bilinear", align_corners=False)
            batch.append(img)
        return torch.cat(batch)

    def decode(self, box_offsets: torch.Tensor, logits: torch.Tensor, image_size: Sequence[int] | None = None,
               ) -> dict[str, torch.Tensor]:
        """One image's head outputs -> its detections, in ``image_size`` (H, W) pixels
        (the network input's if None): softmax, per class the ``topk_candidates`` best
        above ``score_thresh``, class-wise NMS, the ``detections_per_img`` best."""
        boxes = self.box_coder.decode_single(box_offsets, self.anchors)
        boxes = box_ops.clip_boxes_to_image(boxes, (self.size, self.size))
        det = select_detections(boxes, F.softmax(logits, dim=-1), score_thresh=self.score_thresh,
                                nms_thresh=self.nms_thresh, topk_candidates=self.topk_candidates,
                                detections_per_img=self.detections_per_img)
        boxes, top, labels = det["boxes"], det["scores"], det["labels"]
        if image_size is not None:
            h, w = image_size
            scale = torch.tensor([w / self.size, h / self.size] * 2, dtype=boxes.dtype, device=boxes.device)
            boxes = boxes * scale
        return {"boxes": boxes, "scores": top, "labels": labels}

    def forward(self, images: Sequence[torch.Tensor] | torch.Tensor,
                targets: list[dict[str, torch.Tensor]] | None = None):
        sizes = [tuple(img.shape[-2:]) for img in images]
        box_offsets, logits = self.forward_raw(self.preprocess(images))
        if self.training:
            if targets is None:
                raise ValueError("SSDLite in train mode needs targets (one dict with boxes and labels per image)")
            return self.loss(box_offsets, logits, targets, sizes)
        return [self.decode(b, c, s) for b, c, s in zip(box_offsets, logits, sizes)]

    def loss(self, box_offsets: torch.Tensor, logits: torch.Tensor, targets: list[dict[str, torch.Tensor]],
             sizes: Sequence[Sequence[int]]) -> dict[str, torch.Tensor]:
        """torchvision's SSD loss (smooth-L1 boxes, cross-entropy with 3:1 hard negatives)
        with targets given in each image's own pixels."""
        from torchvision.models.detection.ssd import SSD

        scaled, matched = [], []
        for t, (h, w) in zip(targets, sizes):
            scale = torch.tensor([self.size / w, self.size / h] * 2, dtype=torch.float32, device=logits.device)
            boxes = t["boxes"].to(logits.device, torch.float32) * scale
            scaled.append({"boxes": boxes, "labels": t["labels"].to(logits.device)})
            if boxes.numel() == 0:
                matched.append(torch.full((self.anchors.shape[0],), -1, dtype=torch.int64, device=logits.device))
            else:
                matched.append(self.proposal_matcher(box_ops.box_iou(boxes, self.anchors)))
        outputs = {"bbox_regression": box_offsets, "cls_logits": logits}
        return SSD.compute_loss(self, scaled, outputs, [self.anchors] * len(targets), matched)


def select_detections(boxes: torch.Tensor, scores: torch.Tensor, *, score_thresh: float, nms_thresh: float,
                      topk_candidates: int, detections_per_img: int) -> dict[str, torch.Tensor]:
    """Decoded boxes ``(A, 4)`` and class probabilities ``(A, C)`` (background first) ->
    detections: per class the ``topk_candidates`` best above ``score_thresh``,
    class-wise NMS, the ``detections_per_img`` best (torchvision's SSD postprocessing).
    Shared by :meth:`SSDLite.decode` and the loader of files that stop before NMS."""
    scores = scores[:, 1:].T  # (classes, anchors), background dropped
    k = min(topk_candidates, scores.shape[1])
    top, idx = scores.topk(k, dim=1)  # sorted, so "the k best above the threshold" is a prefix
    candidates = boxes[idx]  # (classes, k, 4)
    # Class by class NMS, as torchvision's batched_nms does for many boxes. Candidates under
    # the threshold come last and cannot suppress those above it, so they can be dropped after.
    kept = torch.cat([box_ops.nms(candidates[c], top[c], nms_thresh) + c * k for c in range(len(top))])
    flat_scores = top.reshape(-1)
    kept = kept[flat_scores[kept] > score_thresh]
    kept = kept[flat_scores[kept].argsort(descending=True)][:detections_per_img]
    labels = torch.div(kept, k, rounding_mode="floor") + 1
    return {"boxes": candidates.reshape(-1, 4)[kept], "scores": flat_scores[kept], "labels": labels}


def pretrained_features(name: str, pretrained: bool | str | os.PathLike, *, in_chans: int = 3,
                        **options: Any) -> nn.Module:
    """The ``features_only`` backbone ``name`` with ImageNet weights: a tag, ``True``, a
    checkpoint file (ours, e.g. from ``mobilenet import-tflite``, torchvision's or timm's)
    or a Google ``.tflite`` classifier."""
    from ..registry import create_model

    if str(pretrained).endswith(".tflite"):
        from ..weights.tflite import load_tflite

        classifier, info = load_tflite(pretrained)
        if info["model_name"] != name:
            raise ValueError(f"pretrained_backbone {pretrained} holds {info['model_name']}, not the backbone {name}")
        allowed = {"padding", "bn_eps", "bn_momentum"}
        features = create_model(name, in_chans=in_chans, features_only=True,
                                **{k: v for k, v in classifier.arch_args.items() if k in allowed}, **options)
        wanted = features.state_dict()
        features.load_state_dict({k: v for k, v in classifier.state_dict().items() if k in wanted}, strict=True)
        return features
    return create_model(name, pretrained=pretrained, in_chans=in_chans, features_only=True, **options)
