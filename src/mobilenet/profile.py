"""Parameters and multiply-accumulates, counted from a real forward pass."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode


@dataclass(frozen=True)
class Profile:
    """Counts for one model at one resolution.

    ``params`` and ``macs`` follow PyTorch's convention (BatchNorm's weight and bias
    counted, the model's own class count). ``tf_slim_params`` is the figure that
    TF-slim's tables print: no BatchNorm parameters (folded away) and 1001 classes
    (a "background" class first); ``tf_slim_macs`` likewise for 1001 classes.
    """

    resolution: int
    params: int
    macs: int
    bn_params: int
    tf_slim_params: int
    tf_slim_macs: int


def _macs_hook(counter: list[int]):
    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        if isinstance(module, nn.Conv2d):
            kernel = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
            counter[0] += output.numel() // output.shape[0] * kernel
        else:  # nn.Linear
            counter[0] += output.numel() // output.shape[0] * module.in_features

    return hook


class _MatmulMacs(TorchFunctionMode):
    """Counts the products of attention that no layer holds: ``scaled_dot_product_attention``
    (Q K^T and the weighted sum of V) and plain matmuls. torch's FlopCounterMode misses
    the fused attention kernel on CPU; a function mode sees the call itself."""

    def __init__(self, counter: list[int], batch: int) -> None:
        super().__init__()
        self.counter, self.batch = counter, batch

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention:
            q, k, v = args[:3]
            rows = q.numel() // q.shape[-1]  # batch x heads x queries
            self.counter[0] += rows * k.shape[-2] * (q.shape[-1] + v.shape[-1]) // self.batch
        elif func in (torch.matmul, torch.bmm, torch.Tensor.matmul, torch.Tensor.__matmul__):
            a, b = args[:2]
            out = torch.broadcast_shapes(a.shape[:-2], b.shape[:-2]).numel() if a.dim() > 2 or b.dim() > 2 else 1
            self.counter[0] += out * a.shape[-2] * a.shape[-1] * b.shape[-1] // self.batch
        return func(*args, **kwargs)


def count_macs(model: nn.Module, example: torch.Tensor) -> int:
    """Multiply-accumulates of every conv and linear layer, and of attention's
    matrix products, for one image (the papers' "Mult-Adds"); BatchNorm,
    activations, softmax, pooling and additions are free."""
    counter = [0]
    handles = [
        m.register_forward_hook(_macs_hook(counter))
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    run = getattr(model, "forward_raw", model)  # a detector: its network, not the decoding and NMS
    try:
        with torch.no_grad(), _MatmulMacs(counter, example.shape[0]):
            run(example)
    finally:
        for h in handles:
            h.remove()
    return counter[0]


def _input_channels(model: nn.Module) -> int:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            return m.in_channels
    raise ValueError("the model has no Conv2d layer to take its input channels from")


def profile(model: nn.Module, resolution: int = 224) -> Profile:
    """Params and MACs of ``model`` on one ``resolution`` x ``resolution`` image."""
    if not isinstance(resolution, int) or resolution < 8:
        raise ValueError(f"resolution must be an integer >= 8, got {resolution!r}")
    was_training = model.training
    model.eval()
    try:
        example = torch.zeros(1, _input_channels(model), resolution, resolution)
        macs = count_macs(model, example)
    finally:
        model.train(was_training)
    params = sum(p.numel() for p in model.parameters())
    bn_params = sum(p.numel() for m in model.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))
                    for p in m.parameters())
    classifier = getattr(model, "classifier", None)
    extra_params = extra_macs = 0
    if isinstance(classifier, nn.Linear):  # one more output for TF-slim's background class
        extra_params = (1001 - classifier.out_features) * (classifier.in_features + 1)
        extra_macs = (1001 - classifier.out_features) * classifier.in_features
    return Profile(
        resolution=resolution,
        params=params,
        macs=macs,
        bn_params=bn_params,
        tf_slim_params=params - bn_params + extra_params,
        tf_slim_macs=macs + extra_macs,
    )
