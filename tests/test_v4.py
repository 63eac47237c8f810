"""MobileNetV4: exact counts, the same logits as timm from the same weights (random
weights and random BatchNorm statistics, through a file), the model interface, the
blocks' rules, and attention counted as MACs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mobilenet import create_model, list_models, profile
from mobilenet.blocks_v4 import MobileMQA, UniversalInvertedBottleneck
from mobilenet.registry import MODELS
from mobilenet.weights import from_timm, to_timm

V4 = list_models("mobilenet_v4_*")
# Ours -> timm's name; the resolution each test runs at (small: the big ones are slow at 384).
MAIN = {
    "mobilenet_v4_conv_small": ("mobilenetv4_conv_small", 96),
    "mobilenet_v4_conv_medium": ("mobilenetv4_conv_medium", 64),
    "mobilenet_v4_conv_large": ("mobilenetv4_conv_large", 64),
    "mobilenet_v4_hybrid_medium": ("mobilenetv4_hybrid_medium", 64),
    "mobilenet_v4_hybrid_large": ("mobilenetv4_hybrid_large", 64),
}
WIDTHS = {
    "mobilenet_v4_conv_small_050": "mobilenetv4_conv_small_050",
    "mobilenet_v4_conv_small_035": "mobilenetv4_conv_small_035",
    "mobilenet_v4_hybrid_medium_075": "mobilenetv4_hybrid_medium_075",
    "mobilenet_v4_hybrid_large_075": "mobilenetv4_hybrid_large_075",
}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random BatchNorm statistics and affine terms, random layer scales, and every
    conv/linear at a scale that keeps activations of order 1 through 40 blocks."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) * 0.5 + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.2)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            elif isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) / fan_in**0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
        for name, p in model.named_parameters():
            if name.endswith("gamma"):  # layer scale: far from its 1e-5 init, so the branches count
                p.copy_(torch.rand(p.shape, generator=g) * 0.5 + 0.25)
    return model.eval()


# Must hold exactly (timm 1.0.31 builds the same): 1000 classes, BN counted.
EXACT_PARAMS = {
    "mobilenet_v4_conv_small": 3_774_024,
    "mobilenet_v4_conv_medium": 9_715_512,
    "mobilenet_v4_conv_large": 32_590_864,
    "mobilenet_v4_hybrid_medium": 11_074_648,
    "mobilenet_v4_hybrid_large": 37_764_624,
    "mobilenet_v4_conv_small_050": 2_238_952,
    "mobilenet_v4_conv_small_035": 1_905_384,
    "mobilenet_v4_hybrid_medium_075": 7_313_528,
    "mobilenet_v4_hybrid_large_075": 22_754_984,
}


def test_registry_and_resolutions():
    assert sorted(V4) == sorted(EXACT_PARAMS)
    assert {n: MODELS[n].resolution for n in MAIN} == {
        "mobilenet_v4_conv_small": 224, "mobilenet_v4_conv_medium": 256, "mobilenet_v4_conv_large": 384,
        "mobilenet_v4_hybrid_medium": 256, "mobilenet_v4_hybrid_large": 384}


@pytest.mark.parametrize("name", list(EXACT_PARAMS))
def test_exact_params(name):
    assert sum(p.numel() for p in create_model(name).parameters()) == EXACT_PARAMS[name]


def test_exact_macs_conv_small():
    assert profile(create_model("mobilenet_v4_conv_small"), 224).macs == 186_005_568


@pytest.mark.parametrize("ours", list(MAIN))
def test_timm_file_loads_with_same_logits_and_round_trips(ours, tmp_path):
    timm = pytest.importorskip("timm")
    from safetensors.torch import save_file

    peer_name, res = MAIN[ours]
    peer = randomize(timm.create_model(peer_name, pretrained=False))
    state = peer.state_dict()
    path = tmp_path / f"{peer_name}.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    model = create_model(ours, pretrained=str(path)).eval()
    x = torch.randn(2, 3, res, res, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        theirs, mine = peer(x), model(x)
    scale = theirs.abs().max().item()
    assert scale > 0.1
    assert (theirs - mine).abs().max().item() <= 1e-5 * scale
    back = to_timm(model)
    assert back.keys() == state.keys()
    assert all(torch.equal(back[k], state[k]) for k in state)
    timm.create_model(peer_name, pretrained=False).load_state_dict(back, strict=True)


@pytest.mark.parametrize("ours", list(WIDTHS))
def test_reduced_widths_fit_timm_key_for_key(ours):
    timm = pytest.importorskip("timm")
    with torch.device("meta"):
        state = timm.create_model(WIDTHS[ours], pretrained=False).state_dict()
        model = create_model(ours)
    mine = to_timm(model)
    assert mine.keys() == state.keys()
    assert all(mine[k].shape == state[k].shape for k in state)


def test_name_inferred_from_timm_shapes_in12k():
    timm = pytest.importorskip("timm")
    with torch.device("meta"):
        state = timm.create_model("mobilenetv4_conv_small_050", pretrained=False, num_classes=11821).state_dict()
    state = {k: torch.zeros(v.shape, dtype=v.dtype) for k, v in state.items()}
    model = from_timm(state)
    assert model.model_name == "mobilenet_v4_conv_small_050" and model.num_classes == 11821


def test_uib_instances_and_stride_placement():
    def uib(start, mid, stride):
        return UniversalInvertedBottleneck(16, 32, 16 if stride == 1 else 24, start, mid, stride, "relu")

    assert [uib(s, m, 1).kind for s, m in ((3, 3), (0, 3), (3, 0), (0, 0))] == ["ExtraDW", "IB", "ConvNext", "FFN"]
    extra = uib(5, 3, 2)  # stride on the middle dw when there is one
    assert extra.start_dw.conv.stride == (1, 1) and extra.mid_dw.conv.stride == (2, 2)
    convnext = uib(5, 0, 2)  # else on the start one
    assert convnext.start_dw.conv.stride == (2, 2)
    assert not hasattr(convnext.start_dw, "act")  # the start dw is linear
    assert uib(3, 3, 1).use_residual and not extra.use_residual
    with pytest.raises(ValueError, match="FFN"):
        uib(0, 0, 2)


def test_hybrid_blocks_have_layer_scale_and_mqa():
    model = create_model("mobilenet_v4_hybrid_medium")
    mqa = [b for b in model.blocks if isinstance(b, MobileMQA)]
    assert len(mqa) == 8 and [b.kv_stride for b in mqa] == [2] * 4 + [1] * 4
    assert all(float(b.layer_scale.gamma[0].detach()) == pytest.approx(1e-5) for b in mqa)
    uibs = [b for b in model.blocks if isinstance(b, UniversalInvertedBottleneck)]
    assert all(hasattr(b.layer_scale, "gamma") for b in uibs)
    assert all(isinstance(b.layer_scale, nn.Identity) for b in create_model("mobilenet_v4_conv_medium").blocks
               if isinstance(b, UniversalInvertedBottleneck))
    assert isinstance(create_model("mobilenet_v4_hybrid_large").head_act, nn.GELU)


def test_mqa_equals_broadcast_multi_query_attention():
    """Tiling the one key/value head over the query heads is the same arithmetic as
    broadcasting it (the multi-query attention of Section 3.2, written out)."""
    torch.manual_seed(0)
    block = MobileMQA(32, 32, heads=4, key_dim=8, kv_stride=2).eval()
    x = torch.randn(2, 32, 6, 6)
    b, _, h, w = x.shape
    q = block.query(x).reshape(b, 4, 8, h * w).transpose(2, 3)  # [B, heads, N, d]
    k = block.key(block.key_down(x)).flatten(2).transpose(1, 2).unsqueeze(1)  # [B, 1, M, d]
    v = block.value(block.value_down(x)).flatten(2).transpose(1, 2).unsqueeze(1)
    attn = (q @ k.transpose(-1, -2) / 8**0.5).softmax(-1) @ v  # [B, heads, N, d]
    expected = block.output(attn.transpose(2, 3).reshape(b, 32, h, w))
    torch.testing.assert_close(block.attend(x), expected, rtol=1e-5, atol=1e-6)


def test_attention_matmuls_counted_as_macs():
    model = create_model("mobilenet_v4_hybrid_medium")
    res = 256
    with_attention = profile(model, res).macs
    layers_only = [0]
    hooks = [m.register_forward_hook(lambda mod, i, o: layers_only.__setitem__(
        0, layers_only[0] + o[0].numel() * (mod.weight[0].numel() if isinstance(mod, nn.Conv2d) else mod.in_features)))
        for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, res, res))
    for h in hooks:
        h.remove()
    # Four MQA at 16x16 (keys at 8x8) and four at 8x8 (keys at 8x8), 4 heads of 64:
    # Q K^T and the weighted sum of V each cost queries x keys x 64.
    attention = 4 * (4 * 256 * 64 * 64 * 2) + 4 * (4 * 64 * 64 * 64 * 2)
    assert with_attention - layers_only[0] == attention


@pytest.mark.parametrize("name", ["mobilenet_v4_conv_small", "mobilenet_v4_hybrid_medium"])
def test_model_interface(name):
    model = create_model(name).eval()
    x = torch.randn(2, 3, 96, 96)
    feats = model.forward_features(x)
    assert feats.shape == (2, 960, 3, 3)
    assert model.forward_head(feats, pre_logits=True).shape == (2, 1280)
    assert torch.equal(model.forward_head(feats), model(x))
    model.reset_classifier(5)
    assert model(x).shape == (2, 5)
    features = create_model(name, features_only=True).eval()
    assert [f.reduction for f in features.feature_info] == [2, 4, 8, 16, 32]
    for fmap, info in zip(features(x), features.feature_info):
        assert fmap.shape[1] == info.channels and fmap.shape[-1] == 96 // info.reduction
    same = create_model(name, num_classes=5, padding="same").eval()
    same.load_state_dict(model.state_dict())
    program = torch.export.export(same, (x,))
    torch.testing.assert_close(program.module()(x), same(x), rtol=1e-4, atol=1e-5)


def test_feature_channels_match_timm():
    timm = pytest.importorskip("timm")
    for ours, theirs in (("mobilenet_v4_conv_small", "mobilenetv4_conv_small"),
                         ("mobilenet_v4_hybrid_medium", "mobilenetv4_hybrid_medium")):
        peer = timm.create_model(theirs, features_only=True, pretrained=False)
        model = create_model(ours, features_only=True)
        assert [f.channels for f in model.feature_info] == peer.feature_info.channels()
        assert [f.reduction for f in model.feature_info] == peer.feature_info.reduction()


# -- weights ------------------------------------------------------------------------------
def test_every_trained_timm_v4_tag_is_listed_with_its_preprocessing():
    """Every pretrained mobilenetv4_* tag timm lists (but the anti-aliased conv_aa/conv_blur
    variants, another network) is ours, with timm's mean/std, crop and input size."""
    pytest.importorskip("timm")
    import timm.models.mobilenetv3 as timm_mnv3

    from mobilenet.weights import hub

    expected = {}
    for arch, cfgs in timm_mnv3.default_cfgs.items():
        if not arch.startswith("mobilenetv4_") or "_aa_" in arch or "_blur_" in arch:
            continue
        for tag, cfg in cfgs.cfgs.items():
            if cfg.hf_hub_id:
                expected[f"{arch.replace('mobilenetv4_', 'mobilenet_v4_')}.{tag}"] = cfg
    ours = {t.name: t for t in hub.TAGS.values() if "_v4_" in t.model}
    assert set(ours) == set(expected)
    for name, cfg in expected.items():
        p = ours[name].preprocess
        res = cfg.input_size[-1]  # resize to floor(res / crop_pct), then the centre crop, as timm's eval
        assert (p.resolution, round(res / p.crop_pct), p.interpolation) == (res, int(res / cfg.crop_pct),
                                                                            cfg.interpolation), name
        assert (tuple(p.mean), tuple(p.std)) == (tuple(cfg.mean), tuple(cfg.std)), name
        assert ours[name].extra_data == ("in12k" in name)
    assert hub.default_tag("mobilenet_v4_hybrid_medium").tag == "ix_e550_r256_in1k"  # in1k only


