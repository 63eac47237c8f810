"""The runtime layer: one module per runtime, found by the registry; export, eval,
predict and bench learn the runtimes from it."""

from __future__ import annotations

import sys

import pytest
import torch

from model_helpers import settled
from mobilenet import runtimes
from mobilenet.bench import routes
from mobilenet.export import ExportError, export_model, load_artifact

RUNTIME_MODULE = '''
from mobilenet.runtimes.torchscript import TorchScriptRuntime


class Renamed(TorchScriptRuntime):
    name = engine = "renamed"
    suffix = ".ren"
    aliases = ()
    order = 99
    benchable = True
    description = "renamed TorchScript"

    def owns(self, path):
        return path.suffix == ".ren"


RUNTIME = Renamed()
'''


def test_every_runtime_says_what_it_is():
    found = runtimes.all_runtimes()
    names = [r.name for r in found]
    assert len(set(names)) == len(names) and {"onnx", "executorch", "torchscript", "openvino", "pt2"} <= set(names)
    assert "pt2" not in runtimes.formats() and "torchscript" not in runtimes.engines()
    for r in found:
        assert r.suffix.startswith(".") and r.description and "fp32" in r.precisions
        assert runtimes.get(r.name) is r and runtimes.get(r.engine) is r
    assert routes.RUNTIMES[:3] == ("eager", "channels_last", "compile")
    assert set(routes.RUNTIMES[3:]) == set(runtimes.engines()) and set(routes.LAYOUTS) == set(routes.RUNTIMES)
    with pytest.raises(ExportError, match="unknown format 'nope'"):
        runtimes.get("nope")


def test_adding_a_runtime_is_adding_a_file(tmp_path, monkeypatch):
    (tmp_path / "renamed.py").write_text(RUNTIME_MODULE)
    monkeypatch.setattr(runtimes, "__path__", [*runtimes.__path__, str(tmp_path)])
    runtimes.all_runtimes.cache_clear()
    try:
        assert runtimes.formats()[-1] == "renamed" and "renamed" in runtimes.engines()
        model = settled("mobilenet_v1_025")
        path = tmp_path / "m.ren"
        report = export_model(model, "renamed", path, example=torch.randn(2, 3, 64, 64))
        assert report.passed and report.format == "renamed"
        assert runtimes.owner(path).name == "renamed" and load_artifact(path)(torch.randn(1, 3, 64, 64)).shape == (1, 10)
    finally:
        monkeypatch.undo()
        sys.modules.pop("mobilenet.runtimes.renamed", None)
        runtimes.all_runtimes.cache_clear()
    assert "renamed" not in runtimes.formats()


def test_a_missing_extra_is_one_line_naming_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # what an import of an absent package meets
    with pytest.raises(ExportError, match=r"^the onnx runtime needs onnxruntime, which is not installed: "
                                          r"pip install 'mobilenet\[export\]'$"):
        export_model(settled("mobilenet_v1_025"), "onnx", tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_owner_tells_exported_files_from_weights(tmp_path):
    torch.save({"w": torch.zeros(2)}, tmp_path / "checkpoint.pt")  # a checkpoint, not TorchScript
    assert runtimes.owner(tmp_path / "checkpoint.pt") is None
    assert runtimes.owner(tmp_path / "w.safetensors") is None
    assert runtimes.owner(tmp_path / "m.xml").name == "openvino" and runtimes.owner(tmp_path / "m.onnx").name == "onnx"


def test_a_file_exported_at_another_resolution_says_so_and_refuses_other_sizes(tmp_path):
    """`export --resolution 32` makes a file for 32 px images: its preprocessing says 32 px
    (so eval/predict feed it 32 px), and ExecuTorch's static input refuses a 224 px batch with
    one line naming the file, not the runtime's bare error code 0x10."""
    pytest.importorskip("executorch")
    model = settled("mobilenet_v1_025", num_classes=3)
    path = tmp_path / "m.pte"
    export_model(model, "executorch", path, resolution=32)
    art = load_artifact(path)
    assert art.preprocess.resolution == 32 and art.metadata["resolution"] == 32
    assert art(torch.randn(2, 3, 32, 32)).shape == (2, 3)
    with pytest.raises(ExportError, match=r"m\.pte: takes images of 3x32x32 .*got 3x224x224"):
        art(torch.randn(2, 3, 224, 224))
