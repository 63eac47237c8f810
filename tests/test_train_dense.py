"""`mobilenet train --task detection|segmentation`, then `eval` and `predict` on what it
wrote: a few steps on a handful of real coco128 photos (linked from ../shared/data into
a temporary folder), through the same loop, run folder and resume as the classifiers."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dense_helpers import coco128_slice
from mobilenet.cli import main

SEG = ["--task", "segmentation", "--resolution", "128", "--batch-size", "3", "--threads", "1", "--quiet"]
DET = ["--task", "detection", "--resolution", "320", "--batch-size", "2", "--threads", "1", "--quiet"]


def _rows(run: Path) -> list[dict]:
    with open(run / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return coco128_slice(tmp_path_factory.mktemp("coco128_slice"), n_train=6, n_val=3)


@pytest.fixture(scope="module")
def det_run(data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("det_runs")
    assert main(["train", *DET, "--data", str(data), "--epochs", "1", "--output", str(out), "--name", "det"]) == 0
    return out / "det"


def test_segmentation_trains_resumes_and_records_miou(data, tmp_path, capsys):
    common = [*SEG, "--data", str(data), "--output", str(tmp_path)]
    assert main(["train", *common, "--epochs", "2", "--name", "whole"]) == 0
    out = capsys.readouterr().out
    assert "mIoU" in out and "epoch 2/2" in out
    assert main(["train", *common, "--epochs", "1", "--name", "parts"]) == 0
    assert main(["train", "--resume", str(tmp_path / "parts"), "--epochs", "2", "--quiet"]) == 0
    whole, parts = _rows(tmp_path / "whole"), _rows(tmp_path / "parts")
    assert list(whole[0]) == ["epoch", "step", "lr", "train_loss", "train_acc", "val_loss", "val_miou",
                              "val_pixel_acc", "images_per_s", "elapsed_s"]
    assert len(whole) == len(parts) == 2
    for row in whole:
        assert 0.0 <= float(row["val_miou"]) <= 1.0 and 0.0 <= float(row["val_pixel_acc"]) <= 1.0
        assert math.isfinite(float(row["train_loss"]))
    # resumed after epoch 1: the same batches and augmentations as the uninterrupted run
    assert [r["train_loss"] for r in parts] == [r["train_loss"] for r in whole]
    assert {"weights.safetensors", "config.yaml", "state.pt", "metrics.csv", "curves.png"} <= \
        {p.name for p in (tmp_path / "whole").iterdir()}
    from mobilenet.weights import load_weights

    model = load_weights(tmp_path / "whole" / "weights.safetensors")
    assert model.pretrained_cfg["labels"][15] == "person" and model.num_classes == 21
    # `mobilenet eval` of the run's weights gives its last validation row: one preprocessing
    capsys.readouterr()
    assert main(["eval", "--weights", str(tmp_path / "whole"), "--data", str(data), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert float(whole[-1]["val_pixel_acc"]) > 0.5  # a model that predicts something
    assert (result["miou"], result["pixel_accuracy"]) == pytest.approx(
        (float(whole[-1]["val_miou"]), float(whole[-1]["val_pixel_acc"])), abs=1e-6)


def test_detection_trains_and_records_box_ap(det_run):
    rows = _rows(det_run)
    assert list(rows[0]) == ["epoch", "step", "lr", "train_loss", "val_ap", "val_ap50", "val_ap75", "images_per_s",
                             "elapsed_s"]
    assert len(rows) == 1 and 0.0 <= float(rows[0]["val_ap"]) <= 1.0 and math.isfinite(float(rows[0]["train_loss"]))
    config = (det_run / "config.yaml").read_text()
    assert "task: detection" in config and "model: ssdlite320_mobilenet_v3_small" in config


def test_eval_gives_coco_box_ap_of_a_trained_detector(det_run, data, capsys):
    assert main(["eval", "--weights", str(det_run), "--data", str(data), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["task"] == "detection" and result["images"] == 3
    assert set(result) >= {"AP", "AP50", "AP75", "APs", "APm", "APl"}
    assert all(0.0 <= result[k] <= 1.0 for k in ("AP", "AP50", "AP75"))
    assert result["detections"] > 0
    assert main(["eval", "--weights", str(det_run / "weights.safetensors"), "--data", str(data)]) == 0
    table = capsys.readouterr().out
    assert "AP50" in table and "pycocotools" in table


def test_eval_of_a_torchvision_checkpoint_by_model_name(data, tmp_path, capsys):
    from detection_helpers import torchvision_ssdlite

    torch.manual_seed(0)
    path = tmp_path / "ssdlite_tv.pth"
    torch.save(torchvision_ssdlite().state_dict(), path)
    assert main(["eval", "--model", "ssdlite320_mobilenet_v3_large", "--weights", str(path), "--data", str(data),
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["images"] == 3 and 0.0 <= result["AP"] <= 1.0


def test_eval_of_a_segmentation_model_gives_mean_and_per_class_iou(data, tmp_path, capsys):
    from mobilenet import create_model
    from mobilenet.segmentation import VOC_LABELS
    from mobilenet.weights import save_weights
    from mobilenet.images import Preprocess

    torch.manual_seed(0)
    model = create_model("lraspp_mobilenet_v3_small").eval()
    weights = save_weights(model, tmp_path / "seg.safetensors", labels=list(VOC_LABELS),
                           preprocess=Preprocess(resolution=128, crop_pct=1.0))
    assert main(["eval", "--weights", str(weights), "--data", str(data), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["task"] == "segmentation" and result["images"] == 3 and result["resolution"] == 128
    assert list(result["per_class_iou"])[:2] == ["background", "aeroplane"]
    present = [v for v in result["per_class_iou"].values() if v is not None]
    assert result["miou"] == pytest.approx(sum(present) / len(present))
    assert main(["eval", "--weights", str(weights), "--data", str(data)]) == 0
    assert "per-class IoU" in capsys.readouterr().out


def test_predict_draws_boxes_and_reports_json(det_run, data, tmp_path, capsys):
    image = sorted((data / "images" / "val2017").iterdir())[0]
    before = {p.name for p in image.parent.iterdir()}
    assert main(["predict", "--weights", str(det_run), "--score-min", "0", "--json", str(image)]) == 0
    unasked = json.loads(capsys.readouterr().out)
    assert unasked[0]["drawn"] is None and {p.name for p in image.parent.iterdir()} == before  # nothing written
    out = tmp_path / "drawn"
    assert main(["predict", "--weights", str(det_run), "--score-min", "0", "--out", str(out), "--json", str(image)]) == 0
    result = json.loads(capsys.readouterr().out)[0]
    assert result["detections"] and Path(result["drawn"]) == out / f"{image.stem}_boxes.png"
    drawn = np.asarray(Image.open(result["drawn"]).convert("RGB")).astype(int)
    photo = np.asarray(Image.open(image).convert("RGB")).astype(int)
    assert drawn.shape == photo.shape
    x1, y1, x2, y2 = (int(v) for v in result["detections"][0]["box"])
    h, w = photo.shape[:2]
    edge = drawn[min(y1, h - 1), max(0, x1):min(x2 + 1, w)] - photo[min(y1, h - 1), max(0, x1):min(x2 + 1, w)]
    assert np.abs(edge).sum(axis=-1).mean() > 20  # the box's top edge is painted over
    assert main(["predict", "--weights", str(det_run), "--out", str(out), str(image)]) == 2  # never overwrites


def test_predict_overlays_the_coloured_mask(data, tmp_path, capsys):
    from mobilenet import create_model
    from mobilenet.images import Preprocess
    from mobilenet.segmentation import VOC_LABELS
    from mobilenet.weights import save_weights

    torch.manual_seed(1)
    model = create_model("lraspp_mobilenet_v3_small").eval()
    weights = save_weights(model, tmp_path / "seg.safetensors", labels=list(VOC_LABELS),
                           preprocess=Preprocess(resolution=128, crop_pct=1.0))
    image = sorted((data / "images" / "val2017").iterdir())[0]
    out = tmp_path / "masks"
    assert main(["predict", "--weights", str(weights), "--out", str(out), "--json", str(image)]) == 0
    result = json.loads(capsys.readouterr().out)[0]
    assert sum(result["classes"].values()) == pytest.approx(1.0, abs=1e-3)
    drawn = np.asarray(Image.open(result["drawn"]).convert("RGB")).astype(int)
    photo = np.asarray(Image.open(image).convert("RGB")).astype(int)
    assert drawn.shape == photo.shape
    changed = np.abs(drawn - photo).sum(-1) > 0
    share_painted = 1.0 - result["classes"].get("__background__", 0.0)
    assert changed.mean() == pytest.approx(share_painted, abs=0.02)  # exactly the non-background pixels


@pytest.mark.parametrize("argv, message", [
    (["--task", "detection", "--model", "lraspp"], "is a segmentation model"),
    (["--task", "detection", "--recipe", "paper"], "has no detection version"),
    (["--backbone", "mobilenet_v2_100"], "--task detection or segmentation"),
    (["--task", "segmentation", "--model", "lraspp_mobilenet_v3_small", "--backbone", "mobilenet_v2_100"],
     "fixes its backbone"),
])
def test_dense_options_are_checked_in_one_line(argv, message, data, tmp_path, capsys):
    assert main(["train", *argv, "--data", str(data), "--output", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())  # a failed start leaves no run folder


@pytest.mark.slow  # two processes starting torch: about a minute on the loaded 2-core machine
def test_torchrun_trains_segmentation_on_two_processes(data, tmp_path):
    torchrun = shutil.which("torchrun")
    if torchrun is None:
        pytest.skip("torchrun is not on PATH")
    env = dict(os.environ, MOBILENET_NO_REEXEC="1", OMP_NUM_THREADS="1")
    cmd = [torchrun, "--standalone", "--nproc_per_node=2", "-m", "mobilenet", "train", *SEG, "--batch-size", "4",
           "--data", str(data), "--epochs", "1", "--output", str(tmp_path), "--name", "two"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-3000:]
    assert "on 2 processes" in done.stdout and done.stdout.count("mobilenet train: done") == 1
    rows = _rows(tmp_path / "two")
    assert len(rows) == 1 and 0.0 <= float(rows[0]["val_miou"]) <= 1.0


def test_batchnorm_calibration_keeps_the_function_and_makes_train_mode_agree():
    from torch import nn

    from mobilenet.train.dense import calibrate_batchnorm

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU6(), nn.Conv2d(8, 8, 1), nn.BatchNorm2d(8))
    with torch.no_grad():  # folded weights, as a TFLite file gives them: statistics 0 / 1, not the data's
        for m in net:
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 2)
                m.bias.uniform_(-3, 3)
    x = torch.randn(16, 3, 12, 12) * 4 + 2
    net.eval()
    before = net(x).detach()
    net.train()
    assert (net(x) - before).abs().max() > 1.0  # train mode computes something else
    for m in net:  # that forward moved the statistics: back to the folded 0 / 1
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
    net.eval()
    before = net(x).detach()
    assert calibrate_batchnorm(net, [m for m in net if isinstance(m, nn.BatchNorm2d)], lambda b: net(b[0]),
                               [(x[:8],), (x[8:],)]) == 16
    net.eval()
    torch.testing.assert_close(net(x), before, atol=1e-4, rtol=1e-4)
    net.train()
    torch.testing.assert_close(net(x), before, atol=1e-3, rtol=1e-3)  # batch statistics = the measured ones


def test_freeze_backbone_keeps_the_pretrained_weights_then_lets_them_train(data, tmp_path, capsys):
    pytest.importorskip("mobilenet.weights.tflite")
    from conftest import shared_path
    from mobilenet.detection.ssdlite import pretrained_features
    from mobilenet.weights import load_weights

    tflite = shared_path("tflite", "mobilenet_v2_1.0_224_quant.tflite")
    common = [*SEG, "--data", str(data), "--output", str(tmp_path), "--model", "lraspp", "--backbone",
              "mobilenet_v2_100", "--pretrained-backbone", str(tflite), "--freeze-backbone", "1", "--lr", "0.01"]
    assert main(["train", *common, "--epochs", "1", "--name", "frozen"]) == 0
    convs = {k: v for k, v in pretrained_features("mobilenet_v2_100", tflite).state_dict().items() if v.dim() == 4}
    frozen = load_weights(tmp_path / "frozen" / "weights.safetensors")
    after_frozen = {k: v.clone() for k, v in frozen.backbone.state_dict().items() if k in convs}
    assert len(after_frozen) == len(convs) > 30
    for key, value in convs.items():  # epoch 1: not one backbone conv weight moved
        torch.testing.assert_close(after_frozen[key], value, rtol=0, atol=0, msg=key)
    assert main(["train", "--resume", str(tmp_path / "frozen"), "--epochs", "2", "--quiet"]) == 0
    thawed = load_weights(tmp_path / "frozen" / "weights.safetensors").backbone.state_dict()
    assert sum(not torch.equal(thawed[k], convs[k]) for k in convs) > len(convs) // 2  # epoch 2: they train


def test_freeze_backbone_is_refused_for_a_classifier(tmp_path, capsys):
    assert main(["train", "--freeze-backbone", "2", "--output", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--freeze-backbone" in err and "detection or segmentation" in err and len(err.strip().splitlines()) == 1
