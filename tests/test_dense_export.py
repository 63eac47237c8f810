"""Every dense model as a file: segmentation models through ``mobilenet export`` (ONNX and
ExecuTorch, fp32 and int8), SSDLite as an ExecuTorch program (decoding in the file, NMS
in the loader) checked against eager PyTorch on coco128 photos."""

from __future__ import annotations

import json
import time

import pytest
import torch
from detection_helpers import coco_images, starting_model
from test_segmentation import randomise

from mobilenet import create_model
from mobilenet.cli import main
from mobilenet.registry import list_models
from mobilenet.runtimes import load_artifact


@pytest.fixture(scope="module")
def detector():
    torch.manual_seed(2)
    model = starting_model("ssdlite320_mobilenet_v3_large", coco_images(8, "train2017"))
    model.model_name = "ssdlite320_mobilenet_v3_large"
    return model


def test_cli_export_of_a_segmentation_model_keeps_its_classes(tmp_path, capsys):
    """--model NAME for a segmentation model: its own 21 VOC classes, not 1000; --num-classes overrides."""
    out = tmp_path / "seg.onnx"
    assert main(["export", "--model", "lraspp_mobilenet_v3_small", "--format", "onnx", "-o", str(out),
                 "--resolution", "64", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["passed"] and row["top1_agree_fp32"] == 1.0
    artifact = load_artifact(out)
    assert artifact.num_classes == 21 and artifact(torch.rand(2, 3, 64, 64)).shape == (2, 21, 64, 64)
    assert main(["export", "--model", "lraspp_mobilenet_v3_small", "--format", "onnx", "-o", str(tmp_path / "s5.onnx"),
                 "--resolution", "64", "--num-classes", "5", "--quiet"]) == 0
    assert load_artifact(tmp_path / "s5.onnx")(torch.rand(1, 3, 64, 64)).shape == (1, 5, 64, 64)


@pytest.mark.parametrize("name", ["lraspp_mobilenet_v3_small", "deeplabv3_mobilenet_v2_100"])
def test_segmentation_models_export_to_onnx_and_executorch(name, tmp_path):
    from mobilenet.export import export_model

    model = randomise(create_model(name))
    for fmt in ("onnx", "executorch"):
        report = export_model(model, fmt, tmp_path / f"m.{fmt}", example=torch.randn(2, 3, 64, 64))
        assert report.passed and report.max_abs_diff <= 1e-4 * report.logit_scale, (fmt, report)
        assert report.top1_agree_fp32 > 0.999
        assert load_artifact(report.path)(torch.rand(3, 3, 64, 64)).shape == (3, 21, 64, 64)


def test_segmentation_int8_files_are_written_and_checked(tmp_path):
    """--int8 --calib: ONNX Runtime's and XNNPACK's quantizers on a segmentation model;
    the file runs per-pixel logits and is checked against its int8 reference."""
    from conftest import shared_path

    calib = shared_path("coco128", "images", "train2017")
    for fmt, suffix in (("onnx", "onnx"), ("executorch", "pte")):
        out = tmp_path / f"seg8.{suffix}"
        assert main(["export", "--model", "lraspp_mobilenet_v3_small", "--format", fmt, "--int8", "--calib",
                     str(calib), "--calib-images", "8", "--resolution", "96", "-o", str(out), "--json"]) == 0
        artifact = load_artifact(out)
        assert artifact.int8 and artifact(torch.rand(1, 3, 96, 96)).shape == (1, 21, 96, 96)


def test_detector_export_requests_are_clear_errors(tmp_path, capsys):
    out = str(tmp_path / "d.pt")
    assert main(["export", "--model", "ssdlite320_mobilenet_v3_small", "--format", "torchscript", "-o", out]) == 2
    assert "detectors export to ONNX or ExecuTorch only" in capsys.readouterr().err
    assert main(["export", "--model", "ssdlite320_mobilenet_v3_small", "--format", "executorch", "--int8",
                 "-o", str(tmp_path / "d.pte")]) == 2
    assert "--int8 needs --calib" in capsys.readouterr().err
    assert main(["export", "--model", "ssdlite320_mobilenet_v3_small", "--format", "executorch", "--int8",
                 "--calib", str(tmp_path), "-o", str(tmp_path / "d.pte")]) == 2
    assert "no images found" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_executorch_ssdlite_gives_eager_detections_on_coco_photos(detector, tmp_path):
    """The acceptance check: the .pte + our NMS give eager's detections on real photos
    (same labels, scores within 1e-4, boxes within 1e-3 px)."""
    from mobilenet.detection.executorch import load_pte
    from mobilenet.detection.export import DetectionGraph, agreement, check_images

    images = coco_images(4)
    from mobilenet.detection.executorch import export_pte

    report = export_pte(detector, tmp_path / "ssdlite.pte", images=images, image_size=(480, 640))
    assert report.passed and report.detections > 0
    assert report.max_box_diff <= 1e-3 and report.max_score_diff <= 1e-4
    assert report.eager_agreement == 1.0 and report.eager_max_box_diff <= 1e-3
    run = load_pte(report.path)
    assert run.metadata["outputs"] == ["boxes", "scores"] and run.metadata["postprocess"]["nms_thresh"] == 0.55
    graph = DetectionGraph(detector, image_size=(480, 640))
    for img in check_images((480, 640), images[4:] or coco_images(6)[4:]):
        boxes, scores, labels = run(img[None])
        with torch.no_grad():
            eager = graph(img[None])
        assert len(boxes) == len(eager[0]) > 0 and labels.dtype == torch.int64
        assert agreement(eager, [boxes, scores, labels])[0] == len(eager[0])


@pytest.mark.slow
def test_executorch_ssdlite_raw_head_and_int8(detector, tmp_path):
    from mobilenet.detection.executorch import export_pte, load_pte

    report = export_pte(detector, tmp_path / "raw.pte", nms=False, images=coco_images(2))
    assert report.passed and report.max_raw_diff <= 1e-4
    offsets, logits, anchors = load_pte(report.path)(torch.rand(1, 3, 320, 320))
    assert offsets.shape == (1, 3234, 4) and logits.shape == (1, 3234, 91) and torch.equal(anchors, detector.anchors)
    report = export_pte(detector, tmp_path / "int8.pte", images=coco_images(2), int8=True,
                        calib=coco_images(16, "train2017"))
    run = load_pte(report.path)
    boxes, scores, labels = run(torch.rand(1, 3, 320, 320))
    assert report.passed and run.metadata["int8"] and boxes.shape[1] == 4 and len(boxes) == len(labels) > 0
    assert report.bytes < 0.4 * (tmp_path / "raw.pte").stat().st_size  # int8 weights


@pytest.mark.slow
def test_every_dense_model_exports_to_onnx_and_executorch(tmp_path):
    """Every detection and segmentation registry model, both formats, checked in its runtime."""
    from mobilenet.detection.executorch import export_pte
    from mobilenet.detection.export import export_onnx
    from mobilenet.export import export_model

    names = list_models(task="segmentation") + list_models(task="detection")
    done, start = [], time.perf_counter()
    for name in names:
        model = create_model(name)
        if model.task == "detection":
            images = coco_images(2)
            model = starting_model(name, coco_images(4, "train2017"))
            for export, fmt in ((export_onnx, "onnx"), (export_pte, "pte")):
                report = export(model, tmp_path / f"{name}.{fmt}", images=images)
                assert report.passed and report.eager_agreement == 1.0, (name, fmt, report)
                done.append((name, fmt))
            continue
        model = randomise(model)
        for fmt in ("onnx", "executorch"):
            report = export_model(model, fmt, tmp_path / f"{name}.{fmt}", example=torch.randn(2, 3, 96, 96))
            assert report.passed and report.top1_agree_fp32 > 0.999, (name, fmt, report)
            done.append((name, fmt))
    assert len(done) == 2 * len(names) >= 18
    print(f"{len(done)} files from {len(names)} dense models in {time.perf_counter() - start:.0f} s")
