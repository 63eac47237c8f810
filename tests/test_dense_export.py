"""Every dense model as a file: segmentation models through ``mobilenet export`` (ONNX and
ExecuTorch, fp32 and int8), SSDLite as an ExecuTorch program (decoding in the file, NMS
in the loader) checked against eager PyTorch on coco128 photos."""

from __future__ import annotations

import json

import pytest
import torch
from detection_helpers import coco_images, starting_model
from test_segmentation import check_exports, randomise

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
    for report in check_exports(name, tmp_path, 64):
        assert load_artifact(report.path)(torch.rand(3, 3, 64, 64)).shape == (3, 21, 64, 64)


@pytest.mark.parametrize("fmt", ["onnx", pytest.param("executorch", marks=pytest.mark.slow)])
def test_segmentation_int8_files_are_written_and_checked(fmt, tmp_path, capsys):
    """--int8 --calib: ONNX Runtime's and XNNPACK's quantizers on a segmentation model;
    the file runs per-pixel logits and is checked against its int8 reference."""
    from conftest import shared_path

    calib = shared_path("coco128", "images", "train2017")
    out = tmp_path / f"seg8.{'onnx' if fmt == 'onnx' else 'pte'}"
    assert main(["export", "--model", "lraspp_mobilenet_v3_small", "--format", fmt, "--int8", "--calib",
                 str(calib), "--calib-images", "8", "--resolution", "96", "-o", str(out), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["passed"] and row["int8"] and row["max_abs_diff"] <= row["tolerance"]
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
    # what eval and predict run (NMS applied), on a photo of the file's input size
    detector_file = load_artifact(report.path).as_module()
    photo = check_images((480, 640), images[:1])[0]
    with torch.no_grad():
        got, want = detector_file([photo])[0], detector([photo])[0]
    want = [want["boxes"], want["scores"], want["labels"]]
    assert len(got["boxes"]) == len(want[0]) > 0
    assert agreement(want, [got["boxes"], got["scores"], got["labels"]])[0] == len(want[0])


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
@pytest.mark.parametrize("name", list_models(task="segmentation") + list_models(task="detection"))
def test_every_dense_model_exports_to_onnx_and_executorch(name, tmp_path):
    """Every detection and segmentation registry model, both formats, checked in its runtime."""
    from mobilenet.detection.executorch import export_pte
    from mobilenet.detection.export import export_onnx
    from mobilenet.export import export_model
    from mobilenet.registry import get_spec

    if get_spec(name).task == "detection":
        model = starting_model(name, coco_images(4, "train2017"))
        for export, fmt in ((export_onnx, "onnx"), (export_pte, "pte")):
            report = export(model, tmp_path / f"{name}.{fmt}", images=coco_images(2))
            # passed: each stage matched; the whole pipeline on the photo is reported, as float noise
            # between runtimes may reorder near-tied candidates (V2: 597 of 600 within 1e-3 px)
            assert report.passed and report.detections > 0 and report.eager_agreement >= 0.99, (fmt, report)
        return
    model = randomise(create_model(name))
    for fmt in ("onnx", "executorch"):
        report = export_model(model, fmt, tmp_path / f"{name}.{fmt}", example=torch.randn(2, 3, 96, 96))
        assert report.passed and report.top1_agree_fp32 > 0.999, (fmt, report)


@pytest.mark.slow
def test_segmentation_int8_keeps_a_trained_models_accuracy(tmp_path):
    """int8 ONNX and ExecuTorch files of a trained segmentation model (weights named by
    MOBILENET_TRAINED_SEGMENTATION, e.g. a `mobilenet train --task segmentation` run's
    weights.safetensors), calibrated on coco128 train photos: per-pixel classes agree with
    fp32 and the val mIoU holds (docs/dense.md has the measured figures)."""
    import importlib.util
    import os

    from conftest import ROOT, shared_path

    weights = os.environ.get("MOBILENET_TRAINED_SEGMENTATION")
    if not weights or not os.path.isfile(weights):
        pytest.skip("set MOBILENET_TRAINED_SEGMENTATION to a trained segmentation model's weights file")
    shared_path("coco128", "masks_voc")
    spec = importlib.util.spec_from_file_location("dense_int8", ROOT / "benchmarks" / "dense_int8.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rows = bench.evaluate(weights, 160, ["onnx", "executorch"], 50, tmp_path)["rows"]
    fp32 = rows["fp32 eager"]
    assert rows["onnx"]["agree_fp32"] > 0.999 and rows["executorch"]["agree_fp32"] > 0.999
    for name in ("onnx int8", "executorch int8"):
        assert rows[name]["agree_fp32"] >= 0.90, (name, rows[name])  # 93% measured on a weak model
        assert abs(rows[name]["miou"] - fp32["miou"]) <= 0.01, (name, rows[name], fp32)


@pytest.mark.slow
def test_onnx_int8_ssdlite_keeps_float_decoding_and_nms(detector, tmp_path):
    """Backbone + heads int8 in ONNX Runtime, decoding and NMS the fp32 file's: the file's
    detections are eager's decoding of the file's own head outputs."""
    import onnx

    from mobilenet.detection.export import load_onnx
    from mobilenet.detection.quantize import export_onnx_int8

    report = export_onnx_int8(detector, tmp_path / "d8.onnx", images=coco_images(2), image_size=(480, 640),
                              calib=coco_images(16, "train2017"))
    assert report.passed and report.int8 and report.max_raw_diff <= 0.1 and report.max_box_diff <= 1e-3
    assert report.int8_match is not None and report.int8_match > 0.5
    proto = onnx.load(report.path)
    assert [o.name for o in proto.graph.output] == ["boxes", "scores", "labels"]
    ops = [n.op_type for n in proto.graph.node]
    assert "NonMaxSuppression" in ops and ops.count("QuantizeLinear") > 50
    assert json.loads(proto.metadata_props[0].value)["int8"] is True
    boxes, scores, labels = load_onnx(report.path)(torch.rand(1, 3, 480, 640))
    assert boxes.shape[1] == 4 and len(boxes) == len(scores) == len(labels)


def test_onnx_files_of_any_size_get_a_session_fixed_to_each_recurring_size(tmp_path):
    """A segmentation file is exported for any image size; ONNX Runtime runs it faster in a
    session whose free dimensions are fixed (runtimes.onnx.SizedSessions). Each size that
    recurs gets one, with the same logits as the free session; the rest keep the free one."""
    import onnxruntime as ort

    from mobilenet.export import export_model
    from mobilenet.runtimes.onnx import SizedSessions

    torch.manual_seed(0)
    model = randomise(create_model("lraspp_mobilenet_v3_small", num_classes=4)).eval()
    path = tmp_path / "seg.onnx"
    export_model(model, "onnx", path, resolution=64)

    def make(fixed):
        options = ort.SessionOptions()
        for dim, value in (fixed or {}).items():
            options.add_free_dimension_override_by_name(dim, value)
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    sessions = SizedSessions(make)
    assert [d for _, d in sessions.free_dims] == ["batch", "height", "width"]
    x, y = torch.rand(2, 3, 64, 96).numpy(), torch.rand(1, 3, 80, 64)
    free = [sessions.run(x)[0], sessions.run(x)[0]]
    assert not sessions.fixed
    fixed = sessions.run(x)[0]
    assert list(sessions.fixed) == [(2, 3, 64, 96)]
    assert sessions.fixed[(2, 3, 64, 96)].get_inputs()[0].shape == [2, 3, 64, 96]
    torch.testing.assert_close(torch.from_numpy(fixed), torch.from_numpy(free[0]), rtol=1e-5, atol=1e-5)
    with torch.no_grad():  # another size: the free session, and the model's logits
        expected = model(y)
    assert (torch.from_numpy(sessions.run(y.numpy())[0]) - expected).abs().max() <= 1e-4 * expected.abs().max()
    assert list(sessions.fixed) == [(2, 3, 64, 96)]
    for side in (32, 40, 48, 56, 64):  # at most 4 fixed sessions, the least recently used dropped
        for _ in range(3):
            sessions.run(torch.rand(1, 3, side, side).numpy())
    assert len(sessions.fixed) == 4 and (2, 3, 64, 96) not in sessions.fixed
