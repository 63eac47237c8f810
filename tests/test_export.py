"""Export to ONNX, ExecuTorch and TorchScript: each file checks itself in its own runtime."""

from __future__ import annotations

import json

import pytest
import torch

import mobilenet
from model_helpers import settled
from mobilenet.cli import main
from mobilenet import runtimes
from mobilenet.export import FORMATS, ExportError, export_model, load_artifact

# One model per architecture class; small widths and 64 px keep the default suite quick
# (V3-Large goes through the same class as V3-Small; every model is in the slow test).
PER_ARCH = ["mobilenet_v1_025", "mobilenet_v2_035", "mobilenet_v3_small_050"]
RES = 64


def installed(fmt: str) -> str:
    """``fmt``, skipping the test where its runtime's extra is not installed (LiteRT's
    converter is not part of [test]: ~850 MB)."""
    runtime = runtimes.get(fmt)
    if not runtime.writable():
        pytest.skip(f"{fmt}: its runtime or converter is not installed here (LiteRT's converter is the "
                    "[litert] extra, not part of [test])")
    return fmt




def leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", PER_ARCH)
def test_every_architecture_exports_and_checks_itself(name, fmt, tmp_path):
    installed(fmt)
    model = settled(name)
    batch = torch.randn(3, 3, RES, RES)
    path = tmp_path / f"model{runtimes.get(fmt).suffix}"
    report = export_model(model, fmt, path, example=batch)
    assert report.passed and report.reference == "fp32 eager"
    assert report.max_abs_diff <= 1e-4 * report.logit_scale
    assert report.logit_scale > 0.05  # a real comparison, not of near-zero outputs
    # no temporary files left (an OpenVINO IR is two files: the .xml and its .bin); bytes counts both
    files = [path, *runtimes.get(fmt).companions(path)]
    assert leftovers(tmp_path) == sorted(p.name for p in files)
    assert report.bytes == sum(p.stat().st_size for p in files) > 0
    # A user loads it again, at another batch size, and gets the eager logits.
    artifact = load_artifact(path)
    assert artifact.format == fmt and artifact.metadata["model_name"] == name
    # the file was made for the example's RES px images: its preprocessing says so (the weights say 224)
    assert artifact.preprocess.resolution == RES and artifact.num_classes == 10
    x = torch.randn(5, 3, RES, RES)
    with torch.no_grad():
        want = model(x)
    got = artifact(x)
    assert got.shape == (5, 10)
    assert (got - want).abs().max() <= 1e-4 * want.abs().max()


def test_onnx_file_is_self_contained_with_dynamic_batch(tmp_path):
    import onnx

    path = tmp_path / "m.onnx"
    export_model(settled("mobilenet_v3_small_050"), "onnx", path, example=torch.randn(2, 3, RES, RES))
    proto = onnx.load(str(path))
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer)
    dim0 = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert dim0.dim_param and not dim0.dim_value  # symbolic batch
    ops = {n.op_type for n in proto.graph.node}
    assert "BatchNormalization" not in ops and {"HardSwish", "HardSigmoid"} & ops
    assert json.loads({p.key: p.value for p in proto.metadata_props}["mobilenet"])["int8"] is False


def test_tensorflow_padding_exports(tmp_path):
    model = settled("mobilenet_v1_025", padding="same")
    report = export_model(model, "onnx", tmp_path / "m.onnx", example=torch.randn(2, 3, RES, RES))
    assert report.max_abs_diff <= report.tolerance


def test_unknown_format_is_one_clear_error(tmp_path):
    with pytest.raises(ExportError, match="unknown format 'coreml'.*onnx, executorch, torchscript"):
        export_model(settled("mobilenet_v1_025"), "coreml", tmp_path / "m.mlpackage")
    assert leftovers(tmp_path) == []


def test_unsupported_option_is_one_clear_error(tmp_path):
    backbone = mobilenet.create_model("mobilenet_v2_035", features_only=True)
    with pytest.raises(ExportError, match="features_only"):
        export_model(backbone, "onnx", tmp_path / "m.onnx")
    with pytest.raises(ExportError, match="int8 TorchScript is not supported"):
        export_model(settled("mobilenet_v1_025"), "torchscript", tmp_path / "m.ts", int8=True, calib=tmp_path)
    with pytest.raises(ExportError, match="calibration images"):
        export_model(settled("mobilenet_v1_025"), "onnx", tmp_path / "m.onnx", int8=True)
    assert leftovers(tmp_path) == []


def test_a_file_failing_its_check_is_not_written(tmp_path, monkeypatch):
    import mobilenet.export as ex

    path = tmp_path / "m.onnx"
    path.write_bytes(b"the previous file")
    monkeypatch.setattr(ex, "FP32_TOLERANCE", -1.0)  # no runtime can meet this
    with pytest.raises(ExportError, match="failed its check.*nothing was written"):
        export_model(settled("mobilenet_v1_025"), "onnx", path, example=torch.randn(2, 3, RES, RES))
    assert path.read_bytes() == b"the previous file"
    assert leftovers(tmp_path) == ["m.onnx"]


