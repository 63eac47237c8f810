"""A diverged run is not a success: a non-finite loss stops it with an error naming
the last good state, which stays on disk; weights holding NaN or inf are refused
when loaded; JSON output never holds NaN or Infinity."""

from __future__ import annotations

import json

import pytest
import torch

import mobilenet
from mobilenet.cli import main
from mobilenet.train import Trainer
from mobilenet.train.checkpoint import load_state
from mobilenet.weights.store import WeightsError, load_weights, save_weights

from train_helpers import make_folder, tiny_config


def _strict_json(text: str):
    def refuse(constant):
        raise AssertionError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_divergence_stops_the_run_and_keeps_the_last_good_state(tmp_path):
    data = make_folder(tmp_path / "data", n=12)

    def poison(trainer, pos):  # what an exploding update does to the weights
        if pos.step == 3:
            with torch.no_grad():
                trainer.model.classifier.weight.fill_(float("nan"))

    cfg = tiny_config(data, tmp_path, "nan", save_every=2, epochs=3)
    with pytest.raises(Exception, match="diverged") as exc:
        Trainer(cfg, callbacks=[poison], progress=False).run()
    msg = str(exc.value)
    run = tmp_path / "nan"
    assert str(run / "state.pt") in msg and "step 2" in msg
    state = load_state(run / "state.pt")
    assert state["step"] == 2 and all(torch.isfinite(t).all() for t in state["model"].values() if t.is_floating_point())
    assert not (run / "weights.safetensors").exists()


def test_cli_lr_that_explodes_exits_nonzero_and_writes_no_weights(tmp_path, capsys):
    data = make_folder(tmp_path / "data", n=6)
    rc = main(["train", "--data", str(data), "--output", str(tmp_path / "runs"), "--name", "boom", "--lr", "1e30",
               "--model", "mobilenet_v2_035", "--resolution", "32", "--epochs", "1", "--batch-size", "4",
               "--threads", "1", "--quiet"])
    err = capsys.readouterr().err
    assert rc != 0 and "diverged" in err and "--lr" in err and len(err.strip().splitlines()) == 1, err
    assert not list((tmp_path / "runs").glob("*/weights.safetensors"))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_on_load(tmp_path, capsys, bad):
    from safetensors import safe_open
    from safetensors.torch import save_file

    model = mobilenet.create_model("mobilenet_v2_035", num_classes=3)
    ours = save_weights(model, tmp_path / "good.safetensors")
    assert load_weights(ours) is not None
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["classifier.weight"][1, 2] = bad
    with safe_open(str(ours), framework="pt") as f:  # keep our metadata, poison one tensor
        meta = f.metadata()
    save_file(state, str(tmp_path / "bad.safetensors"), metadata=meta)
    torch.save(state, tmp_path / "bad.pth")
    for path in (tmp_path / "bad.safetensors", tmp_path / "bad.pth"):
        with pytest.raises(WeightsError, match="classifier.weight.*(NaN|inf)"):
            mobilenet.create_model("mobilenet_v2_035", pretrained=path)
    with pytest.raises(WeightsError, match=r"bad.safetensors.*classifier.weight"):
        load_weights(tmp_path / "bad.safetensors")
    img = make_folder(tmp_path / "img", n=1) / "red" / "000.png"
    rc = main(["predict", "--weights", str(tmp_path / "bad.safetensors"), str(img)])
    err = capsys.readouterr().err
    assert rc == 2 and "classifier.weight" in err and "Traceback" not in err


def test_tflite_whose_weights_dequantize_to_nan_is_refused(tmp_path, capsys):
    tflite = pytest.importorskip("tflite")
    import struct

    from conftest import shared_path
    from mobilenet.weights.tflite import load_tflite

    data = shared_path("tflite", "mobilenet_v1_0.25_128_quant.tflite").read_bytes()
    graph = tflite.Model.GetRootAsModel(data, 0).Subgraphs(0)
    scale = graph.Tensors(34).Quantization().ScaleAsNumpy()[0]  # Conv2d_1_pointwise's weights
    packed = struct.pack("<f", float(scale))
    assert data.count(packed) == 1
    bad = tmp_path / "nan.tflite"
    bad.write_bytes(data.replace(packed, struct.pack("<f", float("nan"))))
    with pytest.raises(WeightsError, match=r"nan.tflite: tensor blocks.0.pw.conv.weight holds 128 NaN"):
        load_tflite(bad)
    folder = make_folder(tmp_path / "img", n=2)
    rc = main(["eval", "--weights", str(bad), "--data", str(folder), "--confusion", str(tmp_path / "c.png")])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]  # progress lines may come first
    assert rc == 2 and len(errors) == 1 and "nan.tflite" in errors[0] and "Traceback" not in err, err


def test_json_output_is_always_json(capsys):
    from mobilenet.commands import print_json

    import numpy as np

    print_json({"loss": float("nan"), "top": [float("inf"), 0.5], "deep": {"x": -float("inf"), "n": 3},
                "np": [np.float32("nan"), np.float32(0.25), np.int64(7)]})
    parsed = _strict_json(capsys.readouterr().out)
    assert parsed == {"loss": None, "top": [None, 0.5], "deep": {"x": None, "n": 3}, "np": [None, 0.25, 7]}
