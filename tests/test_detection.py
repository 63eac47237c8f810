"""SSDLite: torchvision's checkpoint layout loads and computes the same detections on
real coco128 photos, converts back exactly, loads by tag offline, and takes an
ImageNet classifier of ours (an imported TFLite file too) as its backbone."""

from __future__ import annotations

import hashlib

import pytest
import torch
from detection_helpers import coco_images, randomize, torchvision_ssdlite

from mobilenet import create_model, list_models, profile
from mobilenet.detection import weights as det_weights
from mobilenet.detection.ssdlite import c4_index
from mobilenet.weights import WeightsError


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))


def same_detections(a: list[dict], b: list[dict]) -> None:
    for x, y in zip(a, b, strict=True):
        assert len(x["boxes"]) > 10  # the random weights do detect: equality means something
        assert torch.equal(x["labels"], y["labels"])
        torch.testing.assert_close(x["scores"], y["scores"], atol=1e-6, rtol=0)
        torch.testing.assert_close(x["boxes"], y["boxes"], atol=1e-3, rtol=0)


@pytest.fixture(scope="module")
def tv_full():
    """torchvision's SSDLite (full V3 tail) with random weights and BatchNorm statistics."""
    return randomize(torchvision_ssdlite(reduced_tail=False), seed=1)


def test_registered_detectors_tap_c4_by_stride():
    assert {"ssdlite320_mobilenet_v3_large", "ssdlite320_mobilenet_v3_small",
            "ssdlite320_mobilenet_v2_100"} <= set(list_models("ssdlite*"))
    for name, backbone, tap in (("ssdlite320_mobilenet_v3_large", 12, 672), ("ssdlite320_mobilenet_v3_small", 8, 288),
                                ("ssdlite320_mobilenet_v2_100", 13, 576)):
        model = create_model(name, reduced_tail=False).eval()
        assert model.c4 == backbone == c4_index(model.backbone)
        assert model.map_channels[0] == tap  # the expansion output of the first stride-32 block
        maps = model.forward_maps(torch.zeros(1, 3, 320, 320))
        assert [m.shape[-1] for m in maps] == [20, 10, 5, 3, 2, 1]
        assert [m.shape[1] for m in maps] == model.map_channels
        assert model.anchors.shape == (6 * sum(s * s for s in (20, 10, 5, 3, 2, 1)), 4)


def test_torchvision_weights_give_the_same_detections_on_coco_photos(tv_full, tmp_path):
    images = coco_images(3)
    path = tmp_path / "ssdlite_tv.pth"
    torch.save(tv_full.state_dict(), path)
    ours = create_model("ssdlite320_mobilenet_v3_large", pretrained=path)
    assert ours.arch_args["reduced_tail"] is False  # found from the file's shapes
    assert ours.pretrained_cfg["labels"][1] == "person" and len(ours.pretrained_cfg["labels"]) == 91
    with torch.no_grad():
        same_detections(tv_full(images), ours(images))
    # and back: torchvision loads our conversion with strict=True, every tensor exact
    back = det_weights.to_torchvision(ours)
    assert back.keys() == tv_full.state_dict().keys()
    assert all(torch.equal(back[k], v) for k, v in tv_full.state_dict().items())


def test_torchvision_builder_and_published_param_count():
    from torchvision.models.detection import ssdlite320_mobilenet_v3_large

    tv = randomize(ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None), seed=2)
    ours = create_model("ssdlite320_mobilenet_v3_large")
    assert profile(ours, 320).params == 3_440_060 == sum(p.numel() for p in tv.parameters())
    det_weights.load_into(ours, tv.state_dict(), "torchvision")
    images = coco_images(2)
    with torch.no_grad():
        same_detections(tv(images), ours.eval()(images))


def test_tag_downloads_checks_hash_and_loads(tv_full, tmp_path, monkeypatch):
    served = tmp_path / "served.pth"
    torch.save(tv_full.state_dict(), served)
    digest = hashlib.sha256(served.read_bytes()).hexdigest()
    tag = det_weights.DetectionTag("ssdlite320_mobilenet_v3_large", "test_coco", served.as_uri(), digest[:8],
                                   "test licence", 1.0, (("reduced_tail", False),))
    monkeypatch.setitem(det_weights.TAGS, tag.name, tag)
    ours = create_model("ssdlite320_mobilenet_v3_large", pretrained="test_coco")
    assert ours.pretrained_cfg["source"] == tag.name
    assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), create_model(
        "ssdlite320_mobilenet_v3_large", pretrained=served).state_dict().values()))
    bad = det_weights.DetectionTag(tag.model, "bad_coco", served.as_uri(), "0" * 8, "x", 1.0)
    monkeypatch.setitem(det_weights.TAGS, bad.name, bad)
    with pytest.raises(WeightsError, match="sha256"):
        create_model("ssdlite320_mobilenet_v3_large", pretrained="bad_coco")


def test_new_class_count_keeps_boxes(tv_full, tmp_path):
    path = tmp_path / "tv.pth"
    torch.save(tv_full.state_dict(), path)
    model = create_model("ssdlite320_mobilenet_v3_large", pretrained=path, num_classes=3)
    assert model.num_classes == 3 and model.pretrained_cfg["labels"] is None
    assert model.head.cls[0].pw.out_channels == 3 * 6
    assert torch.equal(model.head.box[0].pw.weight, tv_full.state_dict()["head.regression_head.module_list.0.1.weight"])
    model.train()
    targets = [{"boxes": torch.tensor([[10.0, 20.0, 200.0, 220.0]]), "labels": torch.tensor([2])},
               {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}]
    losses = model([torch.rand(3, 240, 320), torch.rand(3, 320, 320)], targets)
    assert set(losses) == {"bbox_regression", "classification"} and all(v.isfinite() for v in losses.values())


