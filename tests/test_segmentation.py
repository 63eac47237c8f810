"""Segmentation models: torchvision's LR-ASPP and DeepLabV3 checkpoints (random
weights, random BatchNorm statistics, saved to files) load into ours with the same
logits on random batches and real coco128 photos, convert back exactly, and the
heads fit every backbone by stride."""

from __future__ import annotations

import hashlib

import pytest
import torch
from torch import nn

from conftest import shared_path
from mobilenet import create_model, list_models, profile
from mobilenet.segmentation import VOC_LABELS, SegmentationModel, to_torchvision
from mobilenet.weights import WeightsError, load_weights, save_weights

tv_seg = pytest.importorskip("torchvision.models.segmentation")


def randomise(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights and BatchNorm statistics, so no layer can hide a wrong key: the
    running statistics come from two training-mode passes over random images (so
    activations keep a realistic scale through every layer), the BN affine terms and
    the conv biases are random."""
    g = torch.Generator().manual_seed(seed)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for m in bns:
            m.momentum = None
            m.reset_running_stats()
        model.train()
        for _ in range(2):
            model(torch.randn(4, 3, 96, 96, generator=g))
        for m in bns:
            m.momentum = 0.1
            m.weight.copy_(torch.rand(m.num_features, generator=g) * 0.5 + 0.75)
            m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.2)
        for m in model.modules():
            if isinstance(m, nn.Conv2d) and m.bias is not None:
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return model.eval()


TORCHVISION = {
    "lraspp_mobilenet_v3_large": lambda: tv_seg.lraspp_mobilenet_v3_large(weights=None, weights_backbone=None),
    "deeplabv3_mobilenet_v3_large": lambda: tv_seg.deeplabv3_mobilenet_v3_large(
        weights=None, weights_backbone=None, aux_loss=True),
}


def assert_close(got: torch.Tensor, ref: torch.Tensor) -> None:
    assert got.shape == ref.shape
    assert (got - ref).abs().max() <= 1e-5 * ref.abs().max(), (got - ref).abs().max()


@pytest.fixture(scope="module", params=list(TORCHVISION))
def saved(request, tmp_path_factory):
    torch.manual_seed(0)
    theirs = randomise(TORCHVISION[request.param]())
    path = tmp_path_factory.mktemp("tv") / f"{request.param}.pth"
    torch.save(theirs.state_dict(), path)
    return request.param, theirs, path


def test_torchvision_checkpoint_loads_with_same_logits(saved):
    name, theirs, path = saved
    ours = create_model(name, pretrained=path)
    assert ours.num_classes == 21 and ours.pretrained_cfg["labels"] == list(VOC_LABELS)
    assert ours.pretrained_cfg["preprocess"]["resolution"] == 520
    x = torch.randn(2, 3, 131, 170, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = theirs(x)
        assert_close(ours(x), ref["out"])
        if "aux" in ref:
            out, aux = ours.forward_aux(x)
            assert_close(out, ref["out"])
            assert_close(aux, ref["aux"])


def test_round_trip_is_exact(saved):
    name, theirs, path = saved
    ours = create_model(name, pretrained=path)
    back = to_torchvision(ours)
    original = theirs.state_dict()
    assert set(back) == set(original)
    assert all(torch.equal(back[k], original[k]) for k in original)


def test_same_logits_on_real_coco128_photos(saved):
    from PIL import Image

    from mobilenet.images import Preprocess

    name, theirs, path = saved
    ours = create_model(name, pretrained=path)
    folder = shared_path("coco128", "images", "val2017")
    files = sorted(folder.glob("*.jpg"))[:2]
    # torchvision's SemanticSegmentation preset, short side to 520 (smaller here to keep the test fast)
    transform = Preprocess(resolution=200, crop_pct=1.0).transform()
    batch = torch.stack([transform(Image.open(f).convert("RGB")) for f in files])
    with torch.no_grad():
        ref = theirs(batch)["out"]
        got = ours(batch)
    assert_close(got, ref)
    assert (got.argmax(1) == ref.argmax(1)).float().mean() > 0.999


def test_our_own_file_round_trips(tmp_path, saved):
    name, _, path = saved
    ours = create_model(name, pretrained=path)
    file = save_weights(ours, tmp_path / "seg.safetensors", labels=list(VOC_LABELS))
    again = create_model(name, pretrained=file)
    rebuilt = load_weights(file)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(again(x), ours(x)) and torch.equal(rebuilt(x), ours(x))
    assert again.pretrained_cfg["labels"] == list(VOC_LABELS)


def test_tag_downloads_through_the_checked_cache(tmp_path, monkeypatch, saved):
    from mobilenet.segmentation import weights as seg_weights

    name, theirs, path = saved
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    real = seg_weights.TAGS[f"{name}.tv_coco_voc"]
    from dataclasses import replace

    monkeypatch.setitem(seg_weights.TAGS, real.name, replace(real, url=path.as_uri(), sha256=digest[:8]))
    ours = create_model(name, pretrained=True)
    assert ours.pretrained_cfg["source"] == real.name
    assert (tmp_path / "hub" / "checkpoints" / path.name).is_file()
    x = torch.randn(1, 3, 64, 80)
    with torch.no_grad():
        assert_close(ours(x), theirs(x)["out"])
    monkeypatch.setitem(seg_weights.TAGS, real.name, replace(real, url=path.as_uri(), sha256="0" * 8))
    (tmp_path / "hub" / "checkpoints" / path.name).unlink()
    with pytest.raises(WeightsError, match="expected 00000000"):
        create_model(name, pretrained="tv_coco_voc")


def test_new_class_count_gets_fresh_classifiers(saved):
    name, _, path = saved
    ours = create_model(name, pretrained=path, num_classes=5)
    assert ours.num_classes == 5 and ours.pretrained_cfg["labels"] is None
    with torch.no_grad():
        assert ours(torch.randn(1, 3, 64, 64)).shape == (1, 5, 64, 64)


def test_published_torchvision_param_counts():
    assert profile(create_model("lraspp_mobilenet_v3_large"), 520).params == 3_221_538
    assert sum(p.numel() for p in create_model("deeplabv3_mobilenet_v3_large", aux=True).parameters()) == 11_029_328


def test_v2_mobile_deeplab_is_the_papers_head():
    """V2 paper Table 7, 'MNet V2*' OS 16 without ASPP: 2.11M params; with ASPP 4.52M."""
    model = create_model("deeplabv3_mobilenet_v2_100")
    assert model.feature_info[0].channels == 320 and model.feature_info[0].reduction == 16
    assert isinstance(model.backbone.last_conv, nn.Identity)  # the 1280 conv is not built
    assert round(profile(model, 512).params / 1e6, 2) == 2.11
    aspp = create_model("deeplabv3", backbone="mobilenet_v2_100", aspp_rates=(6, 12, 18), head_conv=False,
                        tap="last_block")
    assert round(profile(aspp, 512).params / 1e6, 2) == 4.52


@pytest.mark.parametrize("backbone", ["mobilenet_v1_050", "mobilenet_v2_035", "mobilenet_v3_small_075",
                                      "mobilenet_v3_large_minimal_100", "mobilenet_v4_conv_small"])
@pytest.mark.parametrize("head", ["lraspp", "deeplabv3"])
def test_every_head_fits_every_backbone(head, backbone):
    model = create_model(head, backbone=backbone, num_classes=4).eval()
    assert [f.reduction for f in model.feature_info] == ([8, 16] if head == "lraspp" else [16])
    with torch.no_grad():
        assert model(torch.randn(2, 3, 75, 90)).shape == (2, 4, 75, 90)
    v4 = backbone.startswith("mobilenet_v4")
    if v4:
        with pytest.raises(ValueError, match="has no reduced tail"):
            create_model(head, backbone=backbone, reduced_tail=True)
    os8 = create_model(head, backbone=backbone, num_classes=4, output_stride=8, reduced_tail=not v4).eval()
    assert os8.feature_info[-1].reduction == 8
    with torch.no_grad():
        assert os8(torch.randn(1, 3, 64, 64)).shape == (1, 4, 64, 64)


def test_training_step_with_aux_head():
    model = create_model("deeplabv3", backbone="mobilenet_v3_small_050", num_classes=3, aux=True).train()
    x, y = torch.randn(2, 3, 64, 64), torch.randint(0, 3, (2, 64, 64))
    out, aux = model.forward_aux(x)
    loss = nn.functional.cross_entropy(out, y) + 0.5 * nn.functional.cross_entropy(aux, y)
    loss.backward()
    assert model.backbone.stem.conv.weight.grad.abs().sum() > 0


def test_registry_and_bad_options():
    names = list_models("lraspp*") + list_models("deeplabv3*")
    for name in ("lraspp_mobilenet_v3_large", "lraspp_mobilenet_v3_small", "deeplabv3_mobilenet_v3_large",
                 "deeplabv3_mobilenet_v2_100", "lraspp", "deeplabv3"):
        assert name in names
    assert isinstance(create_model("lraspp_mobilenet_v3_small"), SegmentationModel)
    with pytest.raises(TypeError, match="fixed by the model name"):
        create_model("lraspp_mobilenet_v3_large", backbone="mobilenet_v2_100")
    with pytest.raises(ValueError, match="not a classifier backbone"):
        create_model("lraspp", backbone="deeplabv3")
    with pytest.raises(ValueError, match="unknown model 'mobilenet_v9'"):
        create_model("lraspp", backbone="mobilenet_v9")
    with pytest.raises(ValueError, match="options of head='deeplabv3'"):
        create_model("lraspp", head_conv=False)
    with pytest.raises(ValueError, match="options of head='deeplabv3'"):
        create_model("lraspp", aspp_rates=(6, 12, 18))
    with pytest.raises(ValueError, match="output_stride"):
        create_model("lraspp", output_stride=4)
    with pytest.raises(ValueError, match="torchvision has no segmentation model"):
        to_torchvision(create_model("lraspp", backbone="mobilenet_v2_100"))


def test_published_figures_beside_ours():
    """Every published segmentation figure names a configuration we build; the counts
    agree (to the published precision) except where the note says why not."""
    from mobilenet.published import DENSE_PUBLISHED

    for ref in DENSE_PUBLISHED:
        model = create_model(ref.model, num_classes=ref.classes, **dict(ref.options))
        params = sum(p.numel() for p in model.parameters()) / 1e6
        if "RF2 also halves the C4" in ref.note:  # V3 RF2 rows: ours keeps torchvision's C4 expansion
            assert 0.04 < params - ref.params_m < 0.25, ref
        else:
            # The papers print 2 decimals, some rounded and some cut (1.159 -> "1.15", 1.028 -> "1.02").
            assert abs(params - ref.params_m) < 0.01, (ref, params)


def test_info_shows_dense_models_at_their_input_size(capsys):
    import json

    from mobilenet.cli import main

    assert main(["info", "lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v2_100", "--json"]) == 0
    rows = {r["model"]: r for r in json.loads(capsys.readouterr().out)}
    lraspp = rows["lraspp_mobilenet_v3_large"]
    assert (lraspp["resolution"], lraspp["params"], round(lraspp["macs"] / 1e9, 3)) == (520, 3_221_538, 2.086)
    assert any("Table 7" in ref["source"] for ref in lraspp["published"])
    assert rows["deeplabv3_mobilenet_v2_100"]["resolution"] == 512


def test_imagenet_classifier_file_as_backbone(tmp_path):
    """Our own / torchvision's classifier checkpoint becomes the backbone; the head stays fresh."""
    classifier = randomise(create_model("mobilenet_v3_small_100"))
    from mobilenet.weights import to_torchvision as classifier_to_torchvision

    path = tmp_path / "tv_v3s.pth"
    torch.save(classifier_to_torchvision(classifier), path)
    model = create_model("lraspp_mobilenet_v3_small", pretrained_backbone=path).eval()
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(value, classifier.state_dict()[key]), key
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():  # the stride-8 map is before any dilation: the classifier's own
        low = model.backbone(x)[0]
        ref = classifier.blocks[: int(model.feature_info[0].module.split(".")[1]) + 1](classifier.stem(x))
    assert torch.equal(low, ref)
    assert model.pretrained_cfg["preprocess"]["resolution"] == 520
    with pytest.raises(WeightsError, match="reduced_tail=True changes the last stage"):
        create_model("lraspp_mobilenet_v3_small", pretrained_backbone=path, reduced_tail=True)
    with pytest.raises(WeightsError, match="pretrained_backbone for mobilenet_v3_large_100"):
        create_model("lraspp_mobilenet_v3_large", pretrained_backbone=path)


def test_tflite_classifier_as_backbone():
    """Google's TFLite V2 (quantised, imported) as the backbone of the V2 paper's mobile DeepLabv3."""
    from mobilenet.layers import SameConv2d
    from mobilenet.weights import load_tflite

    path = shared_path("tflite", "mobilenet_v2_1.0_224_quant.tflite")
    classifier, _ = load_tflite(path)
    model = create_model("deeplabv3_mobilenet_v2_100", pretrained_backbone=path).eval()
    assert isinstance(model.backbone.stem.conv, SameConv2d)  # TensorFlow padding travels with the weights
    # and so does its (x - 128) / 128 input scaling
    assert tuple(model.pretrained_cfg["preprocess"]["mean"]) == tuple(classifier.pretrained_cfg["preprocess"]["mean"])
    assert model.pretrained_cfg["preprocess"]["mean"][0] == pytest.approx(128 / 255)
    state = classifier.state_dict()
    assert all(torch.equal(v, state[k]) for k, v in model.backbone.state_dict().items())
    with pytest.raises(WeightsError, match="holds mobilenet_v2_100, not mobilenet_v3_large_100"):
        create_model("lraspp_mobilenet_v3_large", pretrained_backbone=path)
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 21, 64, 64)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lraspp_mobilenet_v3_large", "lraspp_mobilenet_v3_small",
                                  "deeplabv3_mobilenet_v3_large", "deeplabv3_mobilenet_v2_100"])
def test_every_segmentation_model_exports_and_verifies(name, tmp_path):
    """ONNX Runtime and ExecuTorch run the written file; logits [N, 21, H, W] match eager."""
    check_exports(name, tmp_path, 128)


def check_exports(name: str, tmp_path, size: int) -> list:
    """Export a randomised ``name`` to ONNX and ExecuTorch at ``size`` px; each file's check
    passed with logits within 1e-4 x their scale. Returns the reports."""
    from mobilenet.export import export_model

    model = randomise(create_model(name))
    reports = []
    for fmt in ("onnx", "executorch"):
        report = export_model(model, fmt, tmp_path / f"m.{fmt}", example=torch.randn(2, 3, size, size))
        assert report.passed and report.max_abs_diff <= 1e-4 * report.logit_scale, (fmt, report)
        assert report.top1_agree_fp32 > 0.999
        reports.append(report)
    return reports
