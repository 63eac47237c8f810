"""LiteRT / TFLite export (fp32, int8 with float ends), checked in ai-edge-litert with
XNNPACK, carrying our metadata, read back by our TFLite reader, and run by eval,
predict and bench through the runtime layer.

Writing needs litert-torch (the [litert] extra, ~850 MB, not part of [test]): those
tests skip with that reason where it is missing; running and reading need [tflite].
"""

from __future__ import annotations

import importlib.util
import sys

import pytest
import torch

pytest.importorskip("ai_edge_litert")

from conftest import shared_path  # noqa: E402
from model_helpers import assert_file_runs_like_its_weights, settled  # noqa: E402
from mobilenet import runtimes  # noqa: E402
from mobilenet.cli import main  # noqa: E402
from mobilenet.export import ExportError, export_model, load_artifact  # noqa: E402
from mobilenet.images import Preprocess, find_images, load_image  # noqa: E402
from mobilenet.runtimes.litert import read_metadata  # noqa: E402

RES = 64
needs_converter = pytest.mark.skipif(
    importlib.util.find_spec("litert_torch") is None,
    reason="litert-torch is not installed: writing .tflite needs pip install 'mobilenet[litert]' (~850 MB, "
    "not part of [test])")


def interpreter(path):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path))
    return it, it.get_input_details()[0], it.get_output_details()[0]


def tflite_support_metadata(path) -> dict:
    from ai_edge_litert.schema_py_generated import Model

    from mobilenet.runtimes._tflite_metadata import NAME, parse

    data = open(path, "rb").read()
    model = Model.GetRootAs(data, 0)
    entries = [model.Metadata(i) for i in range(model.MetadataLength())]
    entry, = [e for e in entries if e.Name() == NAME.encode()]
    return parse(model.Buffers(entry.Buffer()).DataAsNumpy().tobytes())


@pytest.mark.parametrize("name", ["mobilenet_v1_0.25_128_quant.tflite", "mobilenet_v2_1.0_224_quant.tflite"])
def test_tflite_support_metadata_reads_and_rewrites_googles_bytes(name):
    """Google's files carry the TFLite Support metadata (written by Google's tooling) and
    their labels zipped onto the model: our schema tables read it as Google's docs say
    it is, and write the same dict back to the same bytes, so our field order is the
    schema's."""
    from ai_edge_litert.schema_py_generated import Model

    from mobilenet.runtimes._tflite_metadata import NAME, associated_files, build

    path = shared_path("tflite", name)
    data = path.read_bytes()
    model = Model.GetRootAs(data, 0)
    entry, = [model.Metadata(i) for i in range(model.MetadataLength()) if model.Metadata(i).Name() == NAME.encode()]
    raw = model.Buffers(entry.Buffer()).DataAsNumpy().tobytes()
    meta = tflite_support_metadata(path)
    assert meta["name"] == "ImageClassifier" and meta["min_parser_version"] == "1.0.0"
    image, = meta["subgraph_metadata"][0]["input_tensor_metadata"]
    assert image["content"]["content_properties"] == ("ImageProperties", {"color_space": "RGB"})
    assert image["process_units"] == [{"options": ("NormalizationOptions", {"mean": [127.5], "std": [127.5]})}]
    assert image["stats"] == {"max": [255.0], "min": [0.0]}
    labels, = meta["subgraph_metadata"][0]["output_tensor_metadata"][0]["associated_files"]
    assert labels["type"] == "TENSOR_AXIS_LABELS"
    files = associated_files(data)
    lines = files[labels["name"]].decode().splitlines()
    assert list(files) == [labels["name"]] and len(lines) == 1001 and lines[:2] == ["background", "tench, Tinca tinca"]
    assert build(meta) == raw


