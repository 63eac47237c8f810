"""MobileNetV3 Large and Small (Howard et al. 2019, arXiv 1905.02244)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from .layers import (
    PADDINGS,
    Activation,
    ConvNormAct,
    InvertedResidual,
    Padding,
    check_choice,
    check_positive,
    make_divisible,
)
from .model import MobileNet, init_weights


@dataclass(frozen=True)
class Bneck:
    """One "bneck" row of Tables 1 and 2, in the paper's column order:
    kernel, exp size, #out, SE, NL, s."""

    kernel: int
    exp: int
    out: int
    se: bool
    act: Activation
    stride: int


RE, HS = "relu", "hswish"
STEM = 16  # conv2d 3x3, 16, hard-swish, s2 (both tables)

# Table 1: MobileNetV3-Large.
LARGE: tuple[Bneck, ...] = (
    #     k  exp  out    SE     NL  s
    Bneck(3, 16, 16, False, RE, 1),
    Bneck(3, 64, 24, False, RE, 2),
    Bneck(3, 72, 24, False, RE, 1),
    Bneck(5, 72, 40, True, RE, 2),
    Bneck(5, 120, 40, True, RE, 1),
    Bneck(5, 120, 40, True, RE, 1),
    Bneck(3, 240, 80, False, HS, 2),
    Bneck(3, 200, 80, False, HS, 1),
    Bneck(3, 184, 80, False, HS, 1),
    Bneck(3, 184, 80, False, HS, 1),
    Bneck(3, 480, 112, True, HS, 1),
    Bneck(3, 672, 112, True, HS, 1),
    Bneck(5, 672, 160, True, HS, 2),
    Bneck(5, 960, 160, True, HS, 1),
    Bneck(5, 960, 160, True, HS, 1),
)

# Table 2: MobileNetV3-Small. The table also marks SE on the 1x1 conv to 576 after
# the last bneck; Google's reference code, the released checkpoints, torchvision and
# timm have none there, and neither do we (its weights would not load otherwise).
SMALL: tuple[Bneck, ...] = (
    #     k  exp  out    SE     NL  s
    Bneck(3, 16, 16, True, RE, 2),
    Bneck(3, 72, 24, False, RE, 2),
    Bneck(3, 88, 24, False, RE, 1),
    Bneck(5, 96, 40, True, HS, 2),
    Bneck(5, 240, 40, True, HS, 1),
    Bneck(5, 240, 40, True, HS, 1),
    Bneck(5, 120, 48, True, HS, 1),
    Bneck(5, 144, 48, True, HS, 1),
    Bneck(5, 288, 96, True, HS, 2),
    Bneck(5, 576, 96, True, HS, 1),
    Bneck(5, 576, 96, True, HS, 1),
)

CONFIGS = {"large": LARGE, "small": SMALL}
HEAD = {"large": 1280, "small": 1024}  # the "conv2d 1x1, NBN" after the pool
LAST_CONV_RATIO = 6  # the conv2d 1x1 before the pool: 960 = 6 x 160, 576 = 6 x 96


def minimalistic(rows: Sequence[Bneck]) -> tuple[Bneck, ...]:
    """Google's "minimalistic" variant: no squeeze-excite, ReLU everywhere, 3x3
    kernels only (the released ``*_minimalistic`` checkpoints)."""
    return tuple(replace(row, kernel=3, se=False, act=RE) for row in rows)


