"""The architectures: shapes, the exact counts the papers and peers give, the
model interface, export, and errors for bad input."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import mobilenet
from mobilenet import create_model, list_models, make_divisible, profile
from mobilenet.layers import SameConv2d

ALL = list_models(task="classification")  # the classifiers (dense models have their own tests)
# V4's reduced widths build through the same class and rows as their parents (tests/test_v4.py
# holds each against timm); the per-model shape and export tests skip them to save minutes.
EACH = [n for n in ALL if not (n.startswith("mobilenet_v4_") and n[-4:] in ("_050", "_035", "_075"))]


def test_registry_names():
    expected = (
        [f"mobilenet_v1_{w}" for w in ("025", "050", "075", "100")]
        + [f"mobilenet_v2_{w}" for w in ("035", "050", "075", "100", "130", "140")]
        + [f"mobilenet_v3_{c}_{w}" for c in ("large", "small") for w in ("035", "050", "075", "100", "125")]
        + ["mobilenet_v3_large_minimal_100", "mobilenet_v3_small_minimal_100"]
        + [f"mobilenet_v4_{c}" for c in ("conv_small", "conv_small_050", "conv_small_035", "conv_medium",
                                         "conv_large", "hybrid_medium", "hybrid_medium_075", "hybrid_large",
                                         "hybrid_large_075")]
    )
    assert sorted(ALL) == sorted(expected)
    assert list_models("mobilenet_v1_*") == [f"mobilenet_v1_{w}" for w in ("025", "050", "075", "100")]


@pytest.mark.parametrize("name", EACH)
def test_shapes_every_resolution(name):
    model = create_model(name, num_classes=7).eval()
    with torch.no_grad():
        for res in (224, 160, 96):
            assert model(torch.randn(2, 3, res, res)).shape == (2, 7)


# Must hold exactly: 1000 classes, BatchNorm parameters counted, 224x224.
EXACT = {
    "mobilenet_v1_100": (4_231_976, 568_740_352),
    "mobilenet_v2_100": (3_504_872, 300_774_272),
    "mobilenet_v3_large_100": (5_483_032, 216_589_760),
    "mobilenet_v3_small_100": (2_542_856, 56_510_400),
    "mobilenet_v3_large_075": (3_993_528, 154_560_624),
    "mobilenet_v3_small_075": (2_041_872, 43_399_344),
}


@pytest.mark.parametrize("name", EXACT)
def test_exact_params_and_macs(name):
    stats = profile(create_model(name), 224)
    assert (stats.params, stats.macs) == EXACT[name]


def test_macs_counted_from_forward_pass_scale_with_resolution():
    model = create_model("mobilenet_v1_100")
    # Every layer but the classifier is convolutional, so MACs scale with the area.
    conv_macs = lambda r: profile(model, r).macs - 1024 * 1000  # noqa: E731
    assert conv_macs(128) * 4 == conv_macs(256)


def test_make_divisible():
    assert make_divisible(32 * 0.35) == 16  # 8 would lose more than 10%
    assert make_divisible(16 * 0.35) == 8
    assert make_divisible(24 * 0.75) == 24  # 18 rounds to 16, then +8
    assert make_divisible(1280 * 1.4) == 1792
    assert make_divisible(3) == 8


def test_v1_width_rule_truncates():
    model = create_model("mobilenet_v1_075")
    widths = [model.stem.out_channels] + [b.out_channels for b in model.blocks]
    assert widths == [24, 48, 96, 96, 192, 192, 384, 384, 384, 384, 384, 384, 768, 768]


def test_v2_structure():
    model = create_model("mobilenet_v2_100")
    first = model.blocks[0]
    assert isinstance(first.expand, nn.Identity)  # t=1: no expansion conv
    assert "act" not in dict(first.project.named_children())  # linear bottleneck
    residual = [b.use_residual for b in model.blocks]
    assert sum(residual) == 10  # stride 1 and equal widths only
    assert model.last_conv.out_channels == 1280
    assert create_model("mobilenet_v2_140").last_conv.out_channels == 1792
    assert create_model("mobilenet_v2_035").last_conv.out_channels == 1280
    assert model.dropout.p == 0.2


def test_v3_structure():
    large = create_model("mobilenet_v3_large_100")
    se = [i for i, b in enumerate(large.blocks) if not isinstance(b.se, nn.Identity)]
    assert se == [3, 4, 5, 10, 11, 12, 13, 14]
    block = large.blocks[3]
    assert block.se.fc1.out_channels == make_divisible(72 / 4) == 24
    assert isinstance(block.se.gate, nn.Hardsigmoid)
    # SE sits between the depthwise conv and the projection.
    assert list(dict(block.named_children())) == ["expand", "dw", "se", "project"]
    assert large.last_conv.out_channels == 960 and large.head_fc.out_features == 1280
    assert large.head_fc.bias is not None
    bn = large.stem.bn
    assert (bn.eps, bn.momentum) == (1e-3, 0.01)
    small = create_model("mobilenet_v3_small_100")
    assert small.last_conv.out_channels == 576 and small.head_fc.out_features == 1024
    assert isinstance(small.last_conv, nn.Sequential) and len(small.last_conv) == 3  # no SE on the tail
    minimal = create_model("mobilenet_v3_large_minimal_100")
    assert not any(isinstance(m, (nn.Hardswish, mobilenet.layers.SqueezeExcite)) for m in minimal.modules())
    assert all(m.kernel_size == (3, 3) for m in minimal.modules() if isinstance(m, nn.Conv2d) and m.groups > 1)
    # Head kept at 1280 below width 1, scaled above.
    assert create_model("mobilenet_v3_large_050").head_fc.out_features == 1280
    assert create_model("mobilenet_v3_large_125").head_fc.out_features == 1600


def test_v3_width_rule_follows_google_reference():
    model = create_model("mobilenet_v3_large_075")
    # Expansion = make_divisible(scaled input x exp/in): block 1 is 16 -> 64, not 64 x 0.75 = 48.
    assert model.blocks[1].expand[0].out_channels == 64
    assert model.stem.out_channels == 16


def test_seed_compatible_classes():
    v1 = mobilenet.MobileNetV1(n_classes=10, input_channel=1, depth_multiplier=0.5, use_relu6=False)
    assert v1(torch.randn(2, 1, 96, 96)).shape == (2, 10)
    assert not any(isinstance(m, nn.ReLU6) for m in v1.modules())
    v2 = mobilenet.MobileNetV2(n_classes=10, input_channel=3, dropout=0.1, width=0.5)
    assert v2(torch.randn(1, 3, 96, 96)).shape == (1, 10) and v2.dropout.p == 0.1
    v3 = mobilenet.MobileNetV3(n_classes=10, input_channel=3, config="small", dropout=0.2, width=0.75)
    assert v3(torch.randn(1, 3, 96, 96)).shape == (1, 10)


def test_model_interface():
    model = create_model("mobilenet_v3_small_100").eval()
    x = torch.randn(2, 3, 128, 128)
    feats = model.forward_features(x)
    assert feats.shape == (2, 576, 4, 4)
    assert model.forward_head(feats, pre_logits=True).shape == (2, 1024)
    assert torch.equal(model.forward_head(feats), model(x))
    model.reset_classifier(5)
    assert model(x).shape == (2, 5)
    model.reset_classifier(0)
    assert model(x).shape == (2, 1024)


@pytest.mark.parametrize("name", ["mobilenet_v1_100", "mobilenet_v2_100", "mobilenet_v3_large_100",
                                  "mobilenet_v3_small_100"])
def test_features_only(name):
    model = create_model(name, features_only=True).eval()
    maps = model(torch.randn(1, 3, 224, 224))
    assert [f.reduction for f in model.feature_info] == [2, 4, 8, 16, 32]
    for fmap, info in zip(maps, model.feature_info):
        assert fmap.shape[1] == info.channels and fmap.shape[-1] == 224 // info.reduction
    assert not hasattr(model, "classifier")
    picked = create_model(name, features_only=True, out_indices=(2, 4))
    assert [f.reduction for f in picked.feature_info] == [8, 32]
    assert len(picked(torch.randn(1, 3, 64, 64))) == 2


def test_feature_channels_match_peers():
    assert [f.channels for f in create_model("mobilenet_v3_large_100", features_only=True).feature_info] == [
        16, 24, 40, 112, 960]
    assert [f.channels for f in create_model("mobilenet_v2_100", features_only=True).feature_info] == [
        16, 24, 32, 96, 1280]


def test_in_place_only_in_eager(monkeypatch):
    """Activations and residual sums overwrite fresh tensors in eager mode (as
    torchvision's do), never while a graph is captured, and the gradients are the
    out-of-place ones exactly."""
    import copy

    import mobilenet.layers as layers

    for m in create_model("mobilenet_v3_small_050").modules():
        assert not getattr(m, "inplace", False), f"{m} is built in-place"
    x = torch.randn(2, 3, 64, 64)
    grads = {}
    for in_place in (True, False):
        monkeypatch.setattr(layers, "eager_in_place", lambda v=in_place: v)
        for name in ("mobilenet_v2_035", "mobilenet_v3_small_050"):
            torch.manual_seed(0)
            model = create_model(name).train()
            out = model(x)
            out.square().mean().backward()
            grads[name, in_place] = [out.detach()] + [p.grad.clone() for p in model.parameters()]
    for name in ("mobilenet_v2_035", "mobilenet_v3_small_050"):
        for a, b in zip(grads[name, True], grads[name, False]):
            assert torch.equal(a, b), name

    monkeypatch.undo()
    real, seen = layers.eager_in_place, []
    monkeypatch.setattr(layers, "eager_in_place", lambda: seen.append(real()) or seen[-1])
    model = create_model("mobilenet_v3_small_050").eval()
    model(x)
    assert seen and all(seen)
    seen.clear()
    torch.export.export(copy.deepcopy(model), (x,))
    assert seen and not any(seen)


@pytest.mark.parametrize("name", EACH)
def test_torch_export(name):
    model = create_model(name).eval()
    x = torch.randn(1, 3, 96, 96)
    program = torch.export.export(model, (x,))
    torch.testing.assert_close(program.module()(x), model(x), rtol=1e-4, atol=1e-5)


def test_same_padding_is_tensorflow_same():
    model = create_model("mobilenet_v2_100", padding="same")
    strided = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.stride[0] > 1]
    assert strided and all(isinstance(m, SameConv2d) for m in strided)
    conv = SameConv2d(1, 1, 3, 2, bias=False)
    assert conv._same_pad(224, 0) == (0, 1)  # even input: nothing before, one after
    assert conv._same_pad(225, 0) == (1, 1)
    # Same state-dict keys whichever padding: weights move between them.
    assert create_model("mobilenet_v2_100").state_dict().keys() == model.state_dict().keys()
    program = torch.export.export(model.eval(), (torch.randn(1, 3, 96, 96),))
    x = torch.randn(1, 3, 96, 96)
    torch.testing.assert_close(program.module()(x), model(x), rtol=1e-4, atol=1e-5)


def test_unknown_name_suggests():
    with pytest.raises(ValueError, match="mobilenet_v2_100"):
        create_model("mobilenet_v2_10")
    with pytest.raises(ValueError, match="list_models"):
        create_model("resnet50")


@pytest.mark.parametrize(
    "options, error, match",
    [
        ({"dropuot": 0.1}, TypeError, "dropuot"),
        ({"width": 0.5}, TypeError, "fixed by the model name"),
        ({"n_classes": 3}, TypeError, "num_classes"),
        ({"dropout": 1.5}, ValueError, "dropout"),
        ({"padding": "valid"}, ValueError, "padding"),
        ({"out_indices": (5,), "features_only": True}, ValueError, "out_indices"),
    ],
)
def test_bad_options(options, error, match):
    with pytest.raises(error, match=match):
        create_model("mobilenet_v2_100", **options)


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="config"):
        mobilenet.MobileNetV3(config="medium")
    with pytest.raises(ValueError, match="depth_multiplier"):
        mobilenet.MobileNetV1(depth_multiplier=0)
    with pytest.raises(ValueError, match="num_classes"):
        create_model("mobilenet_v1_100", num_classes=-1)
    with pytest.raises(ValueError, match="resolution"):
        profile(create_model("mobilenet_v1_025"), 0)