@needs_converter
def test_int8_tflite_has_float_ends_and_matches_the_reference_kernels(tmp_path):
    """Google's V1-0.25 imported and written again, fp32 and int8 (calibrated on 48 real
    images). fp32: the same top-1 as the imported model, with its labels and
    preprocessing. int8: the converter makes a PT2E int8 graph's input and output int8;
    ours take and give float through a QUANTIZE first and a DEQUANTIZE last, and
    XNNPACK's result is checked against TFLite's reference kernels on the same file."""
    from mobilenet.weights.tflite import load_tflite

    model, info = load_tflite(shared_path("tflite", "mobilenet_v1_0.25_128_quant.tflite"))
    t = info["preprocess"].transform()
    x = torch.stack([t(load_image(p)) for p in find_images(shared_path("imagenet-sample"))[::18][:56]])
    calib, test = [x[:24], x[24:48]], x[48:]
    fp32 = export_model(model, "tflite", tmp_path / "f.tflite", example=test)
    report = export_model(model, "tflite", tmp_path / "q.tflite", example=test, int8=True, calib=calib)
    artifact = load_artifact(tmp_path / "f.tflite")
    assert artifact.num_classes == 1001 and len(artifact.labels) == 1001 and artifact.preprocess == info["preprocess"]
    with torch.no_grad():
        assert torch.equal(artifact(x).argmax(1), model(x).argmax(1))  # round trip: same top-1, 56 images
    assert report.passed and report.int8 and report.backend == "litert"
    assert "reference kernels" in report.reference and report.max_abs_diff <= report.tolerance
    assert report.bytes < 0.45 * fp32.bytes, (report.bytes, fp32.bytes)
    it, inp, out = interpreter(tmp_path / "q.tflite")
    assert inp["dtype"].__name__ == "float32" and out["dtype"].__name__ == "float32"
    ops = it._get_ops_details()
    assert ops[0]["op_name"] == "QUANTIZE" and ops[-1]["op_name"] == "DEQUANTIZE"
    tensors = {t["index"]: t for t in it.get_tensor_details()}
    convs = [op for op in ops if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    assert len(convs) == 27 and all(tensors[op["inputs"][1]]["dtype"].__name__ == "int8" for op in convs)
    artifact = load_artifact(tmp_path / "q.tflite")
    assert artifact.int8 and artifact.metadata["backend"] == "litert"
    with torch.no_grad():
        agree = (artifact(x).argmax(1) == model(x).argmax(1)).float().mean()
    assert agree >= 0.75, agree


@needs_converter
def test_metadata_eval_and_predict_round_trip(tmp_path, capsys):
    """`mobilenet export --format tflite` of weights with labels and their own
    preprocessing: the file takes [1, H, W, 3] float as TFLite image models do, runs
    other batch sizes like eager, carries the labels and preprocessing, our TFLite
    reader imports it back (same weights, same metadata), and eval and predict run it
    in LiteRT like the weights."""
    from PIL import Image

    from mobilenet.weights import save_weights
    from mobilenet.weights.tflite import load_tflite

    rng = torch.Generator().manual_seed(0)
    for cls in ("ant", "bee"):
        folder = tmp_path / "data" / "val" / cls
        folder.mkdir(parents=True)
        (tmp_path / "data" / "train" / cls).mkdir(parents=True)
        for i in range(6):
            pixels = (torch.rand(40, 40, 3, generator=rng) * 255).to(torch.uint8).numpy()
            Image.fromarray(pixels).save(folder / f"{i}.png")
            Image.fromarray(pixels).save(tmp_path / "data" / "train" / cls / f"{i}.png")
    pre = Preprocess(resolution=RES, mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3), interpolation="bicubic")
    model = settled("mobilenet_v2_050", num_classes=2)
    weights = save_weights(model, tmp_path / "w.safetensors", preprocess=pre, labels=["ant", "bee"])
    out = tmp_path / "w.tflite"
    assert main(["export", "--weights", str(weights), "--format", "tflite", "-o", str(out)]) == 0
    assert "tflite" in capsys.readouterr().out
    meta = read_metadata(out)
    assert meta["labels"] == ["ant", "bee"] and Preprocess.from_dict(meta["preprocess"]) == pre
    assert meta["model_name"] == "mobilenet_v2_050" and meta["export_format"] == "tflite"
    assert runtimes.claims(out)
    support = tflite_support_metadata(out)  # what Android's Task Library reads, as in Google's files
    image, = support["subgraph_metadata"][0]["input_tensor_metadata"]
    assert image["content"]["content_properties"] == ("ImageProperties", {
        "color_space": "RGB", "default_size": {"width": RES, "height": RES}})
    norm, = image["process_units"]
    assert norm["options"][0] == "NormalizationOptions"
    assert norm["options"][1]["mean"] == pytest.approx([102.0, 127.5, 153.0])  # 255 x (0.4, 0.5, 0.6)
    assert norm["options"][1]["std"] == pytest.approx([51.0, 63.75, 76.5])
    logits, = support["subgraph_metadata"][0]["output_tensor_metadata"]
    assert logits["associated_files"] == [{"name": "labels.txt", "description": "one label per output",
                                           "type": "TENSOR_AXIS_LABELS"}]
    from mobilenet.runtimes._tflite_metadata import associated_files
    assert associated_files(out.read_bytes()) == {"labels.txt": b"ant\nbee\n"}
    _, inp, output = interpreter(out)
    assert list(inp["shape"]) == [1, RES, RES, 3] and inp["dtype"].__name__ == "float32"
    assert list(output["shape"]) == [1, 2] and output["dtype"].__name__ == "float32"
    artifact = load_artifact(out)
    assert artifact.format == "tflite" and not artifact.int8 and artifact.num_classes == 2
    for batch in (5, 1, 5):  # the interpreter is resized each time the batch size changes
        x = torch.randn(batch, 3, RES, RES)
        with torch.no_grad():
            want = model(x)
        assert (artifact(x) - want).abs().max() <= 1e-4 * want.abs().max()

    again, info = load_tflite(out)  # our reader: the model, its preprocessing and labels
    assert info["model_name"] == "mobilenet_v2_050" and info["preprocess"] == pre and info["labels"] == ["ant", "bee"]
    x = torch.randn(3, 3, RES, RES)
    with torch.no_grad():
        assert (again(x) - model(x)).abs().max() <= 1e-4 * model(x).abs().max()

    assert_file_runs_like_its_weights(main, capsys, weights, out, tmp_path / "data",
                                      tmp_path / "data" / "val" / "ant" / "0.png")


