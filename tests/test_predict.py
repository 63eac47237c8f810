"""`mobilenet predict` and `mobilenet import-tflite`: every image mode, clear
errors for bad files, and Google's V2 weights naming real photos."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import shared_path
from mobilenet import create_model
from mobilenet.cli import main
from mobilenet.images import Preprocess, imagenet_labels
from mobilenet.predict import classify
from mobilenet.weights import save_weights, to_torchvision
from mobilenet.weights import hub

LABELS = [f"thing {i}" for i in range(10)]


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    model = create_model("mobilenet_v3_small_050", num_classes=10).eval()
    path = tmp_path_factory.mktemp("w") / "small.safetensors"
    save_weights(model, path, preprocess=Preprocess(resolution=64), labels=LABELS)
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """The same picture in every mode a loader must cope with."""
    folder = tmp_path_factory.mktemp("img")
    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 256, (70, 90, 3), dtype=np.uint8))
    made = {
        "rgb.jpg": rgb,
        "gray.png": rgb.convert("L"),
        "rgba.png": rgb.convert("RGBA"),
        "palette.gif": rgb.convert("P"),
        "cmyk.jpg": rgb.convert("CMYK"),
        "gray16.png": Image.fromarray(np.asarray(rgb.convert("L"), dtype=np.uint16) * 257),
    }
    paths = []
    for name, img in made.items():
        img.save(folder / name)
        paths.append(folder / name)
    assert Image.open(folder / "gray16.png").mode.startswith("I")
    assert Image.open(folder / "cmyk.jpg").mode == "CMYK"
    return paths


def test_predict_every_image_mode_json(weights, images, capsys):
    assert main(["predict", "--weights", str(weights), *map(str, images), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["image"] for r in out] == [str(p) for p in images]
    for r in out:
        probs = [g["probability"] for g in r["top"]]
        assert len(probs) == 5 and probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
        assert all(g["label"] == LABELS[g["index"]] for g in r["top"])


def test_predict_table(weights, images, capsys):
    assert main(["predict", "--weights", str(weights), str(images[0]), "--top", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["image", "rank", "probability", "index", "label"]
    assert len(lines) == 2 + 3 and str(images[0]) in lines[2]


def test_not_an_image_is_one_line_naming_it(weights, images, tmp_path, capsys):
    bad = tmp_path / "notes.jpg"
    bad.write_text("this is not a picture")
    assert main(["predict", "--weights", str(weights), str(images[0]), str(bad)]) == 0  # skipped, the rest predicted
    captured = capsys.readouterr()
    assert str(images[0]) in captured.out
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and str(bad) in err[0] and "not an image" in err[0]


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--model", "mobilenet_v2_100"], "needs weights"),
        ([], "--weights FILE, or --model NAME --pretrained"),
        (["--model", "mobilenet_v2_999", "--pretrained=x"], "unknown model"),
        (["--model", "mobilenet_v1_025", "--pretrained"], "no official weights for mobilenet_v1_025"),
        (["--weights", "missing.safetensors"], "missing.safetensors"),
    ],
)
def test_bad_arguments_are_one_line_errors(argv, words, images, capsys):
    assert main(["predict", *argv, str(images[0])]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0]


def test_foreign_checkpoint_model_found_from_shapes(tmp_path, images, capsys):
    model = create_model("mobilenet_v3_small_100").eval()
    path = tmp_path / "tv.pth"
    torch.save(to_torchvision(model), path)
    assert main(["predict", "--weights", str(path), str(images[1]), "--json"]) == 0
    top = json.loads(capsys.readouterr().out)[0]["top"]
    expected = classify(model, [images[1]])[0].top  # default preprocessing
    assert [g["index"] for g in top] == [g.index for g in expected]
    assert top[0]["label"] == imagenet_labels()[expected[0].index]  # 1000 classes: ImageNet's names


def test_pretrained_tag_through_the_download_path(tmp_path, images, monkeypatch, capsys):
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))  # a private cache, restored after
    model = create_model("mobilenet_v3_small_100").eval()
    served = tmp_path / "served.pth"
    torch.save(to_torchvision(model), served)
    entry = hub.WeightTag("mobilenet_v3_small_100", "test_in1k", "torchvision", served.as_uri(),
                          hub.sha256_of(served), "test", None, Preprocess(), "test.test_in1k")
    monkeypatch.setitem(hub.TAGS, entry.name, entry)
    assert main(["predict", "--model", "mobilenet_v3_small_100", "--pretrained=test_in1k", str(images[0]),
                 "--json"]) == 0
    top = json.loads(capsys.readouterr().out)[0]["top"]
    assert [g["index"] for g in top] == [g.index for g in classify(model, [images[0]])[0].top]
    assert (tmp_path / "hub" / "checkpoints" / "served.pth").is_file()


# -- import-tflite -----------------------------------------------------------------------
def test_import_tflite_bad_input_leaves_no_output(tmp_path, capsys):
    pytest.importorskip("mobilenet.weights.tflite")
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"\x00" * 64)
    out = tmp_path / "out.safetensors"
    assert main(["import-tflite", str(junk), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "junk.tflite" in err[0]
    assert main(["import-tflite", str(junk), "-o", str(tmp_path / "out.pth")]) == 2
    assert "must end in .safetensors" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [junk]


@pytest.fixture(scope="module")
def imported_v2(tmp_path_factory):
    pytest.importorskip("mobilenet.weights.tflite")
    source = shared_path("tflite", "mobilenet_v2_1.0_224_quant.tflite")
    out = tmp_path_factory.mktemp("tflite") / "v2.safetensors"
    assert main(["import-tflite", str(source), "-o", str(out), "--json"]) == 0
    return out


def test_imported_v2_names_the_photos(imported_v2, capsys):
    capsys.readouterr()
    photos = shared_path("photos")
    argv = ["predict", "--weights", str(imported_v2), str(photos / "cat.bmp"), str(photos / "parrot.jpg"), "--json"]
    assert main(argv) == 0
    cat, parrot = json.loads(capsys.readouterr().out)
    # 1001 outputs, background first: ImageNet's cats (tabby .. Egyptian cat, 281-285) are 282-286
    assert cat["top"][0]["index"] in range(282, 287), cat["top"][0]
    assert "cat" in cat["top"][0]["label"]
    assert parrot["top"][0]["label"] == "macaw" and parrot["top"][0]["index"] == 89


def test_imported_file_keeps_tflite_preprocessing_and_labels(imported_v2):
    from mobilenet.weights import load_weights

    model = load_weights(imported_v2)
    cfg = model.pretrained_cfg
    assert cfg["preprocess"]["crop_mode"] == "crop_resize" and cfg["preprocess"]["crop_pct"] == 0.875
    # (x - 128) / 128 on 0..255 pixels is mean = std = 128/255 on 0..1
    assert cfg["preprocess"]["mean"] == pytest.approx([128 / 255] * 3)
    assert cfg["preprocess"]["std"] == pytest.approx([128 / 255] * 3)
    assert len(cfg["labels"]) == 1001 and cfg["labels"][0] == "background"
    assert model.arch_args["padding"] == "same" and model.num_classes == 1001
