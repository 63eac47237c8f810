"""Segmentation heads. Each takes feature maps a backbone gives at named strides
(:class:`Tap`), never at block indices, so one head fits every MobileNet.

Submodule names are part of the weight format: never rename them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import ConvNormAct, check_positive
from ..model import TapPosition


@dataclass(frozen=True)
class Tap:
    """A feature map a head reads: its real ``stride`` (``None``: the backbone's
    output stride) and where at that stride (see ``mobilenet.model.TapPosition``)."""

    stride: int | None
    at: TapPosition = "last"


def upsample(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class LRASPPHead(nn.Module):
    """Lite R-ASPP (MobileNetV3 paper, Section 6.3, Figure 10).

    High branch: 1x1 conv + BN + ReLU to ``width`` (the paper's F, 128) on the
    stride-16 features, gated by a sigmoid of a 1x1 conv of their average pool
    (squeeze-excite style); upsampled to the low-level map and classified by a 1x1
    conv, added to a 1x1 classifier of the stride-8 features. The pool is global,
    as in torchvision (the paper pools 49x49 with stride (16, 20) on 1024x2048
    Cityscapes crops, which is global pooling for smaller inputs).
    """

    taps = {"low": Tap(8, "first"), "high": Tap(None, "last")}

    def __init__(self, low_channels: int, high_channels: int, num_classes: int, width: int = 128) -> None:
        super().__init__()
        check_positive("head_width", width)
        self.conv = ConvNormAct(high_channels, width, 1, act="relu")
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.gate_conv = nn.Conv2d(high_channels, width, 1, bias=False)
        self.gate = nn.Sigmoid()
        self.low_classifier = nn.Conv2d(low_channels, num_classes, 1)
        self.high_classifier = nn.Conv2d(width, num_classes, 1)

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        x = self.conv(high) * self.gate(self.gate_conv(self.pool(high)))
        x = upsample(x, low.shape[-2:])
        return self.low_classifier(low) + self.high_classifier(x)


class ImagePooling(nn.Module):
    """DeepLabv3's image-level feature: global average, 1x1 conv + BN + ReLU,
    broadcast back to the map's size."""

    def __init__(self, in_channels: int, width: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.conv = ConvNormAct(in_channels, width, 1, act="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upsample(self.conv(self.pool(x)), x.shape[-2:])


class DeepLabV3Head(nn.Module):
    """DeepLabv3 (Chen et al. 2017, arXiv 1706.05587, Section 3.3): parallel
    branches on one feature map, a 1x1 conv and one 3x3 atrous conv per rate in
    ``rates`` (ASPP), and image pooling; concatenated, projected by a 1x1 conv +
    BN + ReLU to ``width``, dropout, then a 1x1 classifier.

    ``rates=()`` is the MobileNetV2 paper's mobile head (Section 6.3, Table 7: "1x1
    convolution as well as image-pooling feature", no ASPP). ``head_conv=True`` adds
    the 3x3 conv + BN + ReLU torchvision's ``DeepLabHead`` has before its classifier
    (not in the DeepLabv3 paper).
    """

    taps = {"out": Tap(None, "last")}

    def __init__(self, in_channels: int, num_classes: int, width: int = 256, rates: Sequence[int] = (12, 24, 36),
                 head_conv: bool = True, dropout: float = 0.5) -> None:
        super().__init__()
        check_positive("head_width", width)
        for rate in rates:
            check_positive("aspp_rates", rate)
        branches: list[nn.Module] = [ConvNormAct(in_channels, width, 1, act="relu")]
        branches += [ConvNormAct(in_channels, width, 3, act="relu", dilation=r) for r in rates]
        branches.append(ImagePooling(in_channels, width))
        self.branches = nn.ModuleList(branches)
        self.project = ConvNormAct(len(branches) * width, width, 1, act="relu")
        self.dropout = nn.Dropout(dropout)
        self.head_conv = ConvNormAct(width, width, 3, act="relu") if head_conv else nn.Identity()
        self.classifier = nn.Conv2d(width, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([branch(x) for branch in self.branches], dim=1)
        return self.classifier(self.head_conv(self.dropout(self.project(x))))


class FCNHead(nn.Module):
    """The auxiliary head torchvision trains DeepLabV3 with (on the stride-8 map):
    3x3 conv + BN + ReLU to a quarter of the channels, dropout 0.1, 1x1 classifier."""

    taps = {"aux": Tap(8, "first")}

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.conv = ConvNormAct(in_channels, in_channels // 4, 3, act="relu")
        self.dropout = nn.Dropout(0.1)
        self.classifier = nn.Conv2d(in_channels // 4, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.conv(x)))
