"""Optimizer, parameter groups and the learning-rate schedule.

Depthwise filters and BatchNorm parameters get no weight decay unless asked: the
V1 paper (Sec. 3.2) puts "very little or no weight decay" on depthwise filters as
they have so few parameters; torchvision's references do the same for norms.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import TrainConfig


def param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict]:
    decay, no_decay = [], []
    for module in model.modules():
        is_norm = isinstance(module, nn.modules.batchnorm._BatchNorm)
        is_depthwise = isinstance(module, nn.Conv2d) and module.groups > 1 and module.groups == module.in_channels
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            skip = (is_norm and not cfg.decay_norm) or (is_depthwise and name == "weight" and not cfg.decay_depthwise)
            (no_decay if skip else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    groups, lr = param_groups(model, cfg), cfg.peak_lr()
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, nesterov=False)
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(groups, lr=lr, alpha=cfg.rmsprop_decay, eps=cfg.rmsprop_eps, momentum=cfg.momentum)
    return torch.optim.AdamW(groups, lr=lr)


def lr_factor(cfg: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """Multiplier of the peak lr at optimizer step ``step`` (0-based)."""
    total = cfg.epochs * steps_per_epoch
    warm = round(cfg.warmup_epochs * steps_per_epoch)
    if step < warm:
        return (step + 1) / warm
    if cfg.schedule == "constant":
        return 1.0
    if cfg.schedule == "step":
        period = max(1, round(cfg.step_epochs * steps_per_epoch))
        return cfg.step_gamma ** ((step - warm) // period)
    progress = (step - warm) / max(1, total - warm)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(cfg, step, steps_per_epoch))