def test_in12k_tag_loads_through_the_checked_cache_and_converts_back(tmp_path, monkeypatch):
    import dataclasses
    import hashlib

    timm = pytest.importorskip("timm")
    from safetensors.torch import save_file

    from mobilenet.weights import hub

    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    peer = randomize(timm.create_model("mobilenetv4_conv_small", pretrained=False, num_classes=11821))
    state = peer.state_dict()
    served = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(served))
    digest = hashlib.sha256(served.read_bytes()).hexdigest()
    real = hub.TAGS["mobilenet_v4_conv_small.e2400_r224_in1k"]
    fake = dataclasses.replace(real, tag="test_in12k", url=served.as_uri(), sha256=digest, extra_data=True)
    monkeypatch.setitem(hub.TAGS, fake.name, fake)
    model = create_model("mobilenet_v4_conv_small", pretrained="test_in12k")
    assert model.num_classes == 11821 and model.pretrained_cfg["labels"] is None
    assert model.pretrained_cfg["preprocess"]["resolution"] == 224
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), peer(x), rtol=1e-5, atol=1e-5 * peer(x).abs().max().item())
    back = to_timm(model)
    assert back.keys() == state.keys() and all(torch.equal(back[k], state[k]) for k in state)
    bad = dataclasses.replace(fake, tag="test_bad", sha256="0" * 64)
    monkeypatch.setitem(hub.TAGS, bad.name, bad)
    (tmp_path / "hub" / "checkpoints" / fake.filename).rename(tmp_path / "moved")
    with pytest.raises(Exception, match="sha256"):
        create_model("mobilenet_v4_conv_small", pretrained="test_bad")


