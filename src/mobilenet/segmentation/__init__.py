"""Semantic segmentation on every MobileNet: LR-ASPP (MobileNetV3 paper), DeepLabV3
with or without ASPP (DeepLabv3 paper, MobileNetV2 paper), torchvision's weights."""

from .heads import DeepLabV3Head, FCNHead, LRASPPHead, Tap
from .model import HEADS, SEGMENTATION_MODELS, VOC_LABELS, SegmentationModel

__all__ = [
    "HEADS",
    "SEGMENTATION_MODELS",
    "VOC_LABELS",
    "DeepLabV3Head",
    "FCNHead",
    "LRASPPHead",
    "SegmentationModel",
    "Tap",
    "to_torchvision",
]


def __getattr__(name: str):
    if name == "to_torchvision":  # imported on first use: it pulls in the weights machinery
        from .weights import to_torchvision

        return to_torchvision
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
