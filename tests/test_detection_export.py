"""SSDLite as an ONNX file: decoding and NMS inside the graph (boxes, scores, labels
out) or the raw head with its anchors; checked in ONNX Runtime on coco128 photos."""

from __future__ import annotations

import pytest
import torch
from detection_helpers import coco_images, starting_model

from mobilenet import create_model
from mobilenet.detection.export import DetectionExportError, DetectionGraph, check_images, export_onnx, load_onnx


@pytest.fixture(scope="module")
def detector():
    torch.manual_seed(2)
    return starting_model("ssdlite320_mobilenet_v3_large", coco_images(8, "train2017"))


def test_graph_computes_what_the_model_does(detector):
    images = check_images((240, 320), coco_images(2))
    graph = DetectionGraph(detector, image_size=(240, 320))
    with torch.no_grad():
        for img, expected in zip(images, detector(images)):
            boxes, scores, labels = graph(img[None])
            assert len(boxes) == len(expected["boxes"]) > 0
            assert torch.equal(labels, expected["labels"]) and torch.equal(scores, expected["scores"])
            torch.testing.assert_close(boxes, expected["boxes"], atol=1e-4, rtol=0)
        offsets, logits, anchors = DetectionGraph(detector, nms=False)(check_images((320, 320), images[:1])[0][None])
        with pytest.raises(DetectionExportError, match="240x320"):
            DetectionGraph(detector)(images[0][None])
    assert offsets.shape == (1, 3234, 4) and logits.shape == (1, 3234, 91) and torch.equal(anchors, detector.anchors)


def test_bad_requests_are_clear_errors(tmp_path):
    with pytest.raises(DetectionExportError, match="not a mobilenet detector"):
        DetectionGraph(create_model("mobilenet_v3_small_100"))
    with pytest.raises(DetectionExportError, match="at least 32x32"):
        DetectionGraph(create_model("ssdlite320_mobilenet_v3_small"), image_size=(16, 16))


@pytest.mark.slow
def test_onnx_with_nms_gives_eager_detections_on_coco_photos(detector, tmp_path):
    images = coco_images(4)
    report = export_onnx(detector, tmp_path / "ssdlite.onnx", images=images, image_size=(480, 640))
    assert report.passed and report.detections > 0 and report.max_raw_diff <= 1e-4
    assert report.eager_agreement == 1.0 and report.eager_max_box_diff <= 1e-3  # every eager box, within 1e-3 px
    import json

    import onnx

    meta = json.loads({p.key: p.value for p in onnx.load(report.path).metadata_props}["mobilenet"])
    assert meta["nms"] is True and meta["image_size"] == [480, 640] and meta["outputs"] == ["boxes", "scores", "labels"]
    run = load_onnx(report.path)
    img = check_images((480, 640), images[:1])[0]
    boxes, scores, labels = run(img[None])
    assert boxes.shape[1] == 4 and labels.dtype == torch.int64 and len(scores) == len(boxes) <= 300
    assert float(boxes[:, 2].max()) <= 640.0 + 1e-3 and float(boxes[:, 3].max()) <= 480.0 + 1e-3


@pytest.mark.slow
def test_onnx_without_nms_returns_head_and_anchors(detector, tmp_path):
    report = export_onnx(detector, tmp_path / "raw.onnx", nms=False, images=coco_images(2))
    assert report.passed and report.max_raw_diff <= 1e-4
    offsets, logits, anchors = load_onnx(report.path)(torch.rand(1, 3, 320, 320))
    assert offsets.shape == (1, 3234, 4) and logits.shape == (1, 3234, 91)
    assert torch.equal(anchors, detector.anchors)


def test_cli_export_of_a_detector_says_what_it_supports(tmp_path, capsys):
    from mobilenet.cli import main

    out = str(tmp_path / "d.xml")
    assert main(["export", "--model", "ssdlite320_mobilenet_v3_small", "--format", "openvino", "-o", out]) == 2
    assert "detectors export to ONNX or ExecuTorch only" in capsys.readouterr().err
    assert main(["export", "--model", "mobilenet_v3_small_100", "--format", "onnx", "--no-nms",
                 "-o", str(tmp_path / "c.onnx")]) == 2
    assert "--no-nms is for detectors" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_cli_export_of_a_detector_on_real_images(tmp_path, capsys):
    import json

    from conftest import shared_path

    from mobilenet.cli import main

    photos = shared_path("coco128", "images", "val2017")
    assert main(["export", "--model", "ssdlite320_mobilenet_v3_small", "--format", "onnx", "--images", str(photos),
                 "-o", str(tmp_path / "d.onnx"), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["passed"] and row["nms"] and row["checked_images"] == 4 and (tmp_path / "d.onnx").is_file()
