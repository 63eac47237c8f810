"""A segmentation model is a MobileNet backbone plus a head: the backbone runs as
``features_only`` at the head's output stride, cut after the last map the head
taps, and the head's logits are upsampled to the input size.

The registry's names are presets of :class:`SegmentationModel`
(:data:`SEGMENTATION_MODELS`); ``lraspp`` and ``deeplabv3`` put their head on any
registered backbone (``create_model("lraspp", backbone="mobilenet_v2_100")``).
"""

from __future__ import annotations

import inspect
import os
from typing import Any, Literal

import torch
from torch import nn

from ..layers import check_choice
from ..model import TAP_POSITIONS, MobileNet, init_weights
from .heads import DeepLabV3Head, FCNHead, LRASPPHead, Tap, upsample

Head = Literal["lraspp", "deeplabv3"]
HEADS = ("lraspp", "deeplabv3")

# The 21 classes of torchvision's COCO_WITH_VOC_LABELS weights (torchvision.models._meta._VOC_CATEGORIES).
VOC_LABELS = (
    "__background__", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)

# torchvision's deeplabv3_mobilenet_v3_large head: ASPP at rates 12/24/36 and its extra 3x3 conv.
TORCHVISION_DEEPLAB = {"head": "deeplabv3", "aspp_rates": (12, 24, 36), "head_conv": True}
# MobileNetV2 paper, Section 6.3 / Table 7, the on-device candidate ("MNet V2*", OS 16, no ASPP): the head
# on the second last feature map (320 channels, before the 1280 conv), 1x1 conv + image pooling only.
V2_MOBILE_DEEPLAB = {"head": "deeplabv3", "aspp_rates": (), "head_conv": False, "tap": "last_block",
                     "dropout": 0.1}

# name -> (default options, input size of its published figures / weights)
SEGMENTATION_MODELS: dict[str, tuple[dict[str, Any], int]] = {
    "lraspp": ({"head": "lraspp"}, 520),
    "deeplabv3": ({"head": "deeplabv3"}, 520),
    # torchvision's lraspp_mobilenet_v3_large: V3-Large at output stride 16, F = 128 (no reduced tail).
    "lraspp_mobilenet_v3_large": ({"head": "lraspp", "backbone": "mobilenet_v3_large_100"}, 520),
    "lraspp_mobilenet_v3_small": ({"head": "lraspp", "backbone": "mobilenet_v3_small_100"}, 520),
    "deeplabv3_mobilenet_v3_large": ({**TORCHVISION_DEEPLAB, "backbone": "mobilenet_v3_large_100"}, 520),
    "deeplabv3_mobilenet_v2_100": ({**V2_MOBILE_DEEPLAB, "backbone": "mobilenet_v2_100"}, 512),
}


def _backbone_spec(name: str):
    from ..registry import get_spec

    spec = get_spec(name)
    if not issubclass(spec.cls, MobileNet):
        raise ValueError(f"backbone={name!r} is not a classifier backbone (a mobilenet_v* name)")
    return spec


