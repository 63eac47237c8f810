"""COCO-JSON detection data and COCO box mAP from pycocotools, on real coco128 data."""

from __future__ import annotations

import pytest
from conftest import shared_path

from mobilenet import create_model
from mobilenet.detection.evaluate import (
    METRICS,
    DetectionDataError,
    coco_map,
    coco_split,
    evaluate_detector,
    ground_truth_as_detections,
    train_targets,
)


@pytest.fixture(scope="module")
def val():
    return coco_split(shared_path("coco128"), "val2017")


def test_reader_gives_images_and_boxes(val):
    assert len(val) == 128 and val.num_classes == 91 and val.label_names[1] == "person"
    image, target = val[0]
    assert image.shape == (3, 426, 640) and 0.0 <= image.min() and image.max() <= 1.0
    assert int(target["image_id"]) == 139 and target["boxes"].shape[1] == 4
    assert (target["boxes"][:, 2:] > target["boxes"][:, :2]).all()
    train = coco_split(shared_path("coco128"), "train2017", contiguous_labels=True)
    crowd = sum(int(train.target(i)["iscrowd"].sum()) for i in range(len(train)))
    assert crowd == 10 and train.num_classes == 81  # the README's 10 crowd regions; 80 classes + background
    kept = sum(len(train_targets(train.target(i))["boxes"]) for i in range(len(train)))
    assert kept == 939 - 10


def test_ground_truth_scores_one_and_damage_lowers_it(val):
    truth = ground_truth_as_detections(val)
    assert coco_map(val.annotations, truth) == {m: 1.0 for m in METRICS}
    damaged = [dict(r, bbox=[r["bbox"][0] + r["bbox"][2] * 0.4, *r["bbox"][1:]]) if i % 2 else r
               for i, r in enumerate(truth)]  # every other box shifted by 40% of its width: IoU 0.43
    scores = coco_map(val.annotations, damaged)
    assert 0.3 < scores["AP"] < 0.8 and scores["AP75"] < scores["AP50"] < 1.0
    from faster_coco_eval import COCO, COCOeval_faster  # a second implementation agrees

    gt = COCO(str(val.annotations))
    ev = COCOeval_faster(gt, gt.loadRes(damaged), "bbox", print_function=lambda *a: None)
    ev.evaluate(), ev.accumulate(), ev.summarize()
    assert ev.stats[0] == pytest.approx(scores["AP"], abs=1e-6)


def test_a_detector_gets_a_score_in_0_1(val):
    model = create_model("ssdlite320_mobilenet_v3_small")
    scores = evaluate_detector(model, val, limit=4, batch_size=2)
    assert scores["images"] == 4 and scores["detections"] > 0
    assert all(0.0 <= scores[m] <= 1.0 for m in METRICS)


def test_bad_paths_are_clear_errors(tmp_path):
    with pytest.raises(DetectionDataError, match="no such annotation file"):
        coco_split(tmp_path, "val2017")
    (tmp_path / "annotations").mkdir()
    (tmp_path / "images" / "val2017").mkdir(parents=True)
    (tmp_path / "annotations" / "instances_val2017.json").write_text('{"images": []}')
    with pytest.raises(DetectionDataError, match="not COCO detection JSON"):
        coco_split(tmp_path, "val2017")
