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
    """Our ``.safetensors``, a ``.tflite`` file, or ``create_model(model_name, pretrained=source)``
    (the model found from the checkpoint's shapes when ``model_name`` is None)."""
    path = Path(source)
    if path.suffix.lower() == ".tflite":
        from ..weights.tflite import load_tflite

        return load_tflite(path)[0]
    if path.is_file() and path.suffix.lower() == ".safetensors":
        from ..weights.store import load_weights, read_metadata

        if read_metadata(path):
            return load_weights(path)
    if model_name is None and path.is_file():
        from ..weights.convert import detect_format, infer_model_name
        from ..weights.hub import read_checkpoint
        from ..weights.store import WeightsError

        state, _ = read_checkpoint(path)
        try:
            model_name = infer_model_name(state, detect_format(state))
        except WeightsError as exc:
            raise WeightsError(f"{source}: {str(exc).split(';')[0]}; it is not a checkpoint of a registered MobileNet "
                               "(`mobilenet info` lists them)") from None
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
