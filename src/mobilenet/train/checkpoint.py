"""The resumable training state: one ``state.pt`` written atomically (temporary
file, fsync, rename), loadable with ``weights_only=True`` (nothing unpickled).

It holds what an uninterrupted run would still have in memory: model, optimizer,
scheduler, EMA and grad-scaler states, epoch and step, the position inside the
epoch (data order is a function of seed and epoch) and every RNG state.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..files import atomic_path

STATE_FILE = "state.pt"


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": _listify(random.getstate()),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    random.setstate(_tuplify(state["python"]))
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))


def _listify(x):
    return [_listify(v) for v in x] if isinstance(x, tuple) else x


def _tuplify(x):
    return tuple(_tuplify(v) for v in x) if isinstance(x, list) else x


def save_state(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


def load_state(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no training state to resume from (the run stopped before its first "
                                "save); start it anew with --overwrite")
    from ..weights.hub import torch_load
    from ..weights.store import WeightsError

    try:
        return torch_load(path)  # tensors only; torch's advice to unpickle is never passed on
    except WeightsError as exc:
        raise ValueError(f"{path}: not a readable training state ({str(exc).removeprefix(f'{path}: ')})") from None
