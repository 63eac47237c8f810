"""Object detection: SSDLite on MobileNet backbones (see docs/dense.md)."""

from __future__ import annotations

from .ssdlite import DETECTION_MODELS, SSDLite

__all__ = ["DETECTION_MODELS", "SSDLite"]
