"""Named variants: ``list_models()`` and ``create_model(name, ...)``."""

from __future__ import annotations

import difflib
import inspect
import os
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from .v1 import MobileNetV1
from .v2 import MobileNetV2
from .v3 import MobileNetV3
from .v4 import MobileNetV4


@dataclass(frozen=True)
class ModelSpec:
    name: str
    cls: type[nn.Module]
    kwargs: dict[str, Any] = field(default_factory=dict)
    resolution: int = 224  # the resolution its published figures use
    num_classes: int = 1000  # the default class count (dense models: their label set's; detectors: 91, COCO ids)
    task: str = "classification"  # or "detection", "segmentation"

    def build(self, **options: Any) -> nn.Module:
        return self.cls(**self.kwargs, **options)


def _width(tag: str) -> float:
    return int(tag) / 100


def _specs() -> dict[str, ModelSpec]:
    specs = []
    for w in ("025", "050", "075", "100"):
        specs.append(ModelSpec(f"mobilenet_v1_{w}", MobileNetV1, {"depth_multiplier": _width(w)}))
    for w in ("035", "050", "075", "100", "130", "140"):
        specs.append(ModelSpec(f"mobilenet_v2_{w}", MobileNetV2, {"width": _width(w)}))
    for config in ("large", "small"):
        for w in ("035", "050", "075", "100", "125"):
            specs.append(ModelSpec(f"mobilenet_v3_{config}_{w}", MobileNetV3, {"config": config, "width": _width(w)}))
        specs.append(
            ModelSpec(f"mobilenet_v3_{config}_minimal_100", MobileNetV3, {"config": config, "minimal": True})
        )
    # V4 at the resolution of the paper's Table 5 (S 224, M 256, L 384); the reduced widths,
    # which the paper does not have, at the input size of timm's config for them.
    for config, width, res in (("conv_small", "", 224), ("conv_small", "050", 224), ("conv_small", "035", 224),
                               ("conv_medium", "", 256), ("conv_large", "", 384), ("hybrid_medium", "", 256),
                               ("hybrid_medium", "075", 224), ("hybrid_large", "", 384),
                               ("hybrid_large", "075", 256)):
        kwargs = {"config": config, **({"width": _width(width)} if width else {})}
        name = f"mobilenet_v4_{config}" + (f"_{width}" if width else "")
        specs.append(ModelSpec(name, MobileNetV4, kwargs, resolution=res))
    return {s.name: s for s in specs}


MODELS: dict[str, ModelSpec] = _specs()


def _register_dense() -> None:
    """The dense models' tables live with their heads; they import the registry only
    when a model is built, so either side may be imported first."""
    from .detection.ssdlite import DETECTION_MODELS, SSDLite
    from .segmentation.model import SEGMENTATION_MODELS, SegmentationModel

    for name, (kwargs, resolution) in DETECTION_MODELS.items():
        MODELS[name] = ModelSpec(name, SSDLite, kwargs, resolution, num_classes=91, task="detection")
    for name, (kwargs, resolution) in SEGMENTATION_MODELS.items():
        MODELS[name] = ModelSpec(name, SegmentationModel, kwargs, resolution, num_classes=21, task="segmentation")


_register_dense()

# The registry speaks timm's argument names; the classes keep the names of the
# original educational repo (n_classes, input_channel).
_RENAMED = {"num_classes": "n_classes", "in_chans": "input_channel"}


def list_models(pattern: str = "*", task: str | None = None) -> list[str]:
    """Registered names, optionally filtered by a shell-style ``pattern`` and a ``task``
    ("classification", "detection")."""
    import fnmatch

    return [n for n, s in MODELS.items() if fnmatch.fnmatch(n, pattern) and task in (None, s.task)]


def get_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except (KeyError, TypeError):
        close = difflib.get_close_matches(str(name), MODELS, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown model {name!r}{hint} (mobilenet.list_models() lists them all)") from None


def model_options(name: str) -> list[str]:
    """The keyword options ``create_model(name, ...)`` accepts beyond the defaults."""
    spec = get_spec(name)
    params = inspect.signature(spec.cls.__init__).parameters
    fixed = set(spec.kwargs) | set(_RENAMED.values())
    return [p for p in params if p not in fixed and p != "self"]


def create_model(
    name: str,
    *,
    num_classes: int | None = None,
    in_chans: int = 3,
    pretrained: bool | str | os.PathLike = False,
    **options: Any,
) -> nn.Module:
    """Build a registered model, e.g. ``create_model("mobilenet_v3_small_075", num_classes=10)``.

    ``options`` are the architecture's keyword arguments (``dropout``,
    ``padding="same"``, ``features_only=True``, ``out_indices``, ``bn_eps``...).
    ``pretrained``: ``True`` (the model's default official weights), a tag
    (``"tv2_in1k"``, see ``mobilenet info --weights``) or a checkpoint file in our,
    torchvision's or timm's layout; ``num_classes`` then defaults to the weights'
    own and a different one gets a fresh classifier. Without ``pretrained`` it
    defaults to 1000.
    """
    spec = get_spec(name)
    allowed = model_options(name)
    for key in options:
        if key in _RENAMED or key in _RENAMED.values():
            raise TypeError(f"create_model() takes num_classes and in_chans, not {key!r}")
        if key not in allowed:
            fixed = " (fixed by the model name)" if key in spec.kwargs else ""
            raise TypeError(
                f"{name} got an unexpected option {key!r}{fixed}; valid options: {', '.join(allowed)}"
            )
    if pretrained is not False and pretrained is not None:
        if pretrained == "" or not isinstance(pretrained, (bool, str, os.PathLike)):
            raise TypeError(f"pretrained must be True, a tag or a file path, got {pretrained!r}")
        if hasattr(spec.cls, "from_pretrained"):  # dense models load their own checkpoints
            return spec.cls.from_pretrained(name, pretrained, num_classes=num_classes, in_chans=in_chans, **options)
        from .weights.hub import load_pretrained

        # A model class with its own weights formats (the dense models) loads them itself.
        load_pretrained = getattr(spec.cls, "load_pretrained", load_pretrained)
        return load_pretrained(name, pretrained, num_classes=num_classes, in_chans=in_chans, **options)
    model = spec.build(n_classes=spec.num_classes if num_classes is None else num_classes, input_channel=in_chans,
                       **options)
    model.model_name = name
    return model