class SegmentationModel(nn.Module):
    """``backbone`` (a registered classifier name) -> ``head`` -> logits
    [N, num_classes, H, W] at the input size.

    ``head="lraspp"`` taps the stride-8 map and the backbone's end;
    ``head="deeplabv3"`` the backbone's end, with ``aspp_rates`` (``()``: no ASPP)
    and ``head_conv``; ``tap="last_block"`` takes the end before the final 1x1 conv
    (which is then not built: the V2 paper's "second last feature map"); ``aux=True`` adds torchvision's auxiliary FCN head on the
    stride-8 map (``forward_aux``). ``output_stride`` and ``reduced_tail`` are the
    backbone's options; ``head_width`` is the head's F (128 LR-ASPP, 256 DeepLabV3).
    ``pretrained_backbone``: an ImageNet classifier's weights for the backbone (a tag
    such as ``"tv2_in1k"``, ``True``, or a file: ours, torchvision's, timm's or a
    TFLite classifier); its padding, BatchNorm eps and preprocessing come with it.
    """

    task = "segmentation"

    def __init__(
        self,
        n_classes: int = 21,
        input_channel: int = 3,
        *,
        backbone: str = "mobilenet_v3_large_100",
        head: Head = "lraspp",
        output_stride: int = 16,
        reduced_tail: bool = False,
        head_width: int | None = None,
        aspp_rates: tuple[int, ...] = (12, 24, 36),
        head_conv: bool = True,
        tap: Literal["last", "last_block"] = "last",
        dropout: float = 0.5,
        aux: bool = False,
        padding: str = "symmetric",
        bn_eps: float | None = None,
        pretrained_backbone: str | os.PathLike | bool | None = None,
    ) -> None:
        super().__init__()
        check_choice("head", head, HEADS)
        check_choice("tap", tap, TAP_POSITIONS[1:])
        check_choice("aux", aux, (False, True))
        if not isinstance(n_classes, int) or isinstance(n_classes, bool) or n_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {n_classes!r}")
        if head == "lraspp" and (tuple(aspp_rates) != (12, 24, 36) or not head_conv):
            raise ValueError("aspp_rates and head_conv are options of head='deeplabv3', not 'lraspp'")
        spec = _backbone_spec(backbone)
        if reduced_tail and "reduced_tail" not in inspect.signature(spec.cls.__init__).parameters:
            raise ValueError(f"reduced_tail=True: {backbone} has no reduced tail (V1-V3 have)")
        classifier = None
        if pretrained_backbone not in (None, False):
            from .weights import load_backbone_classifier

            classifier = load_backbone_classifier(backbone, pretrained_backbone)
            padding, bn_eps = classifier.arch_args["padding"], classifier.arch_args["bn_eps"]
        options = {"padding": padding, **({"bn_eps": bn_eps} if bn_eps is not None else {}),
                   **({"reduced_tail": True} if reduced_tail else {})}  # V4 has no reduced tail
        self.backbone: MobileNet = spec.build(n_classes=0, input_channel=input_channel, features_only=True,
                                              output_stride=output_stride, **options)
        taps = {"low": LRASPPHead.taps["low"], "high": Tap(None, tap)} if head == "lraspp" else {"out": Tap(None, tap)}
        if aux:
            taps.update(FCNHead.taps)
        info = {role: self.backbone.feature_at(t.stride or output_stride, t.at) for role, t in taps.items()}
        order = [name for name, _ in self.backbone._feature_modules()]
        self.backbone.truncate(max((i.module for i in info.values()), key=order.index))
        self.backbone.feature_info = list(info.values())
        self.taps = list(info)  # role of each backbone output, in order
        if head == "lraspp":
            self.head = LRASPPHead(info["low"].channels, info["high"].channels, n_classes, head_width or 128)
        else:
            self.head = DeepLabV3Head(info["out"].channels, n_classes, head_width or 256, tuple(aspp_rates),
                                      head_conv, dropout)
        self.aux_head = FCNHead(info["aux"].channels, n_classes) if aux else None
        self.num_classes = n_classes
        self.output_stride = output_stride
        self.arch_args = dict(n_classes=n_classes, input_channel=input_channel, backbone=backbone, head=head,
                              output_stride=output_stride, reduced_tail=reduced_tail,
                              aspp_rates=list(aspp_rates), head_conv=head_conv, tap=tap, dropout=dropout, aux=aux,
                              padding=padding, **({"bn_eps": bn_eps} if bn_eps is not None else {}),
                              **({"head_width": head_width} if head_width is not None else {}))
        init_weights(self.head)
        if self.aux_head is not None:
            init_weights(self.aux_head)
        if classifier is not None:
            from .weights import copy_backbone

            copy_backbone(self, classifier)

    @property
    def feature_info(self):
        return self.backbone.feature_info

    def _head_logits(self, maps: list[torch.Tensor]) -> torch.Tensor:
        if isinstance(self.head, LRASPPHead):
            return self.head(maps[0], maps[1])
        return self.head(maps[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upsample(self._head_logits(self.backbone(x)), x.shape[-2:])

    def forward_aux(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(logits, aux logits or None)``, both at the input size: what training needs."""
        maps = self.backbone(x)
        out = upsample(self._head_logits(maps), x.shape[-2:])
        if self.aux_head is None:
            return out, None
        return out, upsample(self.aux_head(maps[self.taps.index("aux")]), x.shape[-2:])

    def reset_classifier(self, num_classes: int) -> None:
        """Fresh, initialised classifier convs for ``num_classes`` (fine-tuning on a new label set)."""
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
        layers = ["low_classifier", "high_classifier"] if isinstance(self.head, LRASPPHead) else ["classifier"]
        for owner, name in [(self.head, n) for n in layers] + ([(self.aux_head, "classifier")] if self.aux_head else []):
            old = getattr(owner, name)
            setattr(owner, name, nn.Conv2d(old.in_channels, num_classes, 1))
            init_weights(getattr(owner, name))
        self.num_classes = num_classes
        self.arch_args["n_classes"] = num_classes

    @classmethod
    def load_pretrained(cls, name: str, pretrained: Any, **kwargs: Any) -> SegmentationModel:
        from .weights import load_pretrained

        return load_pretrained(name, pretrained, **kwargs)
