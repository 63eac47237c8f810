"""Building blocks shared by every MobileNet: the channel rule, conv-BN-act, the
depthwise-separable unit (V1), the inverted residual (V2, V3) and squeeze-excite (V3).

Submodule names are part of the weight format (``stem.conv.weight``,
``blocks.3.dw.bn.running_var``...): never rename them.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Activation = Literal["relu", "relu6", "hswish", "gelu"]
Padding = Literal["symmetric", "same"]

def eager_in_place() -> bool:
    """Whether an activation may overwrite its input: in plain eager PyTorch, yes; while
    ``torch.compile``, ``torch.export`` (so ONNX, ExecuTorch and PT2E quantization) or
    ``torch.jit.trace`` capture the graph, no, so every captured graph is pure.

    Why bother: an out-of-place activation writes a fresh tensor the size of the feature
    map. On a 2-core CPU that made eager V2 at batch 32 9% slower than torchvision's
    in-place ReLU6 (and torchvision 15% slower with its in-place turned off). Every
    activation here follows a BatchNorm or a conv, whose backward does not read that
    output, so gradients are unchanged; autograd's version check would raise, not
    silently differ, if that ever stopped being true.
    """
    return not (torch.compiler.is_compiling() or torch.jit.is_tracing())


class ReLU(nn.ReLU):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x, inplace=eager_in_place())


class ReLU6(nn.ReLU6):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(x, inplace=eager_in_place())


class Hardswish(nn.Hardswish):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.hardswish(x, inplace=eager_in_place())


class Hardsigmoid(nn.Hardsigmoid):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.hardsigmoid(x, inplace=eager_in_place())


_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": ReLU,
    "relu6": ReLU6,
    "hswish": Hardswish,
    "gelu": nn.GELU,  # exact (erf) GELU, as MobileNetV4-Hybrid-L uses; no in-place form exists
}
PADDINGS = ("symmetric", "same")


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to the nearest multiple of ``divisor``, never below
    ``min_value`` (default ``divisor``) and never more than 10% below ``value``.

    The rule of Google's reference code (MobileNetV2 paper, section 6.1, and
    tensorflow/models ``mobilenet.py``), used by V2 and V3 for every width.
    """
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def make_activation(name: str | None) -> nn.Module:
    if name is None:
        return nn.Identity()
    try:
        return _ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; expected one of {sorted(_ACTIVATIONS)}") from None


def check_choice(argument: str, value: object, choices: tuple) -> None:
    if value not in choices:
        raise ValueError(f"{argument}={value!r} is not supported; expected one of {list(choices)}")


