"""Weights: our safetensors format, official checkpoints, and foreign formats."""

from .convert import detect_format, from_state_dict, from_timm, from_torchvision, key_table, to_timm, to_torchvision
from .hub import TAGS, WeightTag, download, load_pretrained, read_checkpoint
from .store import WeightsError, load_weights, read_metadata, save_weights

__all__ = [
    "TAGS",
    "WeightTag",
    "WeightsError",
    "detect_format",
    "download",
    "from_state_dict",
    "from_timm",
    "from_torchvision",
    "key_table",
    "load_pretrained",
    "load_tflite",
    "load_weights",
    "read_checkpoint",
    "read_metadata",
    "save_weights",
    "to_timm",
    "to_torchvision",
]


def __getattr__(name: str):
    # load_tflite is imported on first use: the TFLite reader is not needed to load other weights.
    if name == "load_tflite":
        from .tflite import load_tflite

        return load_tflite
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
