"""Weights: our safetensors format, official checkpoints, and foreign formats."""

from .store import WeightsError, load_weights, read_metadata, save_weights

__all__ = ["WeightsError", "load_weights", "read_metadata", "save_weights"]
