"""What every MobileNet shares around its blocks: the classifier head, the
``forward_features``/``forward_head`` split, ``reset_classifier`` and
``features_only`` feature maps with their ``feature_info``.

An architecture module builds ``stem``, ``blocks`` and ``last_conv`` from its
paper's table and hands them to :class:`MobileNet`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from .layers import SameConv2d, check_choice, check_probability, make_activation

FEATURE_REDUCTIONS = (2, 4, 8, 16, 32)
OUTPUT_STRIDES = (8, 16, 32)
# Where a dense head taps a feature map of a given stride: "first" is the output of the
# module that brings the map to that stride (the strided block, torchvision's "C" stage
# markers), "last" the last module at that stride (the backbone's final 1x1 conv
# included), "last_block" the last block at that stride (without that conv: the V2
# paper's "second last feature map").
TapPosition = Literal["first", "last", "last_block"]
TAP_POSITIONS = ("first", "last", "last_block")


@dataclass(frozen=True)
class FeatureInfo:
    """One feature map of a ``features_only`` model."""

    index: int  # position in FEATURE_REDUCTIONS: the level the map has without dilation
    channels: int
    reduction: int  # its real stride (below the level's own when output_stride < 32)
    module: str  # name of the module whose output it is, e.g. "blocks.5"


def dilate(module: nn.Module, dilation: int, *, remove_stride: bool) -> None:
    """Make ``module``'s kxk convs atrous with ``dilation`` and, if it is the module that
    would have strided (``remove_stride``), its convs stride 1: same output size, the
    receptive field of the removed stride (the DeepLab papers' atrous trick), placed as
    torchvision's ``dilated=True`` does (the strided block is dilated too). Strides
    inside a stride-1 module (V4's Mobile MQA key/value downsampling) are kept.
    Weights are unchanged."""
    for conv in module.modules():
        if not isinstance(conv, nn.Conv2d):
            continue
        if remove_stride:
            conv.stride = (1, 1)
        if conv.kernel_size != (1, 1):
            conv.dilation = (dilation, dilation)
            if not isinstance(conv, SameConv2d):  # SAME padding is computed per input
                conv.padding = tuple((k - 1) // 2 * dilation for k in conv.kernel_size)


class MobileNet(nn.Module):
    """stem -> blocks -> last_conv -> pool -> [head_fc -> act] -> dropout -> classifier.

    ``head_fc`` is the 1x1 conv without BatchNorm that MobileNetV3 applies after
    pooling (a Linear layer, since its input is 1x1); V1 and V2 have none.
    MobileNetV4 passes ``head_norm``: its head conv has no bias and a BatchNorm.
    """

    def __init__(
        self,
        stem: nn.Module,
        blocks: Sequence[nn.Module],
        last_conv: nn.Module | None,
        *,
        num_features: int,
        num_classes: int,
        head_width: int = 0,
        head_act: str | None = None,
        head_norm: nn.Module | None = None,
        dropout: float,
        features_only: bool = False,
        out_indices: Sequence[int] | None = None,
        output_stride: int = 32,
    ) -> None:
        super().__init__()
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 0:
            raise ValueError(f"num_classes must be a non-negative integer, got {num_classes!r}")
        check_probability("dropout", dropout)
        check_choice("output_stride", output_stride, OUTPUT_STRIDES)
        self.stem = stem
        self.blocks = nn.Sequential(*blocks)
        self.last_conv = last_conv if last_conv is not None else nn.Identity()
        self.num_features = num_features  # channels out of forward_features
        self.output_stride = output_stride
        self._points = self._apply_output_stride(output_stride)
        self.features_only = features_only
        self.feature_info = self._feature_info(out_indices)
        if features_only:
            return
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        if head_width:
            self.head_fc = nn.Linear(num_features, head_width, bias=head_norm is None)
            self.head_act = make_activation(head_act)
        else:
            self.head_fc, self.head_act = nn.Identity(), nn.Identity()
        self.head_norm = head_norm if head_norm is not None else nn.Identity()
        self.head_hidden_size = head_width or num_features  # width of pre-logits
        self.dropout = nn.Dropout(dropout)
        self.num_classes = num_classes
        self.classifier = self._make_classifier(num_classes)

    # -- features ---------------------------------------------------------------
    def _feature_modules(self) -> list[tuple[str, nn.Module]]:
        named = [("stem", self.stem)]
        named += [(f"blocks.{i}", block) for i, block in enumerate(self.blocks)]
        if not isinstance(self.last_conv, nn.Identity):
            named.append(("last_conv", self.last_conv))
        return named

    def _apply_output_stride(self, output_stride: int) -> list[FeatureInfo]:
        """Dilate every module past ``output_stride`` (see :func:`dilate`); returns each
        module's map: its level (stride without dilation) and its real stride."""
        points, reduction, dilation = [], 1, 1
        for name, module in self._feature_modules():
            strided = reduction * module.stride > output_stride
            if strided:
                dilation *= module.stride
                module.stride = 1
            if dilation > 1:
                dilate(module, dilation, remove_stride=strided)
            reduction *= module.stride
            level = FEATURE_REDUCTIONS.index(reduction * dilation)
            points.append(FeatureInfo(level, module.out_channels, reduction, name))
        return points

    def _feature_info(self, out_indices: Sequence[int] | None) -> list[FeatureInfo]:
        """The last module at each level (strides 2, 4, 8, 16, 32 without dilation)
        gives that level's map; its ``reduction`` is the real stride."""
        last_at = {p.index: p for p in self._points}
        indices = tuple(range(len(FEATURE_REDUCTIONS))) if out_indices is None else tuple(out_indices)
        for i in indices:
            if not isinstance(i, int) or not 0 <= i < len(FEATURE_REDUCTIONS):
                raise ValueError(f"out_indices must hold integers in 0..4 (strides 2..32), got {list(indices)}")
        return [last_at[i] for i in indices]

    def feature_at(self, stride: int, at: TapPosition = "last") -> FeatureInfo:
        """The feature map a dense head taps at real ``stride`` (see ``TapPosition``)."""
        check_choice("at", at, TAP_POSITIONS)
        points = [p for p in self._points if p.reduction == stride]
        if at == "last_block":
            points = [p for p in points if p.module.startswith("blocks.")]
        if not points:
            strides = sorted({p.reduction for p in self._points})
            raise ValueError(f"{type(self).__name__} at output_stride {self.output_stride} has no {at!r} "
                             f"feature map at stride {stride}; its strides: {strides}")
        return points[0] if at == "first" else points[-1]

    def truncate(self, module: str) -> None:
        """Drop every module after ``module`` (a dense backbone keeps what its head taps)."""
        names = [name for name, _ in self._feature_modules()]
        if module not in names:
            raise ValueError(f"no module {module!r}; expected one of {names}")
        if module != "last_conv":
            self.last_conv = nn.Identity()
        if module.startswith("blocks."):
            self.blocks = self.blocks[: int(module.split(".")[1]) + 1]
        elif module == "stem":
            self.blocks = nn.Sequential()
        self._points = [p for p in self._points if p.module in names[: names.index(module) + 1]]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.last_conv(self.blocks(self.stem(x)))

    def forward_feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        wanted = {f.module for f in self.feature_info}
        maps: dict[str, torch.Tensor] = {}
        for name, module in self._feature_modules():
            x = module(x)
            if name in wanted:
                maps[name] = x
                if len(maps) == len(wanted):
                    break
        return [maps[f.module] for f in self.feature_info]

    # -- head --------------------------------------------------------------------
    def _make_classifier(self, num_classes: int) -> nn.Module:
        return nn.Linear(self.head_hidden_size, num_classes) if num_classes > 0 else nn.Identity()

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_act(self.head_norm(self.head_fc(self.flatten(self.pool(x)))))
        x = self.dropout(x)
        return x if pre_logits else self.classifier(x)

    def reset_classifier(self, num_classes: int) -> None:
        """A new, freshly initialised classifier for ``num_classes`` (0 removes it)."""
        if self.features_only:
            raise RuntimeError("a features_only model has no classifier")
        if not isinstance(num_classes, int) or num_classes < 0:
            raise ValueError(f"num_classes must be a non-negative integer, got {num_classes!r}")
        self.num_classes = num_classes
        if hasattr(self, "arch_args"):
            self.arch_args["n_classes"] = num_classes
        self.classifier = self._make_classifier(num_classes)
        if num_classes > 0:
            init_linear(self.classifier)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        if self.features_only:
            return self.forward_feature_maps(x)
        return self.forward_head(self.forward_features(x))


def init_linear(layer: nn.Linear) -> None:
    nn.init.normal_(layer.weight, 0.0, 0.01)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


def init_weights(model: nn.Module) -> None:
    """He-normal convs, unit BatchNorm, small-normal linears (as torchvision's
    MobileNets initialise)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            init_linear(m)
