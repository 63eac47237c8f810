"""int8 through PT2E: calibration on real images, int8 files, QAT, bad input."""

from __future__ import annotations

import json
import time

import pytest
import torch
from conftest import shared_path
from torch import nn

import mobilenet
from model_helpers import settled
from mobilenet.cli import main
from mobilenet.export import ExportError, export_model, load_artifact, save_program
from mobilenet.images import find_images, load_image
from mobilenet.quantize import (
    QuantizeError,
    calibration_batches,
    convert,
    model_preprocess,
    prepare_qat,
    quantize_ptq,
)

ARCHS = ["mobilenet_v1_025", "mobilenet_v2_035", "mobilenet_v3_large_035", "mobilenet_v3_small_050"]




def tflite_model(name: str):
    load_tflite = pytest.importorskip("mobilenet.weights.tflite").load_tflite

    return load_tflite(shared_path("tflite", name))


def sample(preprocess, count: int, step: int = 1) -> torch.Tensor:
    files = find_images(shared_path("imagenet-sample"))[::step][:count]
    t = preprocess.transform()
    return torch.stack([t(load_image(p)) for p in files]), torch.tensor(
        [find_images(shared_path("imagenet-sample")).index(p) + 1 for p in files])


@pytest.mark.parametrize("name", ARCHS)
def test_ptq_every_architecture(name):
    """V1, V2, V3-Large and V3-Small (hard-swish, hard-sigmoid, SE) all quantize
    through the same path to int8 weights, and keep the float logits' direction.
    (Untrained weights have tiny margins, so top-1 agreement is tested on real
    weights below and in the slow tests.)"""
    model = settled(name)
    calib = [torch.randn(8, 3, 64, 64) for _ in range(2)]
    q = quantize_ptq(model, calib, backend="x86")
    x = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        want, got = model(x), q(x)
    assert got.shape == want.shape
    assert nn.functional.cosine_similarity(got.flatten(), want.flatten(), dim=0) > 0.8
    targets = {str(n.target) for n in q.graph.nodes}
    assert any("quantize_per_tensor" in t for t in targets) and any("dequantize_per_channel" in t for t in targets)
    int8_weights = [b for b in q.buffers() if b.dtype == torch.int8]
    assert sum(b.numel() for b in int8_weights) > 0.9 * sum(p.numel() for p in model.parameters() if p.dim() > 1)
    assert not any(p.dtype == torch.float32 and p.dim() == 4 for p in q.parameters())  # float copies dropped


def test_int8_keeps_tflite_v1_predictions():
    """Google's V1-0.25-128 (imported as float): int8 from 64 real images agrees
    with float top-1 on most held-out images, and loses little accuracy."""
    model, info = tflite_model("mobilenet_v1_0.25_128_quant.tflite")
    x, y = sample(info["preprocess"], 240, step=4)
    calib, test = [x[:64]], x[64:]
    q = quantize_ptq(model, calib, backend="x86")
    with torch.no_grad():
        fp, i8 = model(test).argmax(1), q(test).argmax(1)
    agree = (fp == i8).float().mean().item()
    acc_fp, acc_i8 = (fp == y[64:]).float().mean().item(), (i8 == y[64:]).float().mean().item()
    assert acc_fp > 0.3  # the float model works at all
    assert agree >= 0.8 and acc_i8 >= acc_fp - 0.06, (agree, acc_fp, acc_i8)


def test_int8_onnx_and_executorch_files(tmp_path):
    """int8 files of Google's V1-0.25-128 (real weights, real calibration images) pass
    their own check in ONNX Runtime and ExecuTorch, keep the float top-1, and weigh at
    most 30% of the fp32 file (the smallest model, where scales, biases and the labels
    weigh most)."""
    model, info = tflite_model("mobilenet_v1_0.25_128_quant.tflite")
    x, _ = sample(info["preprocess"], 96, step=10)
    calib, test = [x[:48]], x[48:]
    with torch.no_grad():
        fp = model(test).argmax(1)
    for fmt, backend in (("onnx", "onnxruntime"), ("executorch", "xnnpack")):
        path = tmp_path / f"q.{fmt}"
        report = export_model(model, fmt, path, example=test[:8], int8=True, calib=calib)
        assert report.int8 and report.backend == backend and report.passed
        assert report.max_abs_diff <= report.tolerance
        art = load_artifact(path)
        assert art.int8 and art.metadata["backend"] == backend and art.num_classes == 1001
        assert (art(test).argmax(1) == fp).float().mean() >= 0.75
        assert len(art.labels) == 1001 and art.labels[0] == "background"
        fp32 = export_model(model, fmt, tmp_path / f"fp32.{fmt}", example=test[:8])
        assert report.bytes <= 0.30 * fp32.bytes, (fmt, report.bytes / fp32.bytes)


