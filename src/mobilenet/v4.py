"""MobileNetV4: Conv-S/M/L and Hybrid-M/L (Qin et al. 2024, arXiv 2404.10518).

One table per model, one row per block, in the column order of the paper's
appendix tables: block, DW K1 (the UIB's start depthwise kernel), DW K2 (its
middle one), expanded dim, output dim, stride. Expanded dims are absolute, as the
paper prints them; under a width multiplier they scale as a ratio of the scaled
input (the reference code's ``expand_ratio``).

Every table here builds, block for block, what TensorFlow Model Garden
(``official/vision/modeling/backbones/mobilenet.py``) and timm 1.0.31 build; where
the three sources disagree, docs/architectures.md says which we follow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from torch import nn

from .blocks_v4 import FusedInvertedBottleneck, MobileMQA, UniversalInvertedBottleneck
from .layers import PADDINGS, Activation, ConvNormAct, Padding, check_choice, check_positive, make_divisible
from .model import MobileNet, init_weights


@dataclass(frozen=True)
class Conv:
    """Conv2D row: kxk conv + BN + act."""

    kernel: int
    out: int
    stride: int


@dataclass(frozen=True)
class FusedIB:
    """FusedIB row: kxk conv to ``exp`` (+ BN + act), 1x1 to ``out`` (+ BN)."""

    kernel: int
    exp: int
    out: int
    stride: int


@dataclass(frozen=True)
class UIB:
    """UIB row: DW K1 (start), DW K2 (middle), 0 = absent.
    ExtraDW = (k, k), IB = (0, k), ConvNext = (k, 0), FFN = (0, 0)."""

    start_dw: int
    mid_dw: int
    exp: int
    out: int
    stride: int


@dataclass(frozen=True)
class MQA:
    """Mobile MQA row: query heads, key (= value) dim, key/value downsampling stride."""

    heads: int
    key_dim: int
    kv_stride: int
    out: int


Row = Conv | FusedIB | UIB | MQA

# The head, the same in every V4 model: a 1x1 conv to 960 (last row of each table),
# global pool, a 1x1 conv to 1280 without bias, BN, act, dropout, classifier.
LAST_CONV = 960
HEAD = 1280

# MNv4-Conv-S, 224 px.
CONV_SMALL: tuple[Row, ...] = (
    #     k  out  s
    Conv(3, 32, 2),  # stem
    Conv(3, 32, 2),
    Conv(1, 32, 1),
    Conv(3, 96, 2),
    Conv(1, 64, 1),
    #   start mid  exp  out  s
    UIB(5, 5, 192, 96, 2),   # ExtraDW
    UIB(0, 3, 192, 96, 1),   # IB
    UIB(0, 3, 192, 96, 1),   # IB
    UIB(0, 3, 192, 96, 1),   # IB
    UIB(0, 3, 192, 96, 1),   # IB
    UIB(3, 0, 384, 96, 1),   # ConvNext
    UIB(3, 3, 576, 128, 2),  # ExtraDW
    UIB(5, 5, 512, 128, 1),  # ExtraDW
    UIB(0, 5, 512, 128, 1),  # IB
    UIB(0, 5, 384, 128, 1),  # IB
    UIB(0, 3, 512, 128, 1),  # IB
    UIB(0, 3, 512, 128, 1),  # IB
    Conv(1, LAST_CONV, 1),
)

# MNv4-Conv-M, 256 px.
CONV_MEDIUM: tuple[Row, ...] = (
    Conv(3, 32, 2),  # stem
    #       k  exp out  s
    FusedIB(3, 128, 48, 2),
    #   start mid  exp  out  s
    UIB(3, 5, 192, 80, 2),    # ExtraDW
    UIB(3, 3, 160, 80, 1),    # ExtraDW
    UIB(3, 5, 480, 160, 2),   # ExtraDW
    UIB(3, 3, 640, 160, 1),   # ExtraDW
    UIB(3, 3, 640, 160, 1),   # ExtraDW
    UIB(3, 5, 640, 160, 1),   # ExtraDW
    UIB(3, 3, 640, 160, 1),   # ExtraDW
    UIB(3, 0, 640, 160, 1),   # ConvNext
    UIB(0, 0, 320, 160, 1),   # FFN
    UIB(3, 0, 640, 160, 1),   # ConvNext
    UIB(5, 5, 960, 256, 2),   # ExtraDW
    UIB(5, 5, 1024, 256, 1),  # ExtraDW
    UIB(3, 5, 1024, 256, 1),  # ExtraDW
    UIB(3, 5, 1024, 256, 1),  # ExtraDW
    UIB(0, 0, 1024, 256, 1),  # FFN
    UIB(3, 0, 1024, 256, 1),  # ConvNext
    UIB(3, 5, 512, 256, 1),   # ExtraDW
    UIB(5, 5, 1024, 256, 1),  # ExtraDW
    UIB(0, 0, 1024, 256, 1),  # FFN
    UIB(0, 0, 1024, 256, 1),  # FFN
    UIB(5, 0, 512, 256, 1),   # ConvNext
    Conv(1, LAST_CONV, 1),
)

# MNv4-Conv-L, 384 px.
CONV_LARGE: tuple[Row, ...] = (
    Conv(3, 24, 2),  # stem
    FusedIB(3, 96, 48, 2),
    UIB(3, 5, 192, 96, 2),    # ExtraDW
    UIB(3, 3, 384, 96, 1),    # ExtraDW
    UIB(3, 5, 384, 192, 2),   # ExtraDW
    UIB(3, 3, 768, 192, 1),   # ExtraDW
    UIB(3, 3, 768, 192, 1),   # ExtraDW
    UIB(3, 3, 768, 192, 1),   # ExtraDW
    UIB(3, 5, 768, 192, 1),   # ExtraDW
    UIB(5, 3, 768, 192, 1),   # ExtraDW
    UIB(5, 3, 768, 192, 1),   # ExtraDW
    UIB(5, 3, 768, 192, 1),   # ExtraDW
    UIB(5, 3, 768, 192, 1),   # ExtraDW
    UIB(5, 3, 768, 192, 1),   # ExtraDW
    UIB(3, 0, 768, 192, 1),   # ConvNext
    UIB(5, 5, 768, 512, 2),   # ExtraDW
    UIB(5, 5, 2048, 512, 1),  # ExtraDW
    UIB(5, 5, 2048, 512, 1),  # ExtraDW
    UIB(5, 5, 2048, 512, 1),  # ExtraDW
    UIB(5, 0, 2048, 512, 1),  # ConvNext
    UIB(5, 3, 2048, 512, 1),  # ExtraDW
    UIB(5, 0, 2048, 512, 1),  # ConvNext
    UIB(5, 0, 2048, 512, 1),  # ConvNext
    UIB(5, 3, 2048, 512, 1),  # ExtraDW
    UIB(5, 5, 2048, 512, 1),  # ExtraDW
    UIB(5, 0, 2048, 512, 1),  # ConvNext
    UIB(5, 0, 2048, 512, 1),  # ConvNext
    UIB(5, 0, 2048, 512, 1),  # ConvNext
    Conv(1, LAST_CONV, 1),
)

# MNv4-Hybrid-M, 256 px: Conv-M's network with Mobile MQA blocks in the last two stages.
HYBRID_MEDIUM: tuple[Row, ...] = (
    Conv(3, 32, 2),  # stem
    FusedIB(3, 128, 48, 2),
    UIB(3, 5, 192, 80, 2),    # ExtraDW
    UIB(3, 3, 160, 80, 1),    # ExtraDW
    UIB(3, 5, 480, 160, 2),   # ExtraDW
    UIB(0, 0, 320, 160, 1),   # FFN
    UIB(3, 3, 640, 160, 1),   # ExtraDW
    UIB(3, 5, 640, 160, 1),   # ExtraDW
    #   heads dim kv_s out
    MQA(4, 64, 2, 160),
    UIB(3, 3, 640, 160, 1),   # ExtraDW
    MQA(4, 64, 2, 160),
    UIB(3, 0, 640, 160, 1),   # ConvNext
    MQA(4, 64, 2, 160),
    UIB(3, 3, 640, 160, 1),   # ExtraDW
    MQA(4, 64, 2, 160),
    UIB(3, 0, 640, 160, 1),   # ConvNext
    UIB(5, 5, 960, 256, 2),   # ExtraDW
    UIB(5, 5, 1024, 256, 1),  # ExtraDW
    UIB(3, 5, 1024, 256, 1),  # ExtraDW
    UIB(3, 5, 1024, 256, 1),  # ExtraDW
    UIB(0, 0, 512, 256, 1),   # FFN
    UIB(3, 5, 512, 256, 1),   # ExtraDW
    UIB(0, 0, 512, 256, 1),   # FFN
    UIB(0, 0, 1024, 256, 1),  # FFN
    MQA(4, 64, 1, 256),
    UIB(3, 0, 1024, 256, 1),  # ConvNext
    MQA(4, 64, 1, 256),
    UIB(5, 5, 1024, 256, 1),  # ExtraDW
    MQA(4, 64, 1, 256),
    UIB(5, 0, 1024, 256, 1),  # ConvNext
    MQA(4, 64, 1, 256),
    UIB(5, 0, 1024, 256, 1),  # ConvNext
    Conv(1, LAST_CONV, 1),
)

# MNv4-Hybrid-L, 384 px: GELU throughout.
HYBRID_LARGE: tuple[Row, ...] = (
    Conv(3, 24, 2),  # stem
    FusedIB(3, 96, 48, 2),
    UIB(3, 5, 192, 96, 2),    # ExtraDW
    UIB(3, 3, 384, 96, 1),    # ExtraDW
    UIB(3, 5, 384, 192, 2),   # ExtraDW
    UIB(3, 3, 768, 192, 1),   # ExtraDW
    UIB(3, 3, 768, 192, 1),   # ExtraDW
    UIB(3, 3, 768, 192, 1),   # ExtraDW
    UIB(3, 5, 768, 192, 1),   # ExtraDW
    UIB(5, 3, 768, 192, 1),   # ExtraDW
    UIB(5, 3, 768, 192, 1),   # ExtraDW
    MQA(8, 48, 2, 192),
    UIB(5, 3, 768, 192, 1),   # ExtraDW
    MQA(8, 48, 2, 192),
    UIB(5, 3, 768, 192, 1),   # ExtraDW
    MQA(8, 48, 2, 192),
    UIB(5, 3, 768, 192, 1),   # ExtraDW
    MQA(8, 48, 2, 192),
    UIB(3, 0, 768, 192, 1),   # ConvNext
    UIB(5, 5, 768, 512, 2),   # ExtraDW
    UIB(5, 5, 2048, 512, 1),  # ExtraDW
    UIB(5, 5, 2048, 512, 1),  # ExtraDW
    UIB(5, 5, 2048, 512, 1),  # ExtraDW
    UIB(5, 0, 2048, 512, 1),  # ConvNext
    UIB(5, 3, 2048, 512, 1),  # ExtraDW
    UIB(5, 0, 2048, 512, 1),  # ConvNext
    UIB(5, 0, 2048, 512, 1),  # ConvNext
    UIB(5, 3, 2048, 512, 1),  # ExtraDW
    UIB(5, 5, 2048, 512, 1),  # ExtraDW
    MQA(8, 64, 1, 512),
    UIB(5, 0, 2048, 512, 1),  # ConvNext
    MQA(8, 64, 1, 512),
    UIB(5, 0, 2048, 512, 1),  # ConvNext
    MQA(8, 64, 1, 512),
    UIB(5, 0, 2048, 512, 1),  # ConvNext
    MQA(8, 64, 1, 512),
    UIB(5, 0, 2048, 512, 1),  # ConvNext
    Conv(1, LAST_CONV, 1),
)

CONFIGS: dict[str, tuple[Row, ...]] = {
    "conv_small": CONV_SMALL, "conv_medium": CONV_MEDIUM, "conv_large": CONV_LARGE,
    "hybrid_medium": HYBRID_MEDIUM, "hybrid_large": HYBRID_LARGE,
}
ACTIVATION: dict[str, Activation] = {"hybrid_large": "gelu"}  # ReLU elsewhere
LAYER_SCALE_INIT = 1e-5  # on every UIB and MQA of the hybrids


def expansion_width(in_width: int, row: UIB | FusedIB, table_in: int) -> int:
    """The expanded width as a ratio of the (scaled) input, rounded to 8, as the
    reference code's ``expand_ratio``: exactly the table's dim at width 1."""
    return make_divisible(in_width * row.exp / table_in)


class MobileNetV4(MobileNet):
    """A MobileNetV4 from its table: the first row is the stem, the last the 1x1
    conv to 960; then pool, 1x1 conv to 1280 (no bias) + BN + act, dropout, classifier.

    ``width`` scales every width but the stem's (kept below 1, as timm's
    ``fix_stem``) and the 1280 head. BatchNorm eps 1e-5 and momentum 0.1 (timm's,
    whose weights these are).
    """

    def __init__(
        self,
        n_classes: int = 1000,
        input_channel: int = 3,
        config: Literal["conv_small", "conv_medium", "conv_large", "hybrid_medium", "hybrid_large"] = "conv_small",
        dropout: float = 0.2,
        *,
        width: float = 1.0,
        padding: Padding = "symmetric",
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
        layer_scale: float | None = None,
        features_only: bool = False,
        out_indices: Sequence[int] | None = None,
        output_stride: int = 32,
    ) -> None:
        check_choice("config", config, tuple(CONFIGS))
        check_positive("width", width)
        check_positive("input_channel", input_channel)
        check_choice("padding", padding, PADDINGS)
        if layer_scale is None and config.startswith("hybrid"):
            layer_scale = LAYER_SCALE_INIT
        rows = CONFIGS[config]
        act = ACTIVATION.get(config, "relu")
        conv_args = dict(padding=padding, bn_eps=bn_eps, bn_momentum=bn_momentum)
        stem_row, *body, last_row = rows
        stem_width = stem_row.out if width < 1.0 else make_divisible(stem_row.out * width)
        stem = ConvNormAct(input_channel, stem_width, stem_row.kernel, stem_row.stride, act=act, **conv_args)
        blocks: list[nn.Module] = []
        in_ch, table_in = stem_width, stem_row.out
        for row in body:
            out = make_divisible(row.out * width)
            if isinstance(row, Conv):
                block = ConvNormAct(in_ch, out, row.kernel, row.stride, act=act, **conv_args)
            elif isinstance(row, FusedIB):
                block = FusedInvertedBottleneck(in_ch, expansion_width(in_ch, row, table_in), out, row.kernel,
                                                row.stride, act, **conv_args)
            elif isinstance(row, UIB):
                block = UniversalInvertedBottleneck(in_ch, expansion_width(in_ch, row, table_in), out,
                                                    row.start_dw, row.mid_dw, row.stride, act,
                                                    layer_scale=layer_scale, **conv_args)
            else:
                block = MobileMQA(in_ch, out, row.heads, row.key_dim, row.kv_stride, layer_scale=layer_scale,
                                  **conv_args)
            blocks.append(block)
            in_ch, table_in = out, row.out
        last = make_divisible(last_row.out * width)
        super().__init__(
            stem,
            blocks,
            ConvNormAct(in_ch, last, 1, act=act, **conv_args),
            num_features=last,
            num_classes=n_classes,
            head_width=HEAD,
            head_act=act,
            head_norm=nn.BatchNorm1d(HEAD, eps=bn_eps, momentum=bn_momentum),
            dropout=dropout,
            features_only=features_only,
            out_indices=out_indices,
            output_stride=output_stride,
        )
        self.config = config
        self.width = width
        # Constructor arguments, saved with the weights so a file rebuilds its own model.
        self.arch_args = dict(n_classes=n_classes, input_channel=input_channel, config=config, dropout=dropout,
                              width=width, padding=padding, bn_eps=bn_eps, bn_momentum=bn_momentum,
                              layer_scale=layer_scale, output_stride=output_stride)
        init_weights(self)  # leaves each LayerScale at its init
