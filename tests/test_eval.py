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


def test_eval_of_a_run_gives_its_last_validation_row(tmp_path, capsys):
    """Validation during training preprocesses as `mobilenet eval` does (photos larger than
    the training cache's side): one epoch fine-tuning TFLite V1 on a few hymenoptera photos."""
    import csv

    from mobilenet.cli import main
    from mobilenet.train import TrainConfig, train

    weights, source = shared_path("tflite", "mobilenet_v1_0.25_128_quant.tflite"), shared_path("hymenoptera")
    data = tmp_path / "data"
    for split in ("train", "val"):
        for label in ("ants", "bees"):
            (data / split / label).mkdir(parents=True)
            for photo in sorted((source / split / label).glob("*.jpg"))[:5]:
                (data / split / label / photo.name).symlink_to(photo)
    cfg = TrainConfig(pretrained=str(weights), data=str(data), recipe="finetune", epochs=1, batch_size=8, threads=1,
                      output=str(tmp_path), name="run")
    train(cfg, progress=False, explicit_model=False, log=lambda m: None)
    with open(tmp_path / "run" / "metrics.csv", newline="") as f:
        row = list(csv.DictReader(f))[-1]
    assert main(["eval", "--weights", str(tmp_path / "run"), "--data", str(data), "--json", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["images"] == 10
    assert (out["loss"], out["top1"]) == pytest.approx((float(row["val_loss"]), float(row["val_acc"])), abs=1e-6)


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
