"""mobilenet eval: accuracy, per-class accuracy, confusion-matrix PNG; ImageNet-style
flat folders labelled from file names, with a "background" output first."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

import mobilenet
from conftest import shared_path
from mobilenet.evaluate import evaluate, filename_items, output_offset
from mobilenet.images import Preprocess
from mobilenet.weights.store import save_weights
from train_helpers import make_folder, tiny_config


def test_train_then_eval_cli(tmp_path):
    from mobilenet.train import train

    data = make_folder(tmp_path / "data", n=10)
    train(tiny_config(data, tmp_path, "run", epochs=1), progress=False)
    run = tmp_path / "run"
    for name in ("weights.safetensors", "state.pt", "metrics.csv", "curves.png", "config.yaml"):
        assert (run / name).stat().st_size > 0, name
    proc = subprocess.run([sys.executable, "-m", "mobilenet", "eval", "--weights", str(run), "--data", str(data),
                           "--json", "--val-split", "0.25"], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, MOBILENET_NO_REEXEC="1"))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["images"] == 4 and 0 <= out["top1"] <= 1 and out["top5"] == 1.0
    assert [r["class"] for r in out["per_class"]] == ["blue", "red"]
    assert open(out["confusion_png"], "rb").read(4) == b"\x89PNG"


def test_background_offset_and_filename_labels(tmp_path):
    from PIL import Image

    for name in ("n02_b.png", "n01_a.png", "n03_c.png", "n01_a2.png"):
        Image.new("RGB", (8, 8), (10, 20, 30)).save(tmp_path / name)
    items, classes = filename_items(tmp_path)
    assert classes == ["n01", "n02", "n03"]
    assert [label for _, label in items] == [0, 0, 1, 2]
    assert output_offset(4, 3, ["background", "a", "b", "c"]) == 1
    assert output_offset(3, 3, None) == 0
    with pytest.raises(ValueError, match="outputs but the data has"):
        output_offset(10, 3, None)
    model = mobilenet.create_model("mobilenet_v1_025", num_classes=4)
    with torch.no_grad():  # always answer output 2 = class n02 after the background
        model.classifier.bias.copy_(torch.tensor([0.0, 0.0, 100.0, 0.0]))
        model.classifier.weight.zero_()
    save_weights(model, tmp_path / "w.safetensors", labels=["background", "a", "b", "c"])
    model = mobilenet.weights.load_weights(tmp_path / "w.safetensors")
    result = evaluate(model, items, classes, preprocess=Preprocess(resolution=32))
    assert result.offset == 1 and result.top1 == pytest.approx(0.25) and result.per_class[1]["top1"] == 1.0


@pytest.mark.slow
@pytest.mark.parametrize("name, minimum", [("mobilenet_v2_1.0_224_quant.tflite", 0.83),
                                           ("mobilenet_v1_0.25_128_quant.tflite", 0.40)])
def test_tflite_on_imagenet_sample(name, minimum):
    """The figures of tests/test_tflite.py (the weights issue), through mobilenet eval's path."""
    tflite = pytest.importorskip("mobilenet.weights.tflite")
    path = shared_path("tflite", name)
    model = tflite.load_tflite(path)[0]
    items, classes = filename_items(shared_path("imagenet-sample"))
    pre = Preprocess.from_dict(model.pretrained_cfg["preprocess"])
    result = evaluate(model, items, classes, preprocess=pre)
    assert result.offset == 1 and len(classes) == 1000
    assert result.top1 >= minimum
