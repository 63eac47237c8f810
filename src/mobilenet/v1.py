"""MobileNetV1 (Howard et al. 2017, arXiv 1704.04861)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from .layers import PADDINGS, ConvNormAct, DepthwiseSeparable, Padding, check_choice, check_positive
from .model import MobileNet, init_weights


@dataclass(frozen=True)
class Unit:
    """One depthwise-separable row of Table 1: 3x3 depthwise at ``stride``,
    then 1x1 pointwise to ``out`` channels."""

    stride: int
    out: int


STEM = 32  # Table 1, first row: Conv / s2, 3x3x3x32

# Table 1, the 13 "Conv dw / Conv 1x1" pairs. The table prints the last depthwise as
# "s2" on a 7x7 input; every official release (TF-slim, Keras) and the table's own
# output size (7x7) use stride 1 there, which we follow.
UNITS: tuple[Unit, ...] = (
    Unit(1, 64),
    Unit(2, 128),
    Unit(1, 128),
    Unit(2, 256),
    Unit(1, 256),
    Unit(2, 512),
    Unit(1, 512),
    Unit(1, 512),
    Unit(1, 512),
    Unit(1, 512),
    Unit(1, 512),
    Unit(2, 1024),
    Unit(1, 1024),
)


def reduce_tail(units: Sequence[Unit]) -> tuple[Unit, ...]:
    """The V3 paper's RF2 (Section 6.3) on V1: the units from the last strided one
    (to stride 32) on have half the channels."""
    start = max(i for i, unit in enumerate(units) if unit.stride == 2)
    return (*units[:start], *(replace(unit, out=unit.out // 2) for unit in units[start:]))


def v1_width(channels: int, multiplier: float) -> int:
    """Section 4.2's width multiplier as TF-slim applies it: ``max(int(c * a), 8)``."""
    return max(int(channels * multiplier), 8)


class MobileNetV1(MobileNet):
    """MobileNetV1: a 3x3/s2 stem, 13 depthwise-separable units, pooling, dropout
    and a linear classifier.

    ``depth_multiplier`` is the paper's width multiplier alpha. ``dropout`` defaults
    to TF-slim's 0.001 (``dropout_keep_prob=0.999``), not 0.8: that is a keep
    probability that some ports mistake for a drop rate. ``output_stride`` 16 or 8
    dilates the last units (the V2 paper's DeepLabv3 setting for V1, Section 6.3),
    ``reduced_tail`` halves the last stage.
    """

    def __init__(
        self,
        n_classes: int = 1000,
        input_channel: int = 3,
        depth_multiplier: float = 1.0,
        use_relu6: bool = True,
        *,
        dropout: float = 0.001,
        padding: Padding = "symmetric",
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
        units: Sequence[Unit] = UNITS,
        features_only: bool = False,
        out_indices: Sequence[int] | None = None,
        output_stride: int = 32,
        reduced_tail: bool = False,
    ) -> None:
        check_positive("depth_multiplier", depth_multiplier)
        check_choice("reduced_tail", reduced_tail, (False, True))
        units = reduce_tail(units) if reduced_tail else units
        check_positive("input_channel", input_channel)
        check_choice("padding", padding, PADDINGS)
        act = "relu6" if use_relu6 else "relu"
        conv_args = dict(padding=padding, bn_eps=bn_eps, bn_momentum=bn_momentum)
        width = v1_width(STEM, depth_multiplier)
        stem = ConvNormAct(input_channel, width, 3, 2, act=act, **conv_args)
        blocks = []
        for unit in units:
            out = v1_width(unit.out, depth_multiplier)
            blocks.append(DepthwiseSeparable(width, out, unit.stride, act, **conv_args))
            width = out
        super().__init__(
            stem,
            blocks,
            None,
            num_features=width,
            num_classes=n_classes,
            dropout=dropout,
            features_only=features_only,
            out_indices=out_indices,
            output_stride=output_stride,
        )
        self.width = depth_multiplier
        # Constructor arguments, saved with the weights so a file rebuilds its own model.
        self.arch_args = dict(n_classes=n_classes, input_channel=input_channel, depth_multiplier=depth_multiplier, use_relu6=use_relu6, dropout=dropout, padding=padding, bn_eps=bn_eps, bn_momentum=bn_momentum,
                              output_stride=output_stride, reduced_tail=reduced_tail)
        init_weights(self)
