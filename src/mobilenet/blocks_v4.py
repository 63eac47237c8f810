"""The blocks MobileNetV4 adds (Qin et al. 2024, arXiv 2404.10518): the Universal
Inverted Bottleneck (Section 3.1, Figure 4), the fused inverted bottleneck, and Mobile
MQA (Section 3.2), with the layer scale the hybrid models put on each residual branch.

Submodule names are part of the weight format: never rename them. Each block can
describe itself as a row of the paper's appendix tables (``describe()``), which is
what ``mobilenet info --layers`` prints.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import ConvNormAct, act_name, eager_in_place, make_conv


class LayerScale(nn.Module):
    """A learned per-channel scale on a residual branch (CaiT, Touvron et al. 2021);
    MobileNetV4's hybrids start it at 1e-5 so each block begins close to identity."""

    def __init__(self, channels: int, init: float = 1e-5) -> None:
        super().__init__()
        self.init = init
        self.gamma = nn.Parameter(torch.full((channels,), float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma.view(1, -1, 1, 1)


def _residual(out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    # ``out`` is a fresh tensor no backward reads: in eager mode the sum may go into it.
    return out.add_(x) if eager_in_place() else x + out


class UniversalInvertedBottleneck(nn.Module):
    """UIB (Figure 4): [kxk depthwise + BN] -> 1x1 expansion + BN + act ->
    [kxk depthwise + BN + act] -> 1x1 projection + BN [-> layer scale] (+ input).

    The two optional depthwise convs give the paper's four instances:
    ExtraDW (start and middle), IB (middle only), ConvNext-like (start only) and
    FFN (neither). The stride goes on the middle depthwise conv where there is one,
    else on the start one. The start conv has no activation (as the reference code).
    """

    def __init__(
        self,
        in_ch: int,
        exp_ch: int,
        out_ch: int,
        start_dw: int,
        mid_dw: int,
        stride: int,
        act: str,
        *,
        layer_scale: float | None = None,
        **conv_args,
    ) -> None:
        super().__init__()
        if stride > 1 and not (start_dw or mid_dw):
            raise ValueError("a strided UIB needs a depthwise conv to carry the stride (an FFN cannot)")
        start_stride = 1 if mid_dw else stride
        self.start_dw = (ConvNormAct(in_ch, in_ch, start_dw, start_stride, groups=in_ch, act=None, **conv_args)
                         if start_dw else nn.Identity())
        self.expand = ConvNormAct(in_ch, exp_ch, 1, act=act, **conv_args)
        self.mid_dw = (ConvNormAct(exp_ch, exp_ch, mid_dw, stride, groups=exp_ch, act=act, **conv_args)
                       if mid_dw else nn.Identity())
        self.project = ConvNormAct(exp_ch, out_ch, 1, act=None, **conv_args)
        self.layer_scale = LayerScale(out_ch, layer_scale) if layer_scale is not None else nn.Identity()
        self.use_residual = stride == 1 and in_ch == out_ch
        self.in_channels, self.exp_channels, self.out_channels = in_ch, exp_ch, out_ch
        self.start_kernel, self.mid_kernel = start_dw, mid_dw
        self.stride = stride

    @property
    def kind(self) -> str:
        return {(True, True): "ExtraDW", (False, True): "IB", (True, False): "ConvNext",
                (False, False): "FFN"}[(bool(self.start_kernel), bool(self.mid_kernel))]

    def describe(self) -> dict:
        return {"operator": f"UIB {self.kind}", "start_dw": self.start_kernel or None,
                "mid_dw": self.mid_kernel or None, "exp": self.exp_channels, "out": self.out_channels,
                "act": act_name(self), "stride": self.stride}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layer_scale(self.project(self.mid_dw(self.expand(self.start_dw(x)))))
        return _residual(out, x) if self.use_residual else out


class FusedInvertedBottleneck(nn.Module):
    """Fused IB (EfficientNet-EdgeTPU's "fused MBConv"): a kxk full conv expands
    (+ BN + act, carrying the stride), a 1x1 conv projects (+ BN); residual when
    the stride is 1 and the widths match."""

    def __init__(self, in_ch: int, exp_ch: int, out_ch: int, kernel: int, stride: int, act: str,
                 **conv_args) -> None:
        super().__init__()
        self.expand = ConvNormAct(in_ch, exp_ch, kernel, stride, act=act, **conv_args)
        self.project = ConvNormAct(exp_ch, out_ch, 1, act=None, **conv_args)
        self.use_residual = stride == 1 and in_ch == out_ch
        self.in_channels, self.exp_channels, self.out_channels = in_ch, exp_ch, out_ch
        self.kernel, self.stride = kernel, stride

    def describe(self) -> dict:
        return {"operator": f"FusedIB {self.kernel}x{self.kernel}", "exp": self.exp_channels,
                "out": self.out_channels, "act": act_name(self), "stride": self.stride}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.expand(x))
        return _residual(out, x) if self.use_residual else out


class MobileMQA(nn.Module):
    """Mobile MQA (Section 3.2, Eq. 2): BatchNorm, then multi-query attention with
    ``heads`` query heads sharing one key and one value head, keys and values taken
    from a map downsampled by a strided kxk depthwise conv (+ BN) when
    ``kv_stride`` > 1, a 1x1 output projection [-> layer scale] (+ input).

    Projections are 1x1 convs without bias. The attention is written out (two matmuls
    and a softmax, the shared key and value broadcast over the query heads), laid out
    so that an exported graph needs one transpose per block: the key conv's output is
    already K^T, and ONNX Runtime folds the query's and value's transposes into its
    matmuls. ``scaled_dot_product_attention`` over several heads is what LiteRT's
    converter gets wrong (logits 4.5e-3 off); folding the heads into the query sequence
    for it costs two reshapes and a transpose more per block (docs/architectures.md).
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        heads: int,
        key_dim: int,
        kv_stride: int = 1,
        kernel: int = 3,
        *,
        layer_scale: float | None = None,
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
        padding: str = "symmetric",
    ) -> None:
        super().__init__()
        conv_args = dict(padding=padding, bn_eps=bn_eps, bn_momentum=bn_momentum)
        self.norm = nn.BatchNorm2d(in_ch, eps=bn_eps, momentum=bn_momentum)
        self.query = make_conv(in_ch, heads * key_dim, 1)
        if kv_stride > 1:
            self.key_down = ConvNormAct(in_ch, in_ch, kernel, kv_stride, groups=in_ch, act=None, **conv_args)
            self.value_down = ConvNormAct(in_ch, in_ch, kernel, kv_stride, groups=in_ch, act=None, **conv_args)
        else:
            self.key_down, self.value_down = nn.Identity(), nn.Identity()
        self.key = make_conv(in_ch, key_dim, 1)
        self.value = make_conv(in_ch, key_dim, 1)  # value dim = key dim in every V4 model
        self.output = make_conv(heads * key_dim, out_ch, 1)
        self.layer_scale = LayerScale(out_ch, layer_scale) if layer_scale is not None else nn.Identity()
        self.use_residual = in_ch == out_ch
        self.heads, self.key_dim, self.kv_stride, self.kernel = heads, key_dim, kv_stride, kernel
        self.scale = key_dim**-0.5  # 1/sqrt(key dim), as the reference
        self.in_channels, self.out_channels = in_ch, out_ch
        self.stride = 1

    def describe(self) -> dict:
        kv = f", kv stride {self.kv_stride}" if self.kv_stride > 1 else ""
        return {"operator": f"Mobile MQA {self.heads} heads x {self.key_dim}{kv}", "out": self.out_channels,
                "stride": 1}

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        heads, dim = self.heads, self.key_dim
        # queries [B, heads * dim, H, W] -> [B, heads, HW, dim]; the one key head as [B, 1, dim, M]
        # (already K^T) and the one value head as [B, 1, M, dim], broadcast over the query heads.
        q = self.query(x).reshape(b, heads, dim, h * w).transpose(-1, -2)
        k_t = self.key(self.key_down(x)).reshape(b, 1, dim, -1)
        v = self.value(self.value_down(x)).reshape(b, 1, dim, -1).transpose(-1, -2)
        attn = torch.softmax((q * self.scale) @ k_t, dim=-1)
        o = attn @ v  # [B, heads, HW, dim]
        return self.output(o.transpose(-1, -2).reshape(b, heads * dim, h, w))  # head-major channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layer_scale(self.attend(self.norm(x)))
        return _residual(out, x) if self.use_residual else out
