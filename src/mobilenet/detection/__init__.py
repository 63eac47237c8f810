"""Object detection: SSDLite on MobileNet backbones (see docs/dense.md)."""

from __future__ import annotations

from .ssdlite import SSDLite

# The V3 detectors use the V3 paper's reduced tail (Section 6.1.1, Table 6: C4 to C5
# halved), as torchvision's checkpoint does; the V2 paper's SSDLite has none.
# name: (SSDLite's arguments, input size); 91 classes (COCO's ids with background).
DETECTORS: dict[str, tuple[dict, int]] = {
    "ssdlite320_mobilenet_v3_large": ({"backbone": "mobilenet_v3_large_100"}, 320),
    "ssdlite320_mobilenet_v3_small": ({"backbone": "mobilenet_v3_small_100"}, 320),
    "ssdlite320_mobilenet_v2_100": ({"backbone": "mobilenet_v2_100"}, 320),
}

__all__ = ["DETECTORS", "SSDLite"]
