"""MobileNetV4 through every exporter (Mobile MQA included) and through int8.

The default suite exports conv_small and hybrid_medium at 64 px to ONNX and
TorchScript; ExecuTorch lowering of the 40-block hybrids takes minutes on a busy
CPU, so it runs in the slow tests (with every V4 model)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import mobilenet
from mobilenet.export import export_model, load_artifact
from mobilenet.quantize import quantize_ptq

RES = 64


def settled_v4(name: str, num_classes: int = 10) -> nn.Module:
    """Random weights scaled by fan-in, random BatchNorm statistics and layer scales far
    from 1e-5 (so attention shows in the logits): logits of order 1, and a network whose
    fp32 result is within ~1e-6 of fp64 (data-settled statistics from a few images made
    the 40-block hybrids ~5e-5 sensitive, too close to the exporters' 1e-4 check)."""
    from test_v4 import randomize

    return randomize(mobilenet.create_model(name, num_classes=num_classes))


def check(model: nn.Module, fmt: str, path) -> None:
    report = export_model(model, fmt, path, example=torch.randn(3, 3, RES, RES))
    assert report.passed and report.max_abs_diff <= 1e-4 * report.logit_scale, (fmt, report)
    assert report.logit_scale > 0.05  # a real comparison
    art = load_artifact(path)
    x = torch.randn(2, 3, RES, RES)
    with torch.no_grad():
        want = model(x)
    assert (art(x) - want).abs().max() <= 1e-4 * want.abs().max()


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize("name", ["mobilenet_v4_conv_small", "mobilenet_v4_hybrid_medium"])
def test_v4_exports_and_checks_itself(name, fmt, tmp_path):
    check(settled_v4(name), fmt, tmp_path / f"m.{fmt}")


@pytest.mark.slow
@pytest.mark.parametrize("name", mobilenet.list_models("mobilenet_v4_*"))
def test_every_v4_exports_to_every_format(name, tmp_path):
    model = settled_v4(name)
    for fmt in ("onnx", "executorch", "torchscript"):
        check(model, fmt, tmp_path / f"m.{fmt}")


def test_v4_conv_small_int8():
    """PT2E int8 of conv_small: int8 weights for the convs, the float logits' direction kept
    (agreement on a trained model is a benchmark, not a unit test: see docs/training.md)."""
    model = settled_v4("mobilenet_v4_conv_small")
    calib = [torch.randn(8, 3, RES, RES) for _ in range(2)]
    q = quantize_ptq(model, calib, backend="x86")
    x = torch.randn(4, 3, RES, RES)
    with torch.no_grad():
        want, got = model(x), q(x)
    assert nn.functional.cosine_similarity(got.flatten(), want.flatten(), dim=0) > 0.8
    int8 = sum(b.numel() for b in q.buffers() if b.dtype == torch.int8)
    assert int8 > 0.9 * sum(p.numel() for p in model.parameters() if p.dim() > 1)


def test_v4_conv_small_int8_onnx_file(tmp_path):
    model = settled_v4("mobilenet_v4_conv_small")
    calib = [torch.randn(16, 3, RES, RES)]
    report = export_model(model, "onnx", tmp_path / "q.onnx", example=torch.randn(4, 3, RES, RES), int8=True,
                          calib=calib)
    assert report.int8 and report.passed and report.max_abs_diff <= report.tolerance


def _ort_node_counts(module: nn.Module, path) -> "Counter[str]":
    """Op types of ``module``'s ONNX graph (dynamic batch) after ONNX Runtime's own optimisations."""
    import contextlib
    import io
    from collections import Counter

    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        torch.onnx.export(module.eval(), (torch.randn(2, 32, 8, 8),), str(path), dynamo=True, external_data=False,
                          dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=64)},))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(path) + ".opt"
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return Counter(n.op_type for n in onnx.load(options.optimized_model_filepath).graph.node)


def test_mqa_onnx_graph_is_as_lean_as_timms(tmp_path):
    """Our Mobile MQA's ONNX graph, as ONNX Runtime runs it, has no more nodes, reshapes or
    transposes than timm's block of the same shape (with the heads folded into the query
    sequence it had two reshapes and a transpose more per block, which ORT cannot fold away)."""
    from mobilenet.blocks_v4 import MobileMQA

    blocks = pytest.importorskip("timm.models._efficientnet_blocks")
    ours = _ort_node_counts(MobileMQA(32, 32, heads=4, key_dim=16, kv_stride=2), tmp_path / "ours.onnx")
    theirs = _ort_node_counts(blocks.MobileAttention(32, 32, num_heads=4, key_dim=16, value_dim=16,
                                                     use_multi_query=True, kv_stride=2), tmp_path / "timm.onnx")
    assert ours["Softmax"] == theirs["Softmax"] == 1  # one attention each: the same block
    assert ours["Transpose"] <= theirs["Transpose"] and ours["Reshape"] <= theirs["Reshape"], (ours, theirs)
    assert sum(ours.values()) <= sum(theirs.values()), (ours, theirs)
