"""LiteRT round trip and int8 accuracy of Google's TFLite MobileNets on
../shared/data/imagenet-sample.

Google's file is imported (`load_tflite`), exported again with `--format tflite`
(fp32, and int8 calibrated on every 5th image: 200), and every file is run in LiteRT
(XNNPACK). Rows: the imported model in eager PyTorch, Google's original uint8 file in
LiteRT, our fp32 file, our fp32 file imported back into PyTorch, our int8 file.
top-1 on all 1000 images and on the 800 not used for calibration; agreement of top-1
with the imported fp32 model on the same sets. Output index = sorted-wnid index + 1
(index 0 is "background").

    python benchmarks/litert_accuracy.py [v2|v1] [--images N] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from mobilenet.export import export_model
from mobilenet.images import find_images, load_image
from mobilenet.runtimes import load_artifact
from mobilenet.weights.tflite import load_tflite

SHARED = Path(os.environ.get("MOBILENET_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
FILES = {"v2": "mobilenet_v2_1.0_224_quant.tflite", "v1": "mobilenet_v1_0.25_128_quant.tflite"}


@torch.no_grad()
def predict(fn, x: torch.Tensor, batch: int = 50) -> torch.Tensor:
    return torch.cat([fn(x[i : i + batch]).argmax(1) for i in range(0, len(x), batch)])


def google_file(path: Path):
    """Google's uint8 file in LiteRT: float input quantized as the file says, one image
    at a time (XNNPACK refuses to resize this file's batch)."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path))
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    scale, zero = inp["quantization"]

    def run(x: torch.Tensor) -> torch.Tensor:
        q = (x.permute(0, 2, 3, 1) / scale + zero).round().clamp(0, 255).to(torch.uint8).contiguous()
        outs = []
        for image in q.split(1):
            it.set_tensor(inp["index"], image.numpy())
            it.invoke()
            outs.append(torch.from_numpy(it.get_tensor(out["index"]).astype("float32")))
        return torch.cat(outs)

    return run


def evaluate(which: str, out: Path, images: int) -> dict:
    source = SHARED / "tflite" / FILES[which]
    model, info = load_tflite(source)
    files = find_images(SHARED / "imagenet-sample")[:images]
    transform = info["preprocess"].transform()
    x = torch.stack([transform(load_image(p)) for p in files])
    y = torch.arange(len(files)) + 1
    calib_idx = torch.arange(0, len(x), 5)[:200]
    held = torch.ones(len(x), dtype=torch.bool)
    held[calib_idx] = False
    calib = [x[calib_idx[i : i + 25]] for i in range(0, len(calib_idx), 25)]
    rows: dict[str, dict] = {}
    preds: dict[str, torch.Tensor] = {}

    def record(name: str, fn, seconds: float = 0.0, **extra) -> None:
        t = time.time()
        pred = preds[name] = predict(fn, x)
        ref = preds.get("fp32 eager (imported)", pred)
        rows[name] = {
            "top1": float((pred == y).float().mean()),
            "top1_heldout": float((pred[held] == y[held]).float().mean()),
            "agree_fp32": float((pred == ref).float().mean()),
            "agree_fp32_heldout": float((pred[held] == ref[held]).float().mean()),
            "seconds": round(seconds + time.time() - t, 1), **extra,
        }
        print(which, name, rows[name], file=sys.stderr, flush=True)

    record("fp32 eager (imported)", model)
    record("Google's uint8 file (LiteRT)", google_file(source), bytes=source.stat().st_size)
    for int8 in (False, True):
        path = out / f"{which}-{'int8' if int8 else 'fp32'}.tflite"
        t = time.time()
        report = export_model(model, "tflite", path, example=x[1:9], int8=int8, calib=calib if int8 else None)
        record(f"ours {'int8' if int8 else 'fp32'} (LiteRT)", load_artifact(path), time.time() - t,
               bytes=report.bytes, verify_max_abs_diff=report.max_abs_diff, verify_reference=report.reference)
        if not int8:
            again, _ = load_tflite(path)
            record("ours fp32, imported back (eager)", again)
    rows["_setup"] = {"images": len(x), "calibration_images": len(calib_idx), "heldout_images": int(held.sum())}
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("which", choices=sorted(FILES))
    parser.add_argument("--images", type=int, default=1000, help="first N images of imagenet-sample (1000)")
    parser.add_argument("--out", type=Path, default=None, help="folder for the .tflite files (a temporary one)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="litert-"))
    out.mkdir(parents=True, exist_ok=True)
    print(json.dumps(evaluate(args.which, out, args.images), indent=2))


if __name__ == "__main__":
    main()
