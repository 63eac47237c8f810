"""Bad data: unreadable, corrupt and placeholder files are reported once by path and
skipped (or refused with --strict); every image mode is converted; empty folders and
trees without images are errors that say what was expected."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import shared_path
from mobilenet.train.data import DataError, load_data
from train_helpers import make_folder


def _bad_tree(root):
    make_folder(root, n=6)
    (root / "red" / "notes.txt").write_text("not an image")
    (root / "red" / "truncated.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 20)
    (root / "blue" / "empty.png").write_bytes(b"")
    flat = np.full((40, 40, 3), 240, dtype="uint8")
    flat[15:25, 5:35] = 60  # "we're sorry" text on grey: a placeholder
    Image.fromarray(flat).convert("P").save(root / "blue" / "placeholder.gif")
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 255, (20, 20, 3), dtype="uint8")
    Image.fromarray(noise).convert("L").save(root / "red" / "gray.png")
    Image.fromarray(noise).convert("RGBA").save(root / "red" / "rgba.png")
    Image.fromarray(noise).convert("CMYK").save(root / "blue" / "cmyk.jpg")
    Image.fromarray(noise).convert("P", palette=Image.Palette.ADAPTIVE).save(root / "blue" / "palette.png")
    return root


def test_bad_files_reported_once_and_skipped_modes_converted(tmp_path):
    root = _bad_tree(tmp_path / "d")
    lines = []
    split = load_data(str(root), val_split=0.25, cache_side=40, log=lines.append)
    skipped = {s.path.rsplit("/", 1)[-1]: s.reason for s in split.skipped}
    assert set(skipped) == {"notes.txt", "truncated.jpg", "empty.png", "placeholder.gif"}
    assert "placeholder" in skipped["placeholder.gif"]
    assert len(lines) == 4 and all(str(root) in line for line in lines)  # once each, by path
    images = [part[i][0] for part in (split.train, split.val) for i in range(len(part))]
    assert len(images) == 12 + 4 and all(img.mode == "RGB" for img in images)
    # training images decoded once (shrunk to cache_side); validation reads its files as `mobilenet eval` does
    assert all(isinstance(img, Image.Image) for img, _ in split.train.items)
    assert all(isinstance(path, Path) for path, _ in split.val.items)


def test_strict_refuses_bad_files(tmp_path):
    root = _bad_tree(tmp_path / "d")
    with pytest.raises(DataError, match="drop --strict"):
        load_data(str(root), strict=True, cache_side=40, log=lambda m: None)


def test_empty_class_folder_and_no_images_say_what_was_expected(tmp_path):
    root = make_folder(tmp_path / "d", n=3)
    (root / "green").mkdir()
    with pytest.raises(DataError, match="empty class folder.*expected image files"):
        load_data(str(root))
    (tmp_path / "none").mkdir()
    with pytest.raises(DataError, match="no class folders; expected"):
        load_data(str(tmp_path / "none"))
    with pytest.raises(DataError, match="no such folder"):
        load_data(str(tmp_path / "missing"))


def test_graphics_dataset_is_not_treated_as_placeholders(tmp_path):
    for c, v in (("a", 0), ("b", 255)):
        (tmp_path / c).mkdir()
        for i in range(5):
            arr = np.zeros((10, 10), dtype="uint8")
            arr[i : i + 3] = 255 - v
            Image.fromarray(arr).save(tmp_path / c / f"{i}.png")
    split = load_data(str(tmp_path), cache_side=32, log=lambda m: None)
    assert not split.skipped and len(split.train) + len(split.val) == 10


def test_seeded_split_is_stratified_and_repeatable(tmp_path):
    root = make_folder(tmp_path / "d", n=10)
    a = load_data(str(root), val_split=0.3, seed=1, cache_side=None)
    b = load_data(str(root), val_split=0.3, seed=1, cache_side=None)
    assert [p for p, _ in a.val.items] == [p for p, _ in b.val.items]
    assert sorted(label for _, label in a.val.items) == [0, 0, 0, 1, 1, 1]


def test_hymenoptera_gif_is_reported_and_skipped():
    root = shared_path("hymenoptera")
    lines = []
    split = load_data(str(root), cache_side=64, log=lines.append)
    assert [s.path.rsplit("/", 1)[-1] for s in split.skipped] == ["imageNotFound.gif"]
    assert len(split.train) == 244 and len(split.val) == 153


def test_cli_unwritable_output_fails_before_training(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = subprocess.run([sys.executable, "-m", "mobilenet", "train", "--output", str(blocker / "runs"), "--quiet"],
                          capture_output=True, text=True, timeout=120, env={"MOBILENET_NO_REEXEC": "1",
                                                                              "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2
    assert "not writable" in proc.stderr and "Traceback" not in proc.stderr
    assert "epoch" not in proc.stdout