def test_int8_onnx_is_fully_quantized_and_names_float_islands(tmp_path):
    """ONNX Runtime's quantizer gives a graph its CPU provider fuses end to end (every
    conv, add and the classifier in int8); a V3 file says that hard-swish stays float."""
    import onnx
    import onnxruntime as ort

    calib = [torch.randn(4, 3, 64, 64)]
    v2 = tmp_path / "v2.onnx"
    report = export_model(settled("mobilenet_v2_035"), "onnx", v2, int8=True, calib=calib, resolution=64)
    assert report.passed and not report.notes and "optimisations off" in report.reference
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "v2-fused.onnx")
    ort.InferenceSession(str(v2), options, providers=["CPUExecutionProvider"])
    ops = [n.op_type for n in onnx.load(options.optimized_model_filepath).graph.node]
    assert ops.count("QLinearConv") == 52 and "Conv" not in ops and ops.count("QLinearAdd") == 10, ops
    assert ops.count("QGemm") == 1 and "Gemm" not in ops, ops
    report = export_model(settled("mobilenet_v3_small_050"), "onnx", tmp_path / "v3.onnx", int8=True, calib=calib,
                          resolution=64)
    assert report.passed and any("hard-swish" in n for n in report.notes)


def test_int8_onnx_of_an_untrained_model_falls_back_to_min_max(tmp_path):
    """A freshly initialised V3 has activations numpy cannot histogram (squeeze-excite
    gates all at 0.5): the percentile calibration gives way to min/max, says so, and the
    file still passes its check."""
    from mobilenet import create_model

    report = export_model(create_model("mobilenet_v3_small_050").eval(), "onnx", tmp_path / "fresh.onnx", int8=True,
                          calib=[torch.randn(4, 3, 64, 64)], resolution=64)
    assert report.passed and any("min/max" in n for n in report.notes), report.notes


def test_calibration_folder_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not an image")
    with pytest.raises(QuantizeError, match="no image files"):
        calibration_batches(empty, mobilenet.images.Preprocess())
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(QuantizeError, match="1 unreadable files"):
        calibration_batches(bad, mobilenet.images.Preprocess())
    with pytest.raises(QuantizeError, match="does not exist"):
        calibration_batches(tmp_path / "missing", mobilenet.images.Preprocess())
    with pytest.raises(ExportError, match="no image files"):
        export_model(settled("mobilenet_v1_025"), "onnx", tmp_path / "q.onnx", int8=True, calib=empty)
    assert not (tmp_path / "q.onnx").exists()


def test_calibration_skips_a_bad_file_among_real_ones(tmp_path):
    import shutil

    for p in find_images(shared_path("photos"))[:3]:
        shutil.copy(p, tmp_path / p.name)
    (tmp_path / "truncated.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    batches = calibration_batches(tmp_path, mobilenet.images.Preprocess(resolution=64), limit=1000)
    assert sum(len(b) for b in batches) == 3 and batches[0].shape[1:] == (3, 64, 64)


def test_cli_quantize_writes_pt2(tmp_path, capsys):
    from mobilenet.weights import save_weights

    weights = tmp_path / "v3s.safetensors"
    save_weights(settled("mobilenet_v3_small_050"), weights,
                 preprocess=mobilenet.images.Preprocess(resolution=64))
    calib = shared_path("hymenoptera", "val", "bees")
    out = tmp_path / "v3s-int8.pt2"
    start = time.perf_counter()
    assert main(["quantize", "--weights", str(weights), "--calib", str(calib), "--calib-images", "16",
                 "--check-images", "20", "-o", str(out), "--json"]) == 0
    wall = time.perf_counter() - start
    row = json.loads(capsys.readouterr().out)
    assert row["calib_images"] == 16 and row["bytes"] == out.stat().st_size
    # agreement measured on images not calibrated on, and said so; "seconds" is the command's wall time
    assert row["agreement_images"] == 20 and "not used for calibration" in row["agreement_on"]
    assert 0.9 * wall <= row["seconds"] <= wall
    art = load_artifact(out)
    assert art.format == "pt2" and art.int8 and art.preprocess.resolution == 64
    assert art(torch.randn(3, 3, 64, 64)).shape == (3, 10)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["quantize", "--weights", str(weights), "--calib", str(empty), "-o", str(tmp_path / "x.pt2")]) == 2
    assert "no image files" in capsys.readouterr().err
    assert not (tmp_path / "x.pt2").exists()


