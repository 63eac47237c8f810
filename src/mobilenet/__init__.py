"""Paper-exact MobileNets V1, V2 and V3 for PyTorch."""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Imported on first use (PEP 562), so that `mobilenet --version` and `--help` never load
# torch; `mobilenet.create_model` etc. behave exactly as eager imports would.
_EXPORTS = {
    "MODELS": "registry",
    "FeatureInfo": "model",
    "MobileNet": "model",
    "MobileNetV1": "v1",
    "MobileNetV2": "v2",
    "MobileNetV3": "v3",
    "Profile": "profile",
    "create_model": "registry",
    "deploy": "deploy",
    "list_models": "registry",
    "make_divisible": "layers",
    "profile": "profile",
}
# Subpackages reachable as attributes (`mobilenet.weights.load_tflite(...)`) without an import.
_SUBMODULES = ("bench", "commands", "deploy", "detection", "evaluate", "export", "files", "images", "layers",
               "limits", "model", "predict", "profile", "progress", "published", "quantize", "registry", "runtimes",
               "segmentation", "train", "v1", "v2", "v3", "v4", "weights")

if TYPE_CHECKING:
    from .deploy import deploy
    from .layers import make_divisible
    from .model import FeatureInfo, MobileNet
    from .profile import Profile, profile
    from .registry import MODELS, create_model, list_models
    from .v1 import MobileNetV1
    from .v2 import MobileNetV2
    from .v3 import MobileNetV3


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later look-ups skip this function
    return value


class _Package(types.ModuleType):
    def __setattr__(self, name: str, value: Any) -> None:
        # Importing the submodule `mobilenet.profile` (or `.deploy`) must not hide the function
        # `mobilenet.profile` of the same name, as it would once the import system binds it here.
        if name in _EXPORTS and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS) | set(_SUBMODULES))


__all__ = [
    "MODELS",
    "FeatureInfo",
    "MobileNet",
    "MobileNetV1",
    "MobileNetV2",
    "MobileNetV3",
    "Profile",
    "__version__",
    "create_model",
    "deploy",
    "list_models",
    "make_divisible",
    "profile",
]
