"""Our own weights file: safetensors tensors plus JSON metadata that rebuilds the
model (architecture and its arguments), and says how to feed it (preprocessing)
and what it answers (labels). Loading never unpickles anything."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from ..files import atomic_path
from ..images import Preprocess

FORMAT = "mobilenet"
FORMAT_VERSION = 1
METADATA_KEY = "mobilenet"


class WeightsError(ValueError):
    """A weights file we cannot use; the message names the file and what to do."""


def check_finite(tensors: Mapping[str, Any], source: str | os.PathLike) -> None:
    """Refuse weights holding NaN or inf (what a diverged training run leaves): a model
    built from them answers NaN for every input."""
    import torch

    for key, t in tensors.items():
        if isinstance(t, torch.Tensor) and t.is_floating_point() and not bool(torch.isfinite(t).all()):
            nan, inf = int(torch.isnan(t).sum()), int(torch.isinf(t).sum())
            raise WeightsError(f"{source}: tensor {key} holds {nan} NaN and {inf} inf values of {t.numel()} "
                               "(a diverged training run or a damaged file); refusing to load it")


def _require_safetensors() -> None:
    try:
        import safetensors  # noqa: F401
    except ModuleNotFoundError:
        raise WeightsError(
            "reading and writing .safetensors weights needs the safetensors package: "
            "pip install 'mobilenet[train]' (or pip install safetensors)"
        ) from None


def architectures() -> dict[str, type[nn.Module]]:
    from ..v1 import MobileNetV1
    from ..v2 import MobileNetV2
    from ..segmentation import SegmentationModel
    from ..v3 import MobileNetV3
    from ..detection.ssdlite import SSDLite
    from ..v4 import MobileNetV4

    return {cls.__name__: cls for cls in (MobileNetV1, MobileNetV2, MobileNetV3, MobileNetV4, SegmentationModel,
                                          SSDLite)}


def describe(model: nn.Module, preprocess: Preprocess | None = None, labels: list[str] | None = None,
             **extra: Any) -> dict[str, Any]:
    """The metadata saved beside the tensors."""
    if not hasattr(model, "arch_args"):
        raise TypeError(f"{type(model).__name__} is not a mobilenet model (it has no arch_args)")
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    preprocess = preprocess or (Preprocess.from_dict(cfg["preprocess"]) if "preprocess" in cfg else None)
    labels = labels if labels is not None else cfg.get("labels")
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "arch": type(model).__name__,
        "arch_args": model.arch_args,
        "model_name": getattr(model, "model_name", None),
        "preprocess": preprocess.to_dict() if preprocess else None,
        "labels": labels,
        **extra,
    }


def save_weights(model: nn.Module, path: str | os.PathLike, *, preprocess: Preprocess | None = None,
                 labels: list[str] | None = None, **extra: Any) -> Path:
    """Write ``model``'s state dict and metadata to ``path`` (.safetensors), atomically."""
    _require_safetensors()
    from safetensors.torch import save_file

    meta = describe(model, preprocess, labels, **extra)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={METADATA_KEY: json.dumps(meta)})
    return path


def read_metadata(path: str | os.PathLike) -> dict[str, Any] | None:
    """Our metadata from a .safetensors file, or None if the file has none."""
    _require_safetensors()
    from safetensors import safe_open

    from .metadata import parse

    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(METADATA_KEY)
    except Exception as exc:  # safetensors raises its own error types for bad headers
        raise WeightsError(f"{path}: not a readable safetensors file ({exc})") from None
    return parse(raw, str(path)) if raw else None


def tensor_shapes(path: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """The name and shape of every tensor in a .safetensors file, from its header alone."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as exc:  # safetensors raises its own error types for bad headers
        raise WeightsError(f"{path}: not a readable safetensors file ({exc})") from None


def build_from_metadata(meta: dict[str, Any], source: str = "",
                        shapes: dict[str, tuple[int, ...]] | None = None) -> nn.Module:
    """The model ``meta`` describes, after checking it like user input; with the
    file's tensor ``shapes``, also that the model is exactly what the file holds
    (checked on the meta device, before any memory is allocated)."""
    from .metadata import build_checked, validate

    meta = validate(meta, source, architectures())
    arch = architectures()[meta["arch"]]
    if shapes is not None:
        model = build_checked(arch, meta["arch_args"], shapes, source)
    else:
        try:
            model = arch(**meta["arch_args"])
        except (ValueError, TypeError) as exc:
            raise WeightsError(f"{source}: bad metadata: {exc}") from None
    if meta.get("model_name"):
        model.model_name = meta["model_name"]
    model.pretrained_cfg = {
        "preprocess": meta.get("preprocess") or Preprocess().to_dict(),
        "labels": meta.get("labels"),
        "source": source,
    }
    return model


def load_weights(path: str | os.PathLike) -> nn.Module:
    """Rebuild the model saved by :func:`save_weights`, with its weights loaded
    (``strict=True``) and ``model.pretrained_cfg`` set from the metadata."""
    _require_safetensors()
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such weights file")
    meta = read_metadata(path)
    if not meta or meta.get("format") != FORMAT:
        raise WeightsError(
            f"{path}: has no mobilenet metadata; load a torchvision/timm checkpoint with "
            "mobilenet.create_model(NAME, pretrained=PATH)"
        )
    model = build_from_metadata(meta, str(path), tensor_shapes(path))
    tensors = load_file(str(path))
    check_finite(tensors, path)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"{path}: tensors do not fit its own metadata: {exc}") from None
    return model.eval()
