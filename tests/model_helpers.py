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


def assert_file_runs_like_its_weights(main, capsys, weights, file, data, image, images: int = 12) -> None:
    """`mobilenet eval` and `predict` of an exported ``file`` give what its ``weights`` give:
    same images, top-1 and (nearly) loss; same labels and top probability for ``image``."""
    import json

    import pytest

    results = []
    for w in (weights, file):
        assert main(["eval", "--weights", str(w), "--data", str(data), "--json"]) == 0
        results.append(json.loads(capsys.readouterr().out))
    assert results[0]["images"] == results[1]["images"] == images
    assert results[0]["top1"] == results[1]["top1"] and abs(results[0]["loss"] - results[1]["loss"]) < 1e-3
    for w in (weights, file):
        assert main(["predict", str(image), "--weights", str(w), "--json"]) == 0
        results.append(json.loads(capsys.readouterr().out)[0]["top"])
    assert [g["label"] for g in results[2]] == [g["label"] for g in results[3]]
    assert results[2][0]["probability"] == pytest.approx(results[3][0]["probability"], abs=1e-4)
