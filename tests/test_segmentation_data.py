"""The segmentation reader on coco128's real masks, and mean IoU checked against a
per-class computation written independently (boolean masks, numpy)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import shared_path
from mobilenet.segmentation import VOC_LABELS
from mobilenet.segmentation.data import SegmentationFolder
from mobilenet.segmentation.metrics import SegmentationMetrics


@pytest.fixture(scope="module")
def coco128():
    return shared_path("coco128")


def numpy_ious(preds, targets, num_classes):
    ious = {}
    for c in range(num_classes):
        inter = union = 0
        for p, t in zip(preds, targets):
            valid = t != 255
            inter += np.logical_and(p == c, t == c)[valid].sum()
            union += np.logical_or(p == c, t == c)[valid].sum()
        if union:
            ious[c] = inter / union
    return ious


def test_reader_pairs_real_images_with_their_masks(coco128):
    data = SegmentationFolder.coco128(coco128, "val2017", num_classes=21)
    assert len(data) == 100  # the README: 100 of the 128 val images have masks
    image, mask = data[0]
    stem = data.pairs[0][0].stem
    raw = np.asarray(Image.open(coco128 / "masks_voc" / "val2017" / f"{stem}.png"))
    assert image.shape[1:] == mask.shape == raw.shape and image.shape[0] == 3
    assert torch.equal(mask, torch.from_numpy(raw.astype(np.int64)))
    assert set(mask.unique().tolist()) <= set(range(21)) | {255}
    resized = SegmentationFolder.coco128(coco128, "val2017", size=(96, 128))
    image, mask = resized[0]
    assert image.shape == (3, 96, 128) and mask.shape == (96, 128)
    assert set(mask.unique().tolist()) <= set(raw.ravel().tolist())  # nearest: no blended labels


def test_reader_errors_name_the_file(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "msk").mkdir()
    with pytest.raises(ValueError, match="no image in .* has a mask"):
        SegmentationFolder(tmp_path / "img", tmp_path / "msk")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "img" / "a.jpg")
    Image.fromarray(np.full((8, 8), 30, np.uint8)).save(tmp_path / "msk" / "a.png")
    with pytest.raises(ValueError, match=r"a.png: class 30 is outside 0..20"):
        SegmentationFolder(tmp_path / "img", tmp_path / "msk", num_classes=21)[0]
    with pytest.raises(FileNotFoundError, match="masks folder"):
        SegmentationFolder(tmp_path / "img", tmp_path / "nope")


def test_miou_on_real_masks_matches_an_independent_computation(coco128):
    data = SegmentationFolder.coco128(coco128, "val2017", size=(64, 64))
    targets = [data[i][1] for i in range(20)]
    rng = np.random.default_rng(0)
    preds = []
    for t in targets:  # a corrupted copy: a third of the pixels get a random class
        p = t.clone()
        p[p == 255] = 0
        noise = torch.from_numpy(rng.random(t.shape) < 0.33)
        p[noise] = torch.from_numpy(rng.integers(0, 21, t.shape))[noise]
        preds.append(p)
    metrics = SegmentationMetrics(21, VOC_LABELS)
    for p, t in zip(preds, targets):
        metrics.update(p[None], t[None])
    result = metrics.compute()
    expected = numpy_ious([p.numpy() for p in preds], [t.numpy() for t in targets], 21)
    per_class = list(result["per_class_iou"].values())
    for c in range(21):
        assert (per_class[c] is None) == (c not in expected)
        if c in expected:
            assert per_class[c] == pytest.approx(expected[c])
    assert result["miou"] == pytest.approx(np.mean(list(expected.values())))
    assert 0 < result["miou"] < 1 and result["per_class_iou"]["person"] > 0.5
    perfect = SegmentationMetrics(21)
    for t in targets:
        perfect.update(torch.nn.functional.one_hot(t.clamp(max=20), 21).permute(2, 0, 1)[None].float(), t[None])
    assert perfect.compute()["miou"] == 1.0 and perfect.compute()["pixel_accuracy"] == 1.0
