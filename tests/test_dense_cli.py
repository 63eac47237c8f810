"""Dense models through the CLI: `info --weights` lists their tags; exported detector and
segmentation files in eval/predict; segmentation preprocessing as torchvision's."""

from __future__ import annotations

import json

import pytest

from mobilenet.cli import main


def test_info_weights_lists_dense_tags(capsys):
    assert main(["info", "--weights", "--json", "lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large",
                 "ssdlite320_mobilenet_v3_large"]) == 0
    rows = {r["model"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == {"lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large", "ssdlite320_mobilenet_v3_large"}
    assert rows["lraspp_mobilenet_v3_large"]["tag"] == "tv_coco_voc"
    assert "57.9" in rows["lraspp_mobilenet_v3_large"]["metric"]
    assert "no crop" in rows["lraspp_mobilenet_v3_large"]["preprocess"]
    assert rows["ssdlite320_mobilenet_v3_large"]["tag"] == "tv_coco"
    assert "21.3" in rows["ssdlite320_mobilenet_v3_large"]["metric"]
    assert rows["ssdlite320_mobilenet_v3_large"]["url"].endswith("a79551df.pth")
    # the whole listing has them too, and the table shows the metric column
    assert main(["info", "--weights"]) == 0
    table = capsys.readouterr().out
    assert "tv_coco_voc" in table and "ssdlite320_mobilenet_v3_large" in table and "metric" in table


# -- segmentation preprocessing: torchvision's SemanticSegmentation preset -----------------
def test_segmentation_preprocessing_is_torchvisions_preset():
    """Short side to 520, antialiased, no crop: what torchvision's lraspp/deeplabv3 weights
    were evaluated with, equal to its own transform on a real photo."""
    import torch
    from torchvision.models.segmentation import LRASPP_MobileNet_V3_Large_Weights
    from torchvision.transforms.functional import pil_to_tensor

    from conftest import shared_path
    from mobilenet.images import load_image
    from mobilenet.segmentation.data import preprocess_of
    from mobilenet.segmentation.weights import TAGS

    photo = sorted(shared_path("coco128", "images", "val2017").glob("*.jpg"))[0]
    img = load_image(photo)
    theirs = LRASPP_MobileNet_V3_Large_Weights.COCO_WITH_VOC_LABELS_V1.transforms()(pil_to_tensor(img))
    tag = TAGS["lraspp_mobilenet_v3_large.tv_coco_voc"]
    model = torch.nn.Module()
    model.pretrained_cfg = {"preprocess": tag.preprocess.to_dict()}
    ours = preprocess_of(model).transform()(img)
    assert min(ours.shape[-2:]) == 520 and ours.shape[-2] / ours.shape[-1] == pytest.approx(img.height / img.width, abs=0.01)
    # the same pixels (one 8-bit level is 0.017 here): only the normalisation's float rounding differs
    assert ours.shape == theirs.shape and float((ours - theirs).abs().max()) < 1e-6
    # files written before crop_mode="resize" said resize_crop at crop_pct 1.0: read the same way, not cropped
    model.pretrained_cfg = {"preprocess": {**tag.preprocess.to_dict(), "crop_mode": "resize_crop"}}
    assert float((preprocess_of(model).transform()(img) - theirs).abs().max()) < 1e-6


# -- exported dense files in eval and predict -------------------------------------------------
@pytest.fixture(scope="module")
def coco_slice(tmp_path_factory):
    from dense_helpers import coco128_slice

    return coco128_slice(tmp_path_factory.mktemp("coco"), n_train=1, n_val=8)


def test_detector_onnx_file_in_eval_and_predict(coco_slice, tmp_path, capsys):
    """`mobilenet export` of a detector (NMS inside), then `eval --weights FILE`: COCO AP as
    eager's on the same weights; `predict --weights FILE --out` draws the boxes."""
    from detection_helpers import coco_images, starting_model

    from mobilenet.detection.export import export_onnx
    from mobilenet.runtimes import load_artifact
    from mobilenet.train import dense_eval

    model = starting_model("ssdlite320_mobilenet_v3_large", coco_images(8, "train2017"))
    path = tmp_path / "det.onnx"
    export_onnx(model, path)
    file = load_artifact(path).as_module()
    assert file.task == "detection" and file.num_classes == 91
    eager = dense_eval.evaluate_detection(model, str(coco_slice), progress=False)
    assert eager["detections"] > 100  # a detector that finds things, so the comparison means something
    assert main(["eval", "--weights", str(path), "--data", str(coco_slice), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["images"] == eager["images"] == 8
    # float noise between runtimes may swap near-tied candidates at a cut: counts and AP within a hair
    assert abs(got["detections"] - eager["detections"]) <= 0.01 * eager["detections"]
    for key in ("AP", "AP50", "AP75"):
        assert got[key] == pytest.approx(eager[key], abs=1e-3), key
    photo = sorted((coco_slice / "images" / "val2017").glob("*.jpg"))[0]
    assert main(["predict", "--weights", str(path), str(photo), "--out", str(tmp_path), "--score-min", "0.2",
                 "--json"]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    from PIL import Image

    drawn = Image.open(result["drawn"])
    assert drawn.size == Image.open(photo).size and result["detections"]
    from mobilenet.detection.predict import detect

    want = detect(model, [photo], 0.2)[0].detections
    assert len(result["detections"]) == pytest.approx(len(want), abs=2)
    assert result["detections"][0]["label"] == want[0].label
    assert result["detections"][0]["box"] == pytest.approx(list(want[0].box), abs=0.05)


def _settled_segmenter():
    """LR-ASPP on V3-Small with BatchNorm statistics from coco128 photos and spread class
    biases, so its argmax varies over an image as a trained model's does."""
    import torch

    from detection_helpers import coco_images
    from mobilenet import create_model
    from mobilenet.segmentation.data import preprocess_of

    torch.manual_seed(0)
    model = create_model("lraspp_mobilenet_v3_small")
    pre = preprocess_of(model, 256)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.reset_running_stats()
                m.momentum = None
        model.train()
        mean, std = torch.tensor(pre.mean).view(1, 3, 1, 1), torch.tensor(pre.std).view(1, 3, 1, 1)
        for img in coco_images(4, "train2017"):
            model((torch.nn.functional.interpolate(img[None], size=[256, 256]) - mean) / std)
        model.head.high_classifier.bias.copy_(torch.randn(21) * 2)
    model.pretrained_cfg = {"preprocess": pre.to_dict(), "labels": None, "source": "test"}
    return model.eval()


@pytest.mark.parametrize("fmt", ["onnx", pytest.param("executorch", marks=pytest.mark.slow)])
def test_segmentation_file_in_eval_and_predict(fmt, coco_slice, tmp_path, capsys):
    """An exported segmentation file: `eval --weights FILE` gives eager's mIoU; ONNX files take
    any image size (torchvision's preset keeps the aspect), the others their export size."""
    from mobilenet.export import export_model
    from mobilenet.runtimes import get, load_artifact
    from mobilenet.train import dense_eval

    if not get(fmt).installed():
        pytest.skip(f"{fmt} runtime not installed")
    model = _settled_segmenter()
    path = tmp_path / f"seg.{get(fmt).suffix.lstrip('.')}"
    export_model(model, fmt, path)
    file = load_artifact(path).as_module()
    assert file.task == "segmentation" and file.num_classes == 21
    eager = dense_eval.evaluate_segmentation(model, str(coco_slice), progress=False)
    assert eager["resolution"] == 256 and len([v for v in eager["per_class_iou"].values() if v]) >= 3
    assert main(["eval", "--weights", str(path), "--data", str(coco_slice), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    if fmt == "onnx":  # the same computation: equal up to a few pixels' float ties
        assert file.fixed_size is None
        assert got["miou"] == pytest.approx(eager["miou"], abs=1e-4)
        assert got["pixel_accuracy"] == pytest.approx(eager["pixel_accuracy"], abs=1e-4)
    else:  # squeezed to its 256x256 input and back: close, not equal
        assert file.fixed_size == 256
        assert got["pixel_accuracy"] == pytest.approx(eager["pixel_accuracy"], abs=0.05)
    photo = sorted((coco_slice / "images" / "val2017").glob("*.jpg"))[0]
    assert main(["predict", "--weights", str(path), str(photo), "--out", str(tmp_path), "--json"]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    from PIL import Image

    assert Image.open(result["drawn"]).size == Image.open(photo).size and result["classes"]


# -- bench: ours vs torchvision on dense models ---------------------------------------------
@pytest.mark.parametrize("name", ["ssdlite320_mobilenet_v3_large", "lraspp_mobilenet_v3_large"])
def test_bench_dense_peers_hold_the_same_weights(name):
    """The comparison times the same computation: ours holds torchvision's initialisation, and
    both give the same detections / logits on the benchmark's input."""
    import torch

    from mobilenet.bench import dense

    ours, theirs = dense.our_model(name), dense.torchvision_model(name)
    x = dense.example(name, 1, 320 if "ssd" in name else 256)
    a, b = dense.eager_call(name, ours, x)(), dense.eager_call(name, theirs, x)()
    if dense.task_of(name) == "detection":
        a, b = a[0], b[0]
        assert len(a["boxes"]) > 10 and torch.equal(a["labels"], b["labels"])
        assert torch.allclose(a["boxes"], b["boxes"], atol=1e-3) and torch.allclose(a["scores"], b["scores"], atol=1e-5)
    else:
        assert a.shape == b["out"].shape == (1, 21, 256, 256)
        assert torch.allclose(a, b["out"], atol=1e-4 * float(a.abs().max()))


def test_bench_cli_compares_a_detector_with_torchvision(capsys):
    assert main(["bench", "ssdlite320_mobilenet_v3_large", "--compare", "torchvision", "--threads", "1",
                 "--min-time", "0.05", "--max-time", "0.3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = {r["source"]: r for r in out["results"]}
    assert set(rows) == {"ours", "torchvision"} and all(r["error"] is None for r in rows.values())
    assert rows["ours"]["resolution"] == 320 and rows["torchvision"]["impl"] == "ssdlite320_mobilenet_v3_large"
    assert rows["torchvision"]["ratio"] == pytest.approx(rows["ours"]["median_ms"] / rows["torchvision"]["median_ms"])
    # what cannot run is a row saying why, not a crash
    assert main(["bench", "ssdlite320_mobilenet_v3_large", "--runtime", "channels_last", "--compare", "none",
                 "--threads", "1", "--min-time", "0.05", "--max-time", "0.1", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["results"]
    assert "eager or onnxruntime" in row["error"]


def test_bench_docs_writes_the_dense_section(tmp_path):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "bench_docs", Path(__file__).resolve().parents[1] / "benchmarks" / "bench_docs.py")
    docs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(docs)
    row = dict(model="ssdlite320_mobilenet_v3_large", runtime="onnxruntime", threads=2, batch=1, resolution=320,
               iqr_ms=1.0, images_per_s=16.0, error=None, task="inference", precision="fp32")
    data = {"results": [dict(row, source="ours", median_ms=62.0, ratio=None, note="mobilenet.detection.export"),
                        dict(row, source="torchvision", median_ms=310.0, ratio=0.2, note="torch.onnx.export")]}
    text = "\n".join(docs.dense_section(data))
    assert "## Detection and segmentation, ours vs torchvision" in text
    assert "| ssdlite320_mobilenet_v3_large | onnxruntime | 2 | 1 | 320 | 62 (1) | 16.0 | 310 (1) | 0.200 |" in text
    assert docs.dense_section({"results": [dict(row, model="mobilenet_v2_100", source="ours", median_ms=1.0)]}) == []

    # --only dense puts its rows in place of the committed run's dense rows and keeps the rest
    committed = {"results": [dict(row, model="mobilenet_v2_100", source="ours", median_ms=1.0), data["results"][0]],
                 "claims": [{"model": "mobilenet_v2_100"}, {"model": "ssdlite320_mobilenet_v3_large"}],
                 "command": "full", "date": "d0", "wall_s": 1500, "load_average": [2.0, 2.0, 2.0]}
    path = tmp_path / "benchmarks.json"
    path.write_text(json.dumps(committed))
    dense = {"results": [dict(r, threads=1) for r in data["results"]], "claims": [{"model": "lraspp_mobilenet_v3_large"}],
             "table": [], "command": "dense", "date": "d1", "wall_s": 160, "load_average": [1.0, 1.0, 1.0]}
    merged = docs.with_dense_of(dense, path)
    assert [(r["model"], r["threads"]) for r in merged["results"]] == [
        ("mobilenet_v2_100", 2), ("ssdlite320_mobilenet_v3_large", 1), ("ssdlite320_mobilenet_v3_large", 1)]
    assert [c["model"] for c in merged["claims"]] == ["mobilenet_v2_100", "lraspp_mobilenet_v3_large"]
    assert merged["command"] == "full" and merged["dense_run"]["command"] == "dense"
    assert "`dense` on d1" in "\n".join(docs.dense_section(merged))