def test_qat_trains_and_converts(tmp_path):
    model = settled("mobilenet_v3_small_050")
    qat = prepare_qat(model, backend="x86", example=torch.randn(2, 3, 64, 64))
    opt = torch.optim.SGD(qat.parameters(), lr=0.01)
    x, y = torch.randn(8, 3, 64, 64), torch.randint(0, 10, (8,))
    qat.train()
    for _ in range(2):
        loss = nn.functional.cross_entropy(qat(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    qat.eval()  # the training loop's eval/train calls work on the exported graph
    q = convert(qat)
    with torch.no_grad():
        out = q(torch.randn(5, 3, 64, 64))
    assert out.shape == (5, 10) and torch.isfinite(out).all()
    assert q.arch_args == model.arch_args
    path = save_program(q, tmp_path / "qat.pt2", example=torch.randn(2, 3, 64, 64))
    assert load_artifact(path)(torch.randn(2, 3, 64, 64)).shape == (2, 10)


# -- slow acceptance checks on real weights and real images ---------------------------------
def _accuracy_rows(tflite_name: str, tmp_path, formats=("onnx", "executorch")):
    """top-1 on all of imagenet-sample for fp32 and int8 (PT2E graph, ONNX, ExecuTorch),
    calibrated on 200 of its images (every 5th); as benchmarks/int8_accuracy.py."""
    model, info = tflite_model(tflite_name)
    files = find_images(shared_path("imagenet-sample"))
    t = info["preprocess"].transform()
    x = torch.stack([t(load_image(p)) for p in files])
    y = torch.arange(len(files)) + 1  # output 0 is "background"
    calib = [x[torch.arange(0, len(x), 5)[i : i + 25]] for i in range(0, 200, 25)]

    def top1(fn):
        with torch.no_grad():
            return torch.cat([fn(x[i : i + 50]).argmax(1) for i in range(0, len(x), 50)])

    rows = {"fp32": (top1(model), None)}
    rows["int8 pt2e"] = (top1(quantize_ptq(model, calib, backend="x86")), None)
    for fmt in formats:
        sizes = {}
        for int8 in (False, True):
            path = tmp_path / f"{'int8' if int8 else 'fp32'}.{fmt}"
            export_model(model, fmt, path, example=x[:4], int8=int8, calib=calib if int8 else None)
            sizes[int8] = path.stat().st_size
        rows[f"int8 {fmt}"] = (top1(load_artifact(tmp_path / f"int8.{fmt}")), sizes[True] / sizes[False])
    fp = rows["fp32"][0]
    return {k: {"top1": (p == y).float().mean().item(), "agree": (p == fp).float().mean().item(), "size": s}
            for k, (p, s) in rows.items()}


@pytest.mark.slow
def test_tflite_v2_int8_keeps_accuracy(tmp_path):
    rows = _accuracy_rows("mobilenet_v2_1.0_224_quant.tflite", tmp_path)
    fp = rows.pop("fp32")["top1"]
    for name, r in rows.items():
        assert r["top1"] >= fp - 0.02 and r["agree"] >= 0.90, (name, fp, r)
        assert r["size"] is None or r["size"] <= 0.30, (name, r)


@pytest.mark.slow
def test_tflite_v1_025_int8_keeps_accuracy(tmp_path):
    rows = _accuracy_rows("mobilenet_v1_0.25_128_quant.tflite", tmp_path)
    fp = rows.pop("fp32")["top1"]
    for name, r in rows.items():
        assert r["top1"] >= fp - 0.03, (name, fp, r)
        assert r["size"] is None or r["size"] <= 0.30, (name, r)


@pytest.mark.slow
def test_v3_small_trained_on_cifar_keeps_accuracy_in_int8(tmp_path):
    """A V3-Small trained by the training loop on real photos, scored on the images
    training held out, loses at most one point in int8: the x86 PT2E graph
    (`mobilenet quantize`), the int8 ONNX, ExecuTorch and OpenVINO files."""
    from mobilenet.evaluate import evaluate
    from mobilenet.train import Trainer
    from mobilenet.train.config import TrainConfig
    from mobilenet.train.data import load_data
    from mobilenet.weights import load_weights

    data = shared_path("cifar10-test")
    # The `quick` recipe `mobilenet train` runs, without its label smoothing: smoothing lowered int8
    # agreement in the V4 study (docs/deployment.md), and with it this run's int8 ONNX lost 1.2 points
    # (fp32 53.1%, 51.9%; 16 min, 30 Nov 2026).
    cfg = TrainConfig(model="mobilenet_v3_small_100", data=str(data), epochs=6, output=str(tmp_path), name="run",
                      label_smoothing=0.0)
    Trainer(cfg, progress=False, log=lambda m: None).run()
    model = load_weights(tmp_path / "run" / "weights.safetensors")
    pre = model_preprocess(model)
    split = load_data(str(data), val_split=cfg.val_split, seed=cfg.seed, log=lambda m: None)
    t = pre.transform()
    calib = [torch.stack([t(load_image(p)) for p, _ in split.train.items[i : i + 50]]) for i in range(0, 200, 50)]

    def top1(m) -> float:
        return evaluate(m, split.val.items, split.classes, preprocess=pre).top1

    acc_fp = top1(model)
    acc_pt2e = top1(quantize_ptq(model, calib, backend="x86"))
    acc = {}
    for fmt, suffix in (("onnx", "onnx"), ("executorch", "pte"), ("openvino", "xml")):
        export_model(model, fmt, tmp_path / f"int8.{suffix}", example=calib[0][:8], int8=True, calib=calib)
        acc[fmt] = top1(load_artifact(tmp_path / f"int8.{suffix}").as_module())
    assert acc_fp > 0.3, acc_fp
    assert min(acc_pt2e, *acc.values()) >= acc_fp - 0.01, (acc_fp, acc_pt2e, acc)