def check_positive(argument: str, value: float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
        raise ValueError(f"{argument} must be a positive number, got {value!r}")


def check_probability(argument: str, value: float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value < 1.0:
        raise ValueError(f"{argument} must be in [0, 1), got {value!r}")


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow's "SAME" padding: the total padding depends on the
    input size and the odd pixel goes after (bottom/right). Needed for weights
    trained in TensorFlow; for stride 1 and odd kernels it equals symmetric padding.
    """

    def _same_pad(self, size: int, dim: int) -> tuple[int, int]:
        stride, kernel, dilation = self.stride[dim], self.kernel_size[dim], self.dilation[dim]
        out = math.ceil(size / stride)
        total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
        return total // 2, total - total // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = self._same_pad(x.shape[-2], 0)
        left, right = self._same_pad(x.shape[-1], 1)
        if top or bottom or left or right:
            x = F.pad(x, (left, right, top, bottom))
        return super().forward(x)


def make_conv(
    in_ch: int,
    out_ch: int,
    kernel: int,
    stride: int = 1,
    groups: int = 1,
    dilation: int = 1,
    padding: Padding = "symmetric",
    bias: bool = False,
) -> nn.Conv2d:
    if padding == "same" and stride > 1:
        return SameConv2d(in_ch, out_ch, kernel, stride, 0, dilation, groups, bias=bias)
    pad = (kernel - 1) // 2 * dilation
    return nn.Conv2d(in_ch, out_ch, kernel, stride, pad, dilation, groups, bias=bias)


class ConvNormAct(nn.Sequential):
    """conv (no bias) -> BatchNorm -> activation; ``act=None`` leaves it linear."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: int = 1,
        stride: int = 1,
        groups: int = 1,
        act: str | None = "relu",
        *,
        dilation: int = 1,
        padding: Padding = "symmetric",
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
    ) -> None:
        layers = OrderedDict(
            conv=make_conv(in_ch, out_ch, kernel, stride, groups, dilation, padding),
            bn=nn.BatchNorm2d(out_ch, eps=bn_eps, momentum=bn_momentum),
        )
        if act is not None:
            layers["act"] = make_activation(act)
        super().__init__(layers)
        self.out_channels = out_ch
        self.stride = stride

    def describe(self) -> dict:
        """This layer as a row of a paper's architecture table (``mobilenet info --layers``)."""
        k = self.conv.kernel_size[0]
        kind = "conv2d dw" if self.conv.groups > 1 and self.conv.groups == self.conv.in_channels else "conv2d"
        return {"operator": f"{kind} {k}x{k}", "out": self.out_channels, "act": act_name(self), "stride": self.stride}


def act_name(module: nn.Module) -> str | None:
    """Our name of the first activation inside ``module`` ("relu", "hswish"...), None if linear."""
    for m in module.modules():
        for name, cls in _ACTIVATIONS.items():
            if type(m) is cls:
                return name
    return None


class SqueezeExcite(nn.Module):
    """Squeeze-and-excite as MobileNetV3 uses it (section 5.3): global average,
    1x1 conv to ``squeeze`` channels, ReLU, 1x1 conv back, hard-sigmoid gate."""

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.act = ReLU()
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.gate = Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.mean((2, 3), keepdim=True)
        scale = self.gate(self.fc2(self.act(self.fc1(scale))))
        return x * scale


class DepthwiseSeparable(nn.Module):
    """MobileNetV1's unit (paper Figure 3): 3x3 depthwise + BN + act, then
    1x1 pointwise + BN + act. No residual."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, act: str, **conv_args) -> None:
        super().__init__()
        self.dw = ConvNormAct(in_ch, in_ch, 3, stride, groups=in_ch, act=act, **conv_args)
        self.pw = ConvNormAct(in_ch, out_ch, 1, act=act, **conv_args)
        self.out_channels = out_ch
        self.stride = stride

    def describe(self) -> dict:
        return {"operator": "conv dw 3x3 + conv 1x1", "out": self.out_channels, "act": act_name(self),
                "stride": self.stride}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw(self.dw(x))


class InvertedResidual(nn.Module):
    """The bottleneck of MobileNetV2 (paper Figure 3d, Table 1) and V3 (Figure 4).

    1x1 expansion + BN + act (absent when ``exp_ch == in_ch``, like V2's first
    block), kxk depthwise + BN + act, squeeze-excite on the expanded width
    (V3), 1x1 linear projection + BN. The input is added back when the stride is
    1 and the widths match.
    """

    def __init__(
        self,
        in_ch: int,
        exp_ch: int,
        out_ch: int,
        kernel: int,
        stride: int,
        act: str,
        se_ch: int = 0,
        **conv_args,
    ) -> None:
        super().__init__()
        # Identity holds no weights, so absent parts leave no state-dict keys.
        self.expand = ConvNormAct(in_ch, exp_ch, 1, act=act, **conv_args) if exp_ch != in_ch else nn.Identity()
        self.dw = ConvNormAct(exp_ch, exp_ch, kernel, stride, groups=exp_ch, act=act, **conv_args)
        self.se = SqueezeExcite(exp_ch, se_ch) if se_ch else nn.Identity()
        self.project = ConvNormAct(exp_ch, out_ch, 1, act=None, **conv_args)
        self.use_residual = stride == 1 and in_ch == out_ch
        self.out_channels = out_ch
        self.stride = stride

    def describe(self) -> dict:
        k = self.dw.conv.kernel_size[0]
        return {"operator": f"bneck {k}x{k}", "exp": self.dw.out_channels, "out": self.out_channels,
                "se": not isinstance(self.se, nn.Identity), "act": act_name(self.dw), "stride": self.stride}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.se(self.dw(self.expand(x))))
        if not self.use_residual:
            return out
        # ``out`` is the projection's fresh output (its backward does not read it): the
        # sum may go into it in eager mode, as the activations do (see eager_in_place).
        return out.add_(x) if eager_in_place() else x + out
