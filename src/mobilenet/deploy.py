"""Inference form of a model: BatchNorm folded into the conv before it.

Every exporter and the quantizer start from this form. Folding by hand (rather than
leaving it to each backend) means the ONNX, ExecuTorch and TorchScript files hold the
same graph, with no BatchNorm left for a runtime to mishandle, and the folded
weights are the ones quantized per channel.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from .layers import ConvNormAct


def fold_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """The weight and bias of ``conv`` followed by ``bn`` in eval mode:
    ``w' = w * g / sqrt(v + eps)``, ``b' = (b - m) * g / sqrt(v + eps) + beta``."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    weight = conv.weight * scale.reshape(-1, 1, 1, 1)
    return weight, (bias - bn.running_mean) * scale + bn.bias


@torch.no_grad()
def deploy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode with every ``ConvNormAct``'s BatchNorm folded
    into its conv (which gains a bias) and replaced by ``nn.Identity``. The input
    model is left untouched; outputs agree to float rounding. The copy's weights are
    in the standard (contiguous) layout whatever the input's: a model trained or
    evaluated in channels_last would otherwise carry that layout into every exported
    graph, where ExecuTorch's XNNPACK lowering rejects it.

    The conv keeps its class (``SameConv2d`` keeps TensorFlow padding) and the
    module names stay, so ``stem.conv.weight`` still names the stem's weight.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"deploy() takes an nn.Module, got {type(model).__name__}")
    fused = copy.deepcopy(model).eval().to(memory_format=torch.contiguous_format)
    for module in fused.modules():
        if isinstance(module, ConvNormAct) and isinstance(module.bn, nn.BatchNorm2d):
            if not module.bn.track_running_stats or module.bn.running_var is None:
                raise ValueError("cannot fold a BatchNorm that keeps no running statistics")
            weight, bias = fold_bn(module.conv, module.bn)
            module.conv.weight = nn.Parameter(weight.detach().clone())
            module.conv.bias = nn.Parameter(bias.detach().clone())
            module.bn = nn.Identity()
    fused.deployed = True
    return fused


def is_deployed(model: nn.Module) -> bool:
    """True when no BatchNorm is left in ``model``."""
    return not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
