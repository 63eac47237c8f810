"""OpenVINO on Google's TFLite MobileNets (imported as float), on
../shared/data/imagenet-sample: fp32 (f32 inference precision), bf16, and int8 from
NNCF post-training quantization under several NNCF options, to choose the defaults
of ``mobilenet export --format openvino --int8``.

Calibration: every 5th image (200); top-1 and agreement with fp32 eager on the 800
held out (and on all 1000). Output index = sorted-wnid index + 1 ("background" is 0).

    python benchmarks/openvino_nncf.py [v2|v1] [--variants default,full_bc,...] [--json OUT]
    python benchmarks/openvino_nncf.py --weights RUN/weights.safetensors --data ../shared/data/cifar10-test

With ``--weights``: a model trained by ``mobilenet train`` on ``--data``, scored on the
images training held out (the same seeded split), calibrated on 200 training images.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from mobilenet.deploy import deploy
from mobilenet.images import find_images, load_image
from mobilenet.runtimes import openvino as ovrt
from mobilenet.weights.tflite import load_tflite

SHARED = Path(os.environ.get("MOBILENET_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
FILES = {"v2": "mobilenet_v2_1.0_224_quant.tflite", "v1": "mobilenet_v1_0.25_128_quant.tflite"}
BASE = ovrt.NNCFOptions(preset="performance", fast_bias_correction=True, batch_images=1)
VARIANTS = {
    "default": BASE,
    "full_bc": replace(BASE, fast_bias_correction=False),
    "mixed": replace(BASE, preset="mixed"),
    "ignore_classifier": replace(BASE, ignore_classifier=True),
    "ignore_se": replace(BASE, ignore_se=True),
    "batch25": replace(BASE, batch_images=25),
    "mixed_full_bc": replace(BASE, preset="mixed", fast_bias_correction=False),
}


@torch.no_grad()
def predict(fn, x: torch.Tensor, batch: int = 50) -> torch.Tensor:
    return torch.cat([fn(x[i : i + batch]).argmax(1) for i in range(0, len(x), batch)])


def trained_sample(weights: str, data: str):
    """Held-out images of ``data`` (the split training used) and 200 training images to calibrate on."""
    from mobilenet.runtimes.common import model_preprocess
    from mobilenet.train.config import TrainConfig
    from mobilenet.train.data import load_data
    from mobilenet.weights import load_weights

    model = load_weights(weights).eval()
    cfg = TrainConfig(model="mobilenet_v3_small_100", data=data)
    split = load_data(data, val_split=cfg.val_split, seed=cfg.seed, log=lambda m: None)
    t = model_preprocess(model).transform()
    x = torch.stack([t(load_image(p)) for p, _ in split.val.items])
    y = torch.tensor([c for _, c in split.val.items])
    calib = [torch.stack([t(load_image(p)) for p, _ in split.train.items[i : i + 25]]) for i in range(0, 200, 25)]
    return x, y, torch.ones(len(x), dtype=torch.bool), calib, model


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("which", nargs="?", default="v2", choices=sorted(FILES))
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--json", metavar="OUT")
    parser.add_argument("--weights", help="our weights trained on --data (instead of a TFLite model)")
    parser.add_argument("--data", help="the folder --weights was trained on")
    args = parser.parse_args()
    import openvino as ov

    if args.weights:
        x, y, held, calib, model = trained_sample(args.weights, args.data)
        args.which = Path(args.weights).parent.name
    else:
        model, info = load_tflite(SHARED / "tflite" / FILES[args.which])
        files = find_images(SHARED / "imagenet-sample")
        transform = info["preprocess"].transform()
        x = torch.stack([transform(load_image(p)) for p in files])
        y = torch.arange(len(files)) + 1
        calib_idx = torch.arange(0, len(x), 5)
        held = torch.ones(len(x), dtype=torch.bool)
        held[calib_idx] = False
        calib = [x[calib_idx[i : i + 25]] for i in range(0, len(calib_idx), 25)]
    rows: dict[str, dict] = {}
    fp32_pred = predict(model, x)

    def record(name: str, pred: torch.Tensor, seconds: float, **extra) -> None:
        rows[name] = {"top1_heldout": round(float((pred[held] == y[held]).float().mean()), 4),
                      "agree_heldout": round(float((pred[held] == fp32_pred[held]).float().mean()), 4),
                      "top1_all": round(float((pred == y).float().mean()), 4), "seconds": round(seconds, 1), **extra}
        print(args.which, name, json.dumps(rows[name]), flush=True)

    record("fp32 eager", fp32_pred, 0.0)
    fused = deploy(model)
    ov_model = ovrt._convert(fused, x[:2])
    core = ov.Core()
    for precision in ("fp32", "bf16"):
        if precision not in ovrt.RUNTIME.native_precisions():
            continue
        t = time.time()
        run, ran = ovrt._compiled(core, ov_model, precision, None)
        record(f"openvino {precision}", predict(run, x), time.time() - t, ran=ran)
    for name in args.variants.split(","):
        options = VARIANTS[name]
        t = time.time()
        quantized, _ = ovrt.quantize(ov_model.clone(), calib, options)
        quantize_s = time.time() - t
        run, ran = ovrt._compiled(core, quantized, "fp32", None)
        record(f"openvino int8 {name}", predict(run, x), time.time() - t, quantize_s=round(quantize_s, 1),
               float_parts=ran, options=asdict(options))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