# -- mobilenet info ------------------------------------------------------------------------
def test_info_layers_prints_the_live_model_for_every_version(capsys):
    import json

    from mobilenet.cli import main

    names = ["mobilenet_v1_100", "mobilenet_v2_100", "mobilenet_v3_small_100", "mobilenet_v4_hybrid_medium"]
    assert main(["info", "--layers", *names, "--json"]) == 0
    tables = {t["model"]: t for t in json.loads(capsys.readouterr().out)}
    v4 = tables["mobilenet_v4_hybrid_medium"]
    assert v4["resolution"] == 256
    model = create_model("mobilenet_v4_hybrid_medium")
    rows = v4["rows"]
    # stem, every block, the last conv, pool, head conv, classifier
    assert len(rows) == 1 + len(model.blocks) + 1 + 3
    assert rows[0] == {"input": "256x256x3", "operator": "conv2d 3x3", "start_dw": None, "mid_dw": None,
                       "exp": None, "out": 32, "se": None, "act": "relu", "stride": 2, "module": "stem"}
    third = rows[2]  # blocks.1: the first ExtraDW, 5x5 in the middle carrying the stride
    assert (third["input"], third["operator"], third["start_dw"], third["mid_dw"], third["exp"], third["out"],
            third["stride"]) == ("64x64x48", "UIB ExtraDW", 3, 5, 192, 80, 2)
    assert sum(r["operator"].startswith("Mobile MQA") for r in rows) == 8
    assert rows[-2]["operator"] == "conv2d 1x1, BN" and rows[-2]["out"] == 1280
    v3 = tables["mobilenet_v3_small_100"]["rows"]
    assert (v3[1]["operator"], v3[1]["exp"], v3[1]["out"], v3[1]["se"], v3[1]["act"]) == (
        "bneck 3x3", 16, 16, True, "relu")  # Table 2, first bneck
    assert tables["mobilenet_v1_100"]["rows"][-3]["input"] == "7x7x1024"
    assert main(["info", "--layers", "mobilenet_v4_conv_small"]) == 0
    out = capsys.readouterr().out
    assert "UIB ExtraDW" in out and "start dw" in out and "224x224x3" in out
    assert main(["info", "--layers"]) == 2
    assert main(["info", "--layers", "lraspp"]) == 2
    assert "not one" in capsys.readouterr().err