def test_load_artifact_rejects_other_files(tmp_path):
    bad = tmp_path / "notes.onnx"
    bad.write_text("hello")
    with pytest.raises(ExportError, match="not an ONNX, ExecuTorch"):
        load_artifact(bad)
    with pytest.raises(ExportError, match="no such file"):
        load_artifact(tmp_path / "missing.pte")


def test_cli_export_json_and_errors(tmp_path, capsys):
    out = tmp_path / "v1.ts"
    assert main(["export", "--model", "mobilenet_v1_025", "--format", "torchscript", "--resolution", "64",
                 "-o", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] and report["bytes"] == out.stat().st_size and report["format"] == "torchscript"
    assert {"max_abs_diff", "export_s", "verify_s", "runtime_ms"} <= set(report)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["export", "--model", "mobilenet_v1_025", "--format", "onnx", "--int8", "--calib", str(empty),
                 "-o", str(tmp_path / "q.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no image files" in err and str(empty) in err
    with pytest.raises(SystemExit):
        main(["export", "--model", "mobilenet_v1_025", "--format", "coreml", "-o", str(tmp_path / "x")])
    assert "invalid choice: 'coreml'" in capsys.readouterr().err
    assert main(["export", "--model", "mobilenet_v1_025", "--format", "torchscript", "--int8", "--calib",
                 str(empty), "-o", str(tmp_path / "q.ts")]) == 2
    assert "int8 TorchScript is not supported" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "v1.ts"]


@pytest.mark.slow
@pytest.mark.parametrize("name", mobilenet.list_models(task="classification"))
def test_every_registry_model_exports_to_every_format(name, tmp_path):
    model = settled(name)
    for fmt in [f for f in FORMATS if runtimes.get(f).writable()]:
        path = tmp_path / f"m{runtimes.get(fmt).suffix}"
        report = export_model(model, fmt, path, example=torch.randn(3, 3, RES, RES))
        assert report.passed and report.max_abs_diff <= 1e-4 * report.logit_scale, (fmt, report)


def test_eval_runs_exported_file_like_the_weights(tmp_path, capsys):
    """`mobilenet eval` takes an exported file and scores it as the weights it came from."""
    from PIL import Image

    from mobilenet.images import Preprocess
    from mobilenet.weights import save_weights

    rng = torch.Generator().manual_seed(0)
    for cls in ("a", "b"):
        for i in range(6):
            folder = tmp_path / "data" / "val" / cls
            folder.mkdir(parents=True, exist_ok=True)
            pixels = (torch.rand(40, 40, 3, generator=rng) * 255).to(torch.uint8).numpy()
            Image.fromarray(pixels).save(folder / f"{i}.png")
            (tmp_path / "data" / "train" / cls).mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(tmp_path / "data" / "train" / cls / f"{i}.png")
    weights = save_weights(settled("mobilenet_v3_small_050", num_classes=2), tmp_path / "w.safetensors",
                           preprocess=Preprocess(resolution=RES), labels=["a", "b"])
    assert main(["export", "--weights", str(weights), "--format", "onnx", "-o", str(tmp_path / "w.onnx")]) == 0
    results = []
    for w in (weights, tmp_path / "w.onnx"):
        capsys.readouterr()
        assert main(["eval", "--weights", str(w), "--data", str(tmp_path / "data"), "--json"]) == 0
        results.append(json.loads(capsys.readouterr().out))
    assert results[0]["images"] == results[1]["images"] == 12
    assert results[0]["top1"] == results[1]["top1"]
    assert abs(results[0]["loss"] - results[1]["loss"]) < 1e-3


def test_a_model_left_in_channels_last_exports(tmp_path):
    """Training and evaluation run in channels_last; a model a user trained or scored that
    way exports all the same (ExecuTorch's lowering rejects channels_last weights), and
    evaluate() gives the model back in the layout it came in."""
    from PIL import Image

    from mobilenet.evaluate import evaluate
    from mobilenet.images import Preprocess

    model = settled("mobilenet_v3_small_050")
    pixels = torch.randint(0, 256, (4, 64, 64, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    images = [(Image.fromarray(p.numpy()), i) for i, p in enumerate(pixels)]
    pre = Preprocess(resolution=64, crop_pct=1.0)
    evaluate(model, images, [str(c) for c in range(10)], preprocess=pre)
    assert all(p.is_contiguous() for p in model.parameters())
    model = model.to(memory_format=torch.channels_last)
    report = export_model(model, "executorch", tmp_path / "m.pte", resolution=64)
    assert report.passed
    assert not all(p.is_contiguous() for p in model.parameters() if p.dim() == 4)  # the caller's model untouched
