"""Training: ``TrainConfig`` + ``resolve_config`` (recipes), ``train`` / ``Trainer``
(the loop, one process or torchrun), and the data it reads."""

from .config import RECIPES, TrainConfig, read_config_file, resolve_config
from .data import DataError, load_data
from .loop import Diverged, Interrupted, Trainer, train

__all__ = ["RECIPES", "DataError", "Diverged", "Interrupted", "TrainConfig", "Trainer", "load_data", "read_config_file",
           "resolve_config", "train"]