def reduce_tail(rows: Sequence[Bneck]) -> tuple[Bneck, ...]:
    """Section 6.3's RF2, as torchvision's ``reduced_tail=True``: the rows from the last
    stride-2 bneck (C4) on have half the output channels, and the rows after it half
    the expansion too (the C4 row expands its unreduced input, so keeps its own)."""
    start = max(i for i, row in enumerate(rows) if row.stride == 2)
    tail = [replace(rows[start], out=rows[start].out // 2)]
    tail += [replace(row, exp=row.exp // 2, out=row.out // 2) for row in rows[start + 1:]]
    return (*rows[:start], *tail)


def expansion_width(in_width: int, row: Bneck, rows: Sequence[Bneck], index: int) -> int:
    """Google's reference scales the expansion as a ratio of the *scaled* input
    width (``expand_input_by_factor``), not the table's exp size times alpha."""
    table_in = STEM if index == 0 else rows[index - 1].out
    return make_divisible(in_width * row.exp / table_in)


def se_width(expanded: int) -> int:
    """Section 5.3: the squeeze is a quarter of the expansion layer, rounded to 8."""
    return make_divisible(expanded / 4)


def head_width(config: str, width: float, reduced_tail: bool = False) -> int:
    """The 1280/1024 head is kept for alpha <= 1 (the reference's
    ``finegrain_classification_mode``) and scaled above 1; RF2 halves it."""
    return make_divisible(HEAD[config] // (2 if reduced_tail else 1) * max(1.0, width))


class MobileNetV3(MobileNet):
    """MobileNetV3-Large or -Small: hard-swish stem, the bneck rows of Table 1 or 2,
    a 1x1 conv to 6x the last width, pooling, a 1x1 conv (bias, no BN) to
    1280/1024 with hard-swish, dropout 0.2, classifier.

    ``minimal=True`` builds the minimalistic variant. BatchNorm uses the paper's
    eps 1e-3 and momentum 0.01 (TensorFlow's decay 0.99). ``output_stride`` 16 or 8
    dilates the last stages, ``reduced_tail`` halves the last stage (see
    :func:`reduce_tail`): the backbone options of Section 6 (detection, segmentation).
    """

    def __init__(
        self,
        n_classes: int = 1000,
        input_channel: int = 3,
        config: Literal["large", "small"] = "large",
        dropout: float = 0.2,
        *,
        width: float = 1.0,
        minimal: bool = False,
        padding: Padding = "symmetric",
        bn_eps: float = 1e-3,
        bn_momentum: float = 0.01,
        features_only: bool = False,
        out_indices: Sequence[int] | None = None,
        output_stride: int = 32,
        reduced_tail: bool = False,
    ) -> None:
        check_choice("config", config, tuple(CONFIGS))
        check_choice("reduced_tail", reduced_tail, (False, True))
        check_positive("width", width)
        check_positive("input_channel", input_channel)
        check_choice("padding", padding, PADDINGS)
        rows = minimalistic(CONFIGS[config]) if minimal else CONFIGS[config]
        rows = reduce_tail(rows) if reduced_tail else rows
        act = RE if minimal else HS
        conv_args = dict(padding=padding, bn_eps=bn_eps, bn_momentum=bn_momentum)
        in_ch = make_divisible(STEM * width)
        stem = ConvNormAct(input_channel, in_ch, 3, 2, act=act, **conv_args)
        blocks = []
        for i, row in enumerate(rows):
            exp = expansion_width(in_ch, row, rows, i)
            out = make_divisible(row.out * width)
            se = se_width(exp) if row.se else 0
            blocks.append(InvertedResidual(in_ch, exp, out, row.kernel, row.stride, row.act, se, **conv_args))
            in_ch = out
        last = make_divisible(LAST_CONV_RATIO * rows[-1].out * width)
        super().__init__(
            stem,
            blocks,
            ConvNormAct(in_ch, last, 1, act=act, **conv_args),
            num_features=last,
            num_classes=n_classes,
            head_width=head_width(config, width, reduced_tail),
            head_act=act,
            dropout=dropout,
            features_only=features_only,
            out_indices=out_indices,
            output_stride=output_stride,
        )
        self.config = config
        self.width = width
        self.minimal = minimal
        # Constructor arguments, saved with the weights so a file rebuilds its own model.
        self.arch_args = dict(n_classes=n_classes, input_channel=input_channel, config=config, dropout=dropout, width=width, minimal=minimal, padding=padding, bn_eps=bn_eps, bn_momentum=bn_momentum,
                              output_stride=output_stride, reduced_tail=reduced_tail)
        init_weights(self)