def test_google_files_are_not_artifacts(tmp_path):
    """Google's .tflite files carry none of our metadata: eval and predict import them
    (the runtime does not claim them), and load_artifact says so in one line."""
    google = shared_path("tflite", "mobilenet_v1_0.25_128_quant.tflite")
    assert read_metadata(google) is None and not runtimes.claims(google)
    with pytest.raises(ExportError, match="not an .* file written by mobilenet"):
        load_artifact(google)
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"\x00" * 4 + b"TFL3" + b"\xff" * 64)
    assert read_metadata(junk) is None and not runtimes.claims(junk)


def test_missing_litert_torch_names_the_extra(tmp_path, monkeypatch, capsys):
    """Without litert-torch, writing a .tflite is one line naming the [litert] extra,
    from the API and the CLI, and nothing is written."""
    monkeypatch.setitem(sys.modules, "litert_torch", None)  # what an import of an absent package meets
    with pytest.raises(ExportError, match=r"pip install 'mobilenet\[litert\]'"):
        export_model(settled("mobilenet_v1_025"), "tflite", tmp_path / "m.tflite")
    assert main(["export", "--model", "mobilenet_v1_025", "--format", "tflite", "-o", str(tmp_path / "m.tflite")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "mobilenet[litert]" in err
    assert list(tmp_path.iterdir()) == []


def _bench(int8: bool):
    from mobilenet.bench import Schedule, benchmark

    report = benchmark(["mobilenet_v3_small_050"], runtimes=["litert"], resolution=32, threads=1, int8=int8,
                       schedule=Schedule(min_runs=2, min_time=0.0, max_time=0.05, warmup_runs=1,
                                         warmup_time=0.0, burst_time=0.0))
    rows = {r.precision: r for r in report.results}
    assert set(rows) == ({"fp32", "int8"} if int8 else {"fp32"})
    for row in rows.values():
        assert row.error is None and row.runs >= 2, row
        assert "mobilenet.export (tflite" in row.note


@needs_converter
def test_bench_runs_litert():
    _bench(int8=False)


@pytest.mark.slow
@needs_converter
def test_bench_runs_litert_int8():
    """An untrained model calibrated on random batches, as bench quantizes for speed."""
    _bench(int8=True)


# -- slow acceptance checks ---------------------------------------------------------------
@pytest.mark.slow
@needs_converter
@pytest.mark.parametrize("name", __import__("mobilenet").list_models(task="classification"))
def test_every_registry_model_exports_to_tflite(name, tmp_path):
    model = settled(name, num_classes=1000, res=96)
    report = export_model(model, "tflite", tmp_path / "m.tflite", example=torch.randn(3, 3, 224, 224))
    assert report.passed and report.max_abs_diff <= 1e-4 * report.logit_scale, report
    assert load_artifact(tmp_path / "m.tflite").metadata["model_name"] == name


@pytest.mark.slow
@needs_converter
def test_tflite_v2_round_trip_and_int8_accuracy(tmp_path):
    """Google's V2 imported and written again: fp32 .tflite gives the imported model's
    top-1 on all of imagenet-sample; int8 (calibrated on every 5th image, 200) meets
    issue #14's bar on the 800 images calibration did not see: top-1 within 1.0 point of
    fp32 and top-1 agreement >= 95% (measured: 86.4% -> 85.75%, 96.75%; docs/deployment.md)."""
    from mobilenet.weights.tflite import load_tflite

    model, info = load_tflite(shared_path("tflite", "mobilenet_v2_1.0_224_quant.tflite"))
    files = find_images(shared_path("imagenet-sample"))
    t = info["preprocess"].transform()
    x = torch.stack([t(load_image(p)) for p in files])
    y = torch.arange(len(files)) + 1  # output 0 is "background"
    calib_idx = torch.arange(0, len(x), 5)
    held = torch.ones(len(x), dtype=torch.bool)
    held[calib_idx] = False
    calib = [x[calib_idx[i : i + 25]] for i in range(0, len(calib_idx), 25)]

    def top1(fn):
        with torch.no_grad():
            return torch.cat([fn(x[i : i + 50]).argmax(1) for i in range(0, len(x), 50)])

    eager = top1(model)
    export_model(model, "tflite", tmp_path / "f.tflite", example=x[1:9])
    export_model(model, "tflite", tmp_path / "q.tflite", example=x[1:9], int8=True, calib=calib)
    fp32, int8 = top1(load_artifact(tmp_path / "f.tflite")), top1(load_artifact(tmp_path / "q.tflite"))
    assert (fp32 == y).sum() == (eager == y).sum() and (fp32 == eager).float().mean() >= 0.998
    acc_fp32 = (eager[held] == y[held]).float().mean().item()
    acc_int8 = (int8[held] == y[held]).float().mean().item()
    agree = (int8[held] == eager[held]).float().mean().item()
    assert acc_int8 >= acc_fp32 - 0.01 and agree >= 0.95, (acc_fp32, acc_int8, agree)


@needs_converter
def test_int8_quantizer_observes_relu6_after_the_clamp():
    """litert-torch's quantizer fuses conv -> ReLU, not conv -> ReLU6 (``aten.relu6``):
    ours observes each such conv after the clamp only, with moving-average ranges."""
    from torchao.quantization.pt2e.observer import MovingAverageMinMaxObserver
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

    from mobilenet import deploy
    from mobilenet.runtimes._litert_quantizer import quantizer

    model = deploy(settled("mobilenet_v2_035"))
    graph = torch.export.export(model, (torch.randn(2, 3, RES, RES),)).module()
    prepared = prepare_pt2e(graph, quantizer())
    relu6 = [n for n in prepared.graph.nodes if n.target == torch.ops.aten.relu6.default]
    assert len(relu6) == 35
    for node in relu6:
        conv = node.args[0]
        assert conv.target == torch.ops.aten.conv2d.default, node  # no observer between them
        observer, = node.users
        assert isinstance(getattr(prepared, observer.target), MovingAverageMinMaxObserver)