def test_counts_at_320_beside_the_papers():
    """Our counter on the network alone (not the decoding): torchvision's published
    3,440,060 params and its 0.583 G '_ops' for V3-Large; the papers' TF models differ
    (BN folded, 3 boxes on the first map), so they are shown, not matched."""
    from mobilenet.published import published_detection_for

    counts = {n: profile(create_model(n), 320) for n in list_models(task="detection")}
    assert {n: (c.params, c.macs) for n, c in counts.items()} == {
        "ssdlite320_mobilenet_v3_large": (3_440_060, 583_171_904),
        "ssdlite320_mobilenet_v3_small": (1_868_108, 195_135_424),
        "ssdlite320_mobilenet_v2_100": (4_664_988, 870_061_504),
    }
    for name in counts:
        assert published_detection_for(name, 320), name
    tv = [p for p in published_detection_for("ssdlite320_mobilenet_v3_large") if p.convention == "pytorch"][0]
    assert round(tv.params_m * 1e6) == counts["ssdlite320_mobilenet_v3_large"].params


def test_wrong_files_are_clear_errors(tmp_path):
    clf = tmp_path / "clf.pth"
    torch.save(create_model("mobilenet_v3_small_100").state_dict(), clf)
    with pytest.raises(WeightsError, match="not an SSDLite state dict"):
        create_model("ssdlite320_mobilenet_v3_large", pretrained=clf)
    v2 = tmp_path / "v2.pth"
    torch.save({"head.cls.0.pw.weight": torch.zeros(6 * 91, 576, 1, 1),
                "head.box.0.pw.weight": torch.zeros(24, 576, 1, 1)}, v2)
    with pytest.raises(WeightsError, match="does not fit"):
        create_model("ssdlite320_mobilenet_v3_small", pretrained=v2)
    with pytest.raises(WeightsError, match="no weights tagged"):
        create_model("ssdlite320_mobilenet_v2_100", pretrained=True)
    with pytest.raises(ValueError, match="reduced_tail=False"):
        create_model("ssdlite320_mobilenet_v2_100", reduced_tail=True, pretrained_backbone="x.pth")


def test_imported_tflite_classifier_as_backbone(tmp_path):
    from conftest import shared_path

    from mobilenet.weights import save_weights
    from mobilenet.weights.tflite import load_tflite

    tflite = shared_path("tflite", "mobilenet_v2_1.0_224_quant.tflite")
    classifier, _ = load_tflite(tflite)
    imported = save_weights(classifier, tmp_path / "v2_imported.safetensors")
    x = torch.rand(1, 3, 224, 224)
    for source in (tflite, imported):
        det = create_model("ssdlite320_mobilenet_v2_100", pretrained_backbone=source).eval()
        assert det.arch_args["padding"] == "same"  # TF padding, kept from the weights
        assert det.arch_args["backbone_bn_eps"] == classifier.stem.bn.eps
        assert det.backbone.stem.bn.momentum == 0.03
        with torch.no_grad():
            assert torch.equal(det.backbone.forward_features(x), classifier.forward_features(x))
        assert len(det([torch.rand(3, 300, 400)])) == 1
    with pytest.raises(ValueError, match="holds mobilenet_v2_100"):
        create_model("ssdlite320_mobilenet_v3_large", reduced_tail=False, pretrained_backbone=tflite)


def test_predict_draws_boxes_and_prints_json(tv_full, tmp_path, capsys):
    import json

    import numpy as np
    from conftest import shared_path
    from PIL import Image

    from mobilenet.cli import main

    weights = tmp_path / "tv.pth"
    torch.save(tv_full.state_dict(), weights)
    photo = shared_path("coco128", "images", "val2017", "000000000139.jpg")
    out = tmp_path / "drawn"
    args = ["predict", "--model", "ssdlite320_mobilenet_v3_large", "--weights", str(weights), str(photo),
            "--out", str(out), "--score-min", "0.9", "--json"]
    assert main(args) == 0
    [result] = json.loads(capsys.readouterr().out)
    assert result["drawn"] == str(out / "000000000139_boxes.png") and result["detections"]
    assert all(d["score"] >= 0.9 and d["name"] != "" for d in result["detections"])
    with torch.no_grad():
        expected = tv_full([torch.from_numpy(np.array(Image.open(photo))).permute(2, 0, 1) / 255])[0]
    assert len(result["detections"]) == int((expected["scores"] >= 0.9).sum())
    drawn = Image.open(result["drawn"])
    assert drawn.size == Image.open(photo).size and drawn.format == "PNG"
    assert (np.array(drawn) != np.array(Image.open(photo))).any()
    assert main(args) == 2  # never overwrites a picture
    assert "would be overwritten" in capsys.readouterr().err


def test_our_weights_file_rebuilds_the_detector(tv_full, tmp_path):
    from mobilenet.weights import load_weights, save_weights

    source = tmp_path / "tv.pth"
    torch.save(tv_full.state_dict(), source)
    model = create_model("ssdlite320_mobilenet_v3_large", pretrained=source)
    path = save_weights(model, tmp_path / "det.safetensors")
    images = [torch.rand(3, 200, 260)]
    with torch.no_grad():
        expected = model(images)[0]
        for loaded in (load_weights(path), create_model("ssdlite320_mobilenet_v3_large", pretrained=path)):
            assert loaded.arch_args == model.arch_args and loaded.pretrained_cfg["labels"][1] == "person"
            got = loaded(images)[0]
            assert all(torch.equal(expected[k], got[k]) for k in expected)
