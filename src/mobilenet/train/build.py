"""The model a run trains: built from the registry, or loaded from pretrained
weights (ours, a TFLite file, a registry tag or checkpoint) with a new classifier
for the data's classes; and the preprocessing its weights are saved with."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from ..images import Preprocess
from ..registry import MODELS, create_model
from .config import TrainConfig


def load_pretrained_model(source: str, model_name: str | None = None) -> nn.Module:
    """Any weights file (:mod:`mobilenet.weights.sources`; a foreign checkpoint's
    model found from its shapes unless named), or ``create_model(model_name, pretrained=tag)``."""
    from ..weights.hub import _is_path
    from ..weights.sources import load_weights_file

    if Path(source).exists() or _is_path(source):
        return load_weights_file(source, model_name)
    if model_name is None:
        raise ValueError(f"--pretrained {source}: no such file (a weights tag needs --model NAME too)")
    return create_model(model_name, pretrained=source)


def build_model(cfg: TrainConfig, num_classes: int, classes: list[str], data_crop_pct: float,
                explicit_model: bool = True) -> tuple[nn.Module, Preprocess]:
    if cfg.pretrained:
        model = load_pretrained_model(cfg.pretrained, cfg.model if explicit_model else None)
        base = Preprocess.from_dict((getattr(model, "pretrained_cfg", None) or {}).get("preprocess") or {})
        if model.num_classes != num_classes or (model.pretrained_cfg or {}).get("labels") != classes:
            model.reset_classifier(num_classes)
        set_dropout(model, cfg.dropout)
        set_bn_momentum(model, cfg.bn_momentum)
        pre = Preprocess.from_dict({**base.to_dict(), "resolution": cfg.resolution or base.resolution,
                                    **({"crop_pct": cfg.crop_pct} if cfg.crop_pct else {})})
        return model, pre
    options = {k: v for k, v in (("dropout", cfg.dropout), ("bn_momentum", cfg.bn_momentum)) if v is not None}
    model = create_model(cfg.model, num_classes=num_classes, **options)
    small_data = data_crop_pct == 1.0  # digits, CIFAR: tiny images, trained at 32 px
    resolution = cfg.resolution or (32 if small_data else MODELS[cfg.model].resolution)
    return model, Preprocess(resolution=resolution, crop_pct=cfg.crop_pct or data_crop_pct)


def set_dropout(model: nn.Module, p: float | None) -> None:
    if p is not None and isinstance(getattr(model, "dropout", None), nn.Dropout):
        model.dropout = nn.Dropout(p)
        if hasattr(model, "arch_args") and "dropout" in model.arch_args:
            model.arch_args["dropout"] = p


def set_bn_momentum(model: nn.Module, momentum: float | None) -> None:
    if momentum is None:
        return
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = momentum
    if hasattr(model, "arch_args") and "bn_momentum" in model.arch_args:
        model.arch_args["bn_momentum"] = momentum


def freeze_batchnorm(model: nn.Module) -> None:
    """BatchNorm layers use (and keep) their running statistics while training."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
