"""Paper-exact MobileNets V1, V2 and V3 for PyTorch."""

from .deploy import deploy
from .layers import make_divisible
from .model import FeatureInfo, MobileNet
from .profile import Profile, profile
from .registry import MODELS, create_model, list_models
from .v1 import MobileNetV1
from .v2 import MobileNetV2
from .v3 import MobileNetV3

__version__ = "0.1.0"

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
