"""Backbone options for dense heads: output_stride (atrous last stages) and
reduced_tail (the V3 paper's RF2), checked against torchvision's dilated=True /
reduced_tail=True and by the shapes and strides they must give."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mobilenet import create_model, profile
from mobilenet.weights import to_torchvision

BACKBONES = ["mobilenet_v1_050", "mobilenet_v2_100", "mobilenet_v3_large_100", "mobilenet_v3_small_075",
             "mobilenet_v3_small_minimal_100"]


def randomise_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.2)
    return model.eval()


@pytest.mark.parametrize("config", ["large", "small"])
@pytest.mark.parametrize("dilated,reduced", [(True, True), (True, False), (False, True)])
def test_backbone_options_equal_torchvision(config, dilated, reduced):
    torchvision = pytest.importorskip("torchvision")
    ours = randomise_bn(create_model(f"mobilenet_v3_{config}_100", output_stride=16 if dilated else 32,
                                     reduced_tail=reduced))
    theirs = getattr(torchvision.models, f"mobilenet_v3_{config}")(dilated=dilated, reduced_tail=reduced).eval()
    theirs.load_state_dict(to_torchvision(ours))
    x = torch.randn(2, 3, 160, 192, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = theirs.features(x)
        got = ours.forward_features(x)
        assert got.shape == ref.shape == (2, ref.shape[1], 160 // (16 if dilated else 32), 192 // (16 if dilated else 32))
        assert (got - ref).abs().max() <= 1e-5 * ref.abs().max()
        assert (ours(x) - theirs(x)).abs().max() <= 1e-5 * theirs(x).abs().max()


def test_reduced_tail_halves_the_last_stage_and_head():
    full = create_model("mobilenet_v3_large_100")
    rf2 = create_model("mobilenet_v3_large_100", reduced_tail=True)
    assert [b.out_channels for b in rf2.blocks[-3:]] == [80, 80, 80]
    assert [b.dw.conv.out_channels for b in rf2.blocks[-3:]] == [672, 480, 480]  # C4 expands its full input
    assert (rf2.num_features, rf2.head_fc.out_features) == (480, 640)
    assert [b.out_channels for b in rf2.blocks[:-3]] == [b.out_channels for b in full.blocks[:-3]]
    v2 = create_model("mobilenet_v2_100", reduced_tail=True)
    assert [b.out_channels for b in v2.blocks[-4:]] == [80, 80, 80, 160] and v2.num_features == 640
    v1 = create_model("mobilenet_v1_100", reduced_tail=True)
    assert [b.out_channels for b in v1.blocks[-3:]] == [512, 512, 512] and v1.num_features == 512


@pytest.mark.parametrize("name", BACKBONES)
@pytest.mark.parametrize("output_stride", [32, 16, 8])
def test_output_stride_shapes_and_feature_info(name, output_stride):
    model = create_model(name, features_only=True, output_stride=output_stride).eval()
    real = [min(r, output_stride) for r in (2, 4, 8, 16, 32)]
    assert [f.reduction for f in model.feature_info] == real
    assert [f.index for f in model.feature_info] == [0, 1, 2, 3, 4]
    plain = create_model(name, features_only=True)
    assert [f.channels for f in model.feature_info] == [f.channels for f in plain.feature_info]
    assert [f.module for f in model.feature_info] == [f.module for f in plain.feature_info]
    with torch.no_grad():
        maps = model(torch.randn(1, 3, 96, 128))
    assert [tuple(m.shape[2:]) for m in maps] == [(96 // r, 128 // r) for r in real]
    # Dilation changes no weight: the same state dict loads into every output stride.
    model.load_state_dict(plain.state_dict(), strict=True)


def test_output_stride_keeps_params_and_scales_macs():
    base = profile(create_model("mobilenet_v2_100"), 224)
    os16 = profile(create_model("mobilenet_v2_100", output_stride=16), 224)
    assert os16.params == base.params and os16.macs > base.macs
    # Every layer after the stride-16 point runs on 4x the pixels: the classifier does not.
    os8 = profile(create_model("mobilenet_v2_100", output_stride=8), 224)
    assert os8.macs > os16.macs


def test_dilated_same_padding_matches_symmetric_for_odd_kernels():
    sym = create_model("mobilenet_v3_small_100", output_stride=8).eval()
    same = create_model("mobilenet_v3_small_100", output_stride=8, padding="same").eval()
    same.load_state_dict(sym.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        # Strided convs differ (SAME pads after); the dilated ones must not add to it.
        assert sym.forward_features(x).shape == same.forward_features(x).shape == (1, 576, 8, 8)


def test_feature_at_taps_by_stride():
    model = create_model("mobilenet_v3_large_100", features_only=True, output_stride=16)
    assert model.feature_at(8, "first").module == "blocks.3"  # torchvision's "C2" (the block entering stride 8)
    assert model.feature_at(8).module == "blocks.5"
    assert model.feature_at(16).module == "last_conv"
    assert model.feature_at(16, "last_block").module == "blocks.14"
    with pytest.raises(ValueError, match="no 'last' feature map at stride 32"):
        model.feature_at(32)
    with pytest.raises(ValueError, match="at="):
        model.feature_at(16, "middle")


@pytest.mark.parametrize("bad", [4, 64, "16"])
def test_bad_output_stride_raises(bad):
    with pytest.raises(ValueError, match="output_stride"):
        create_model("mobilenet_v2_100", output_stride=bad)


@pytest.mark.parametrize("name", ["mobilenet_v4_conv_small", "mobilenet_v4_hybrid_medium"])
def test_v4_takes_output_stride_too(name):
    """The mechanism lives in MobileNet: V4's blocks dilate like the others; Mobile MQA
    keeps its key/value downsampling stride (a stride inside a stride-1 block)."""
    plain = create_model(name, features_only=True).eval()
    model = create_model(name, features_only=True, output_stride=16).eval()
    model.load_state_dict(plain.state_dict(), strict=True)
    assert [f.reduction for f in model.feature_info] == [2, 4, 8, 16, 16]
    with torch.no_grad():
        maps = model(torch.randn(1, 3, 128, 128))
    assert [m.shape[-1] for m in maps] == [64, 32, 16, 8, 8]
    strided_kv = [m for m in model.modules() if getattr(m, "kv_stride", 1) > 1]
    assert strided_kv or name.endswith("conv_small")
    for module in strided_kv:
        assert module.key_down.conv.stride == (module.kv_stride, module.kv_stride)
