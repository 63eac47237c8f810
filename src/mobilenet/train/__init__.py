"""Training: ``TrainConfig`` + ``resolve_config`` (recipes), ``train`` / ``Trainer``
(the loop, one process or torchrun), and the data it reads."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .config import RECIPES, TrainConfig, read_config_file, resolve_config

if TYPE_CHECKING:
    from .data import DataError, load_data
    from .loop import Diverged, Interrupted, Trainer, train

# The loop and data modules load torch: imported on first use, so that `mobilenet train --help`
# (which reads only the config's fields) stays fast.
_LAZY = {"DataError": "data", "load_data": "data", "Diverged": "loop", "Interrupted": "loop", "Trainer": "loop",
         "train": "loop"}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)


__all__ = ["RECIPES", "DataError", "Diverged", "Interrupted", "TrainConfig", "Trainer", "load_data", "read_config_file",
           "resolve_config", "train"]
