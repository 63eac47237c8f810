"""mobilenet.deploy: BatchNorm folded into the convs, outputs unchanged."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import mobilenet
from mobilenet.deploy import fold_bn, is_deployed
from mobilenet.layers import SameConv2d

MODELS = ["mobilenet_v1_025", "mobilenet_v2_035", "mobilenet_v3_small_050", "mobilenet_v3_large_035",
          "mobilenet_v3_small_minimal_100"]


def with_random_bn(model: nn.Module) -> nn.Module:
    """Non-trivial BatchNorm statistics and affine parameters, so folding is tested."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) * 2 - 1)
            m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=g) - 0.5)
    return model.eval()


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("padding", ["symmetric", "same"])
def test_deploy_keeps_outputs(name, padding):
    model = with_random_bn(mobilenet.create_model(name, num_classes=10, padding=padding))
    fused = mobilenet.deploy(model)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        want, got = model(x), fused(x)
    assert is_deployed(fused) and not is_deployed(model)
    assert not fused.training
    assert (got - want).abs().max() <= 1e-5 * want.abs().max()
    # the original keeps its BatchNorm and its conv keeps no bias
    assert model.stem.conv.bias is None and isinstance(model.stem.bn, nn.BatchNorm2d)
    assert fused.stem.conv.bias is not None and isinstance(fused.stem.bn, nn.Identity)
    if padding == "same":
        assert any(isinstance(m, SameConv2d) for m in fused.modules())


def test_fold_bn_matches_formula():
    conv = nn.Conv2d(4, 6, 3, bias=True)
    bn = with_random_bn(nn.Sequential(nn.BatchNorm2d(6)))[0]
    w, b = fold_bn(conv, bn)
    x = torch.randn(1, 4, 8, 8)
    with torch.no_grad():
        assert torch.allclose(nn.functional.conv2d(x, w, b), bn(conv(x)), atol=1e-5)


def test_deploy_rejects_non_modules():
    with pytest.raises(TypeError, match="nn.Module"):
        mobilenet.deploy("mobilenet_v1_100")
