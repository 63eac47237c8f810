"""MobileNetV2 (Sandler et al. 2018, arXiv 1801.04381)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from .layers import (
    PADDINGS,
    ConvNormAct,
    InvertedResidual,
    Padding,
    check_choice,
    check_positive,
    make_divisible,
)
from .model import MobileNet, init_weights


@dataclass(frozen=True)
class Stage:
    """One row of Table 2: ``n`` bottlenecks with expansion factor ``t`` and
    ``c`` output channels; the first of them has stride ``s``, the rest 1."""

    t: int
    c: int
    n: int
    s: int


STEM = 32  # Table 2, first row: conv2d 3x3, 32, s2
LAST_CONV = 1280  # Table 2, the conv2d 1x1 before the pool

# Table 2 (input 224x224), the bottleneck rows.
STAGES: tuple[Stage, ...] = (
    #     t    c   n  s
    Stage(1, 16, 1, 1),
    Stage(6, 24, 2, 2),
    Stage(6, 32, 3, 2),
    Stage(6, 64, 4, 2),
    Stage(6, 96, 3, 1),
    Stage(6, 160, 3, 2),
    Stage(6, 320, 1, 1),
)


def last_conv_width(width: float, reduced_tail: bool = False) -> int:
    """Section 6.1: the last conv keeps 1280 channels for width < 1 and grows above
    (halved with ``reduced_tail``)."""
    return make_divisible(LAST_CONV // (2 if reduced_tail else 1) * max(1.0, width))


def reduce_tail(stages: Sequence[Stage]) -> tuple[Stage, ...]:
    """The V3 paper's RF2 (Section 6.3) on V2: the stages from the last strided one
    (to stride 32) on have half the channels; expansions follow (t x input)."""
    start = max(i for i, stage in enumerate(stages) if stage.s == 2)
    return (*stages[:start], *(replace(stage, c=stage.c // 2) for stage in stages[start:]))


class MobileNetV2(MobileNet):
    """MobileNetV2: stem, 17 inverted-residual bottlenecks with linear
    projections, a 1x1 conv to 1280, pooling, dropout 0.2, classifier.

    Every width is ``make_divisible(c * width, 8)``; the first bottleneck (t=1)
    has no expansion conv. ``output_stride`` 16 or 8 dilates the last stages (the
    paper's Section 6.3 DeepLabv3 setting), ``reduced_tail`` halves the last stage.
    """

    def __init__(
        self,
        n_classes: int = 1000,
        input_channel: int = 3,
        dropout: float = 0.2,
        *,
        width: float = 1.0,
        padding: Padding = "symmetric",
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
        stages: Sequence[Stage] = STAGES,
        features_only: bool = False,
        out_indices: Sequence[int] | None = None,
        output_stride: int = 32,
        reduced_tail: bool = False,
    ) -> None:
        check_positive("width", width)
        check_choice("reduced_tail", reduced_tail, (False, True))
        stages = reduce_tail(stages) if reduced_tail else stages
        check_positive("input_channel", input_channel)
        check_choice("padding", padding, PADDINGS)
        conv_args = dict(padding=padding, bn_eps=bn_eps, bn_momentum=bn_momentum)
        in_ch = make_divisible(STEM * width)
        stem = ConvNormAct(input_channel, in_ch, 3, 2, act="relu6", **conv_args)
        blocks = []
        for stage in stages:
            out = make_divisible(stage.c * width)
            for i in range(stage.n):
                stride = stage.s if i == 0 else 1
                blocks.append(InvertedResidual(in_ch, in_ch * stage.t, out, 3, stride, "relu6", **conv_args))
                in_ch = out
        last = last_conv_width(width, reduced_tail)
        super().__init__(
            stem,
            blocks,
            ConvNormAct(in_ch, last, 1, act="relu6", **conv_args),
            num_features=last,
            num_classes=n_classes,
            dropout=dropout,
            features_only=features_only,
            out_indices=out_indices,
            output_stride=output_stride,
        )
        self.width = width
        # Constructor arguments, saved with the weights so a file rebuilds its own model.
        self.arch_args = dict(n_classes=n_classes, input_channel=input_channel, dropout=dropout, width=width, padding=padding, bn_eps=bn_eps, bn_momentum=bn_momentum,
                              output_stride=output_stride, reduced_tail=reduced_tail)
        init_weights(self)
