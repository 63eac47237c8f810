"""Small slices of the real coco128 (../shared/data) for the dense training tests: links
to its files and cut-down COCO JSON in a temporary folder, never copies in the project
(not a test module)."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import shared_path


def coco128_slice(root: Path, n_train: int = 8, n_val: int = 4) -> Path:
    """``root`` laid out as coco128 (images/, annotations/, masks_voc/, classes_voc.txt) with
    the first ``n_train`` / ``n_val`` images of each split that have a VOC mask and boxes."""
    src = shared_path("coco128")
    shutil_link(src / "classes_voc.txt", root / "classes_voc.txt")
    for split, n in (("train2017", n_train), ("val2017", n_val)):
        data = json.loads((src / "annotations" / f"instances_{split}.json").read_text())
        boxed = {a["image_id"] for a in data["annotations"]}
        masks = {p.stem for p in (src / "masks_voc" / split).glob("*.png")}
        images = [r for r in sorted(data["images"], key=lambda r: r["file_name"])
                  if r["id"] in boxed and Path(r["file_name"]).stem in masks][:n]
        ids = {r["id"] for r in images}
        cut = dict(data, images=images, annotations=[a for a in data["annotations"] if a["image_id"] in ids])
        (root / "annotations").mkdir(parents=True, exist_ok=True)
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(cut))
        for r in images:
            stem = Path(r["file_name"]).stem
            shutil_link(src / "images" / split / r["file_name"], root / "images" / split / r["file_name"])
            shutil_link(src / "masks_voc" / split / f"{stem}.png", root / "masks_voc" / split / f"{stem}.png")
    return root


def shutil_link(target: Path, link: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)
