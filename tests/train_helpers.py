"""Tiny image folders for the training tests (not a test module)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = {"red": (200, 40, 40), "blue": (40, 40, 200)}


def make_folder(root: Path, n: int = 16, size: int = 20, seed: int = 0) -> Path:
    """``root/<class>/<i>.png``: noisy images whose mean colour gives the class."""
    rng = np.random.default_rng(seed)
    for name, colour in COLOURS.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            noise = rng.integers(-100, 100, size=(size, size, 3))
            arr = np.clip(np.array(colour)[None, None] + noise, 0, 255).astype("uint8")
            Image.fromarray(arr).save(root / name / f"{i:03d}.png")
    return root


def tiny_config(data: Path, out: Path, name: str, **over):
    from mobilenet.train import resolve_config

    values = dict(data=str(data), model="mobilenet_v2_035", resolution=32, epochs=2, batch_size=8, output=str(out),
                  name=name, threads=1, workers=0, val_split=0.25)
    values.update(over)
    return resolve_config(values)
