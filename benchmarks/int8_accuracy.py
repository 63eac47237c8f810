"""int8 vs fp32 top-1 of Google's TFLite MobileNets (imported as float) on
../shared/data/imagenet-sample: PT2E int8 graph, ONNX int8 and ExecuTorch int8 files.

Calibration: every 5th image (200); accuracy on all 1000 and on the 800 held out.
Output index = sorted-wnid index + 1 (index 0 is "background").

    python benchmarks/int8_accuracy.py [v2|v1] [--formats pt2,onnx,executorch] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from mobilenet.export import export_model, load_artifact
from mobilenet.images import find_images, load_image
from mobilenet.quantize import quantize_ptq
from mobilenet.weights.tflite import load_tflite

SHARED = Path(os.environ.get("MOBILENET_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
FILES = {"v2": "mobilenet_v2_1.0_224_quant.tflite", "v1": "mobilenet_v1_0.25_128_quant.tflite"}


def load_sample(preprocess, folder: Path) -> tuple[torch.Tensor, torch.Tensor]:
    files = find_images(folder)
    transform = preprocess.transform()
    x = torch.stack([transform(load_image(p)) for p in files])
    return x, torch.arange(len(files)) + 1


@torch.no_grad()
def predict(fn, x: torch.Tensor, batch: int = 50) -> torch.Tensor:
    return torch.cat([fn(x[i : i + batch]).argmax(1) for i in range(0, len(x), batch)])


def evaluate(which: str, formats: list[str], out: Path) -> dict:
    model, info = load_tflite(SHARED / "tflite" / FILES[which])
    x, y = load_sample(info["preprocess"], SHARED / "imagenet-sample")
    calib_idx = torch.arange(0, len(x), 5)
    held = torch.ones(len(x), dtype=torch.bool)
    held[calib_idx] = False
    calib = [x[calib_idx[i : i + 25]] for i in range(0, len(calib_idx), 25)]
    rows = {}

    def record(name: str, pred: torch.Tensor, seconds: float, size: int | None = None) -> None:
        ref = rows.get("fp32 eager", {}).get("_pred", pred)
        rows[name] = {
            "top1": float((pred == y).float().mean()),
            "top1_heldout": float((pred[held] == y[held]).float().mean()),
            "agree_fp32": float((pred == ref).float().mean()),
            "bytes": size, "seconds": round(seconds, 1), "_pred": pred,
        }
        print(which, name, {k: v for k, v in rows[name].items() if k != "_pred"}, flush=True)

    t = time.time()
    record("fp32 eager", predict(model, x), time.time() - t)
    if "pt2" in formats:
        t = time.time()
        q = quantize_ptq(model, calib, backend="x86")
        record("int8 PT2E x86 (eager reference graph)", predict(q, x), time.time() - t)
    for fmt in [f for f in formats if f != "pt2"]:
        for int8 in (False, True):
            path = out / f"{which}-{'int8' if int8 else 'fp32'}.{fmt}"
            t = time.time()
            report = export_model(model, fmt, path, example=x[:4], int8=int8, calib=calib if int8 else None)
            art = load_artifact(path)
            record(f"{'int8' if int8 else 'fp32'} {fmt}", predict(art, x), time.time() - t, report.bytes)
    for r in rows.values():
        r.pop("_pred")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("which", choices=sorted(FILES))
    parser.add_argument("--formats", default="pt2,onnx,executorch")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="int8-"))
    rows = evaluate(args.which, args.formats.split(","), out)
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
