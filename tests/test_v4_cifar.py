"""MobileNetV4 conv_small trained on real photos keeps its top-1 in int8 (issue #11).

Slow (17 minutes on the shared, loaded 2-core machine): trains V4 conv_small for 4 epochs on
../shared/data/cifar10-test at 32 px, calibrates int8 on images of the training split
and compares int8 with fp32 on the 2,000 images training held out (none calibrated on).
benchmarks/v4_cifar.py does the same with the paper recipe and more formats.
"""

from __future__ import annotations

import pytest
import torch

from conftest import shared_path


@pytest.mark.slow
@pytest.mark.xfail(reason="issue #11's 95% bar is not met yet: run 2026-11-29 (17 min on the loaded 2-core machine) "
                   "gave ONNX int8 93.9% agreement; a 4-epoch V4 has small logit margins (docs/deployment.md)",
                   raises=AssertionError, strict=False)
def test_v4_conv_small_trained_on_cifar_int8_agrees_with_fp32(tmp_path):
    from mobilenet.export import export_model, load_artifact
    from mobilenet.images import load_image
    from mobilenet.runtimes.common import model_preprocess
    from mobilenet.train import Trainer
    from mobilenet.train.config import TrainConfig
    from mobilenet.train.data import load_data
    from mobilenet.weights import load_weights

    data = shared_path("cifar10-test")
    cfg = TrainConfig(model="mobilenet_v4_conv_small", data=str(data), resolution=32, crop_pct=1.0, epochs=4,
                      batch_size=64, output=str(tmp_path), name="run")
    Trainer(cfg, progress=False, log=lambda m: None).run()
    model = load_weights(tmp_path / "run" / "weights.safetensors").eval()
    t = model_preprocess(model).transform()
    split = load_data(str(data), val_split=cfg.val_split, seed=cfg.seed, log=lambda m: None)
    order = torch.randperm(len(split.train.items), generator=torch.Generator().manual_seed(1))[:200].tolist()
    calib = list(torch.stack([t(load_image(split.train.items[i][0])) for i in order]).split(25))
    x = torch.stack([t(load_image(p)) for p, _ in split.val.items])
    y = torch.tensor([label for _, label in split.val.items])
    held_out = {p for p, _ in split.val.items}
    assert not held_out & {split.train.items[i][0] for i in order}  # agreement is on images not calibrated on

    def predict(fn) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([fn(b).argmax(1) for b in x.split(100)])

    ref = predict(model)
    assert (ref == y).float().mean() > 0.25, "the model did not learn: agreement would mean little"
    for fmt, suffix in (("onnx", "onnx"), ("executorch", "pte")):
        path = tmp_path / f"int8.{suffix}"
        export_model(model, fmt, path, example=x[:16], int8=True, calib=calib)
        agree = float((predict(load_artifact(path)) == ref).float().mean())
        assert agree >= 0.95, (fmt, agree)
