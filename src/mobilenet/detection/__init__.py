"""Object detection: SSDLite on MobileNet backbones (see docs/dense.md)."""

from __future__ import annotations

from ..registry import ModelSpec
from .ssdlite import SSDLite

# The V3 detectors use the V3 paper's reduced tail (Section 6.1.1, Table 6: C4 to C5
# halved), as torchvision's checkpoint does; the V2 paper's SSDLite has none.
DETECTORS = (
    ModelSpec("ssdlite320_mobilenet_v3_large", SSDLite, {"backbone": "mobilenet_v3_large_100"}, 320, 91, "detection"),
    ModelSpec("ssdlite320_mobilenet_v3_small", SSDLite, {"backbone": "mobilenet_v3_small_100"}, 320, 91, "detection"),
    ModelSpec("ssdlite320_mobilenet_v2_100", SSDLite, {"backbone": "mobilenet_v2_100"}, 320, 91, "detection"),
)

__all__ = ["DETECTORS", "SSDLite"]