def test_paper_recipe_v4():
    from mobilenet.train.config import resolve_config

    small = resolve_config({"recipe": "paper", "model": "mobilenet_v4_conv_small", "batch_size": 4096})
    assert (small.optimizer, small.peak_lr(), small.weight_decay, small.dropout, small.ema_decay) == (
        "adamw", 0.002, 0.01, 0.3, 0.9999)
    assert small.schedule == "cosine" and small.label_smoothing == 0.1 and not small.decay_norm
    assert small.warmup_epochs == pytest.approx(4.99, abs=0.01)  # 1560 steps of 4096 images
    hybrid = resolve_config({"recipe": "paper", "model": "mobilenet_v4_hybrid_medium_075", "batch_size": 1024})
    assert hybrid.peak_lr() == pytest.approx(0.016 / 16) and hybrid.weight_decay == 0.1 and hybrid.epochs == 500


def test_our_own_weights_file_rebuilds_a_v4(tmp_path):
    from mobilenet.weights import save_weights
    from mobilenet.weights.store import load_weights

    model = randomize(create_model("mobilenet_v4_hybrid_medium_075", num_classes=7))
    path = tmp_path / "hm.safetensors"
    save_weights(model, path)
    again = load_weights(path)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(again.eval()(x), model(x))
    assert type(again).__name__ == "MobileNetV4" and again.width == 0.75 and again.config == "hybrid_medium"
