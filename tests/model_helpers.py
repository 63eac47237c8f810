"""Models with realistic numbers for tests that compare outputs."""

from __future__ import annotations

import torch
from torch import nn

import mobilenet


def settled(name: str, num_classes: int = 10, res: int = 64, **options) -> nn.Module:
    """A fresh model whose BatchNorm statistics come from data and whose classifier is
    not near zero, so logits have a realistic scale for the comparisons."""
    torch.manual_seed(0)
    model = mobilenet.create_model(name, num_classes=num_classes, **options)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None
            m.reset_running_stats()
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(8, 3, res, res))
        nn.init.normal_(model.classifier.weight, 0.0, 0.1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = 0.1
    return model.eval()
