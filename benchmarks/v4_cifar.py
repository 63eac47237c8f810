"""MobileNetV4 conv_small against V3-Small on CIFAR-10, then int8 V4 against fp32.

(a) Trains ``mobilenet_v4_conv_small`` and ``mobilenet_v3_small_100`` with
``mobilenet train --recipe paper`` on ../shared/data/cifar10-test (10,000 32x32
JPEGs, the seeded stratified 80/20 split), the same command but for ``--model``,
and reports each one's held-out top-1, epochs, wall time and the load average.
(b) Quantizes the trained V4 to int8 with ``export_model`` (ONNX Runtime, ExecuTorch
and OpenVINO, each with its own quantizer), calibrated on images of the TRAINING
split (stratified, seeded), and measures top-1 agreement with the fp32 model and
top-1 on the 2,000 held-out images, none of which was calibrated on.

    python benchmarks/v4_cifar.py [--epochs 20] [--out DIR] [--sequential]
    python benchmarks/v4_cifar.py --recipe quick --epochs 8 --sequential  # the int8 test's recipe
    python benchmarks/v4_cifar.py --skip-train --out DIR   # (b) on DIR's trained V4
    python benchmarks/v4_cifar.py --run RUN_DIR            # (b) on any run folder of cifar10-test

Runs concurrently by default (``--threads 1`` each), which on a shared machine gives
the pair the same conditions. Not a test: numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MOBILENET_SHARED_DATA", ROOT.parent / "shared" / "data")) / "cifar10-test"
MODELS = ("mobilenet_v4_conv_small", "mobilenet_v3_small_100")
# The paper recipes scaled down, identical for both models (see docs/training.md):
# EMA 0.9999 averages over ~10,000 steps, longer than the whole run, so it is off; both
# use the cosine schedule (V3's "x0.01 every 3 epochs" would leave it lr ~ 0 after 6).
SCALED = ["--recipe", "paper", "--resolution", "32", "--batch-size", "128", "--warmup-epochs", "1",
          "--schedule", "cosine", "--ema-decay", "0", "--seed", "0"]
# Ours for a model that int8 can be judged on in minutes (tests/test_v4_cifar.py): the
# `quick` recipe, the whole 32 px image at eval, no label smoothing (docs/deployment.md:
# with it, agreement was 0.5 points lower).
QUICK = ["--recipe", "quick", "--resolution", "32", "--crop-pct", "1.0", "--batch-size", "64",
         "--label-smoothing", "0", "--seed", "0"]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").exists() else "n/a"


def train(models: tuple[str, ...], epochs: int, out: Path, sequential: bool, extra: list[str]) -> dict:
    def command(model: str) -> list[str]:
        return [sys.executable, "-m", "mobilenet", "train", "--model", model, "--data", str(DATA), *extra,
                "--epochs", str(epochs), "--threads", "1", "--output", str(out / "runs"),
                "--name", f"{model}-cifar", "--json", "--overwrite"]

    rows, procs = {}, {}
    for model in models:
        log(f"training {model} for {epochs} epochs (load {load()}): {' '.join(command(model)[1:])}")
        procs[model] = (subprocess.Popen(command(model), stdout=subprocess.PIPE, text=True), time.time(), load())
        if sequential:
            _finish(model, procs.pop(model), rows)
    for model, proc in procs.items():
        _finish(model, proc, rows)
    return rows


def _finish(model: str, proc, rows: dict) -> None:
    popen, start, load_start = proc
    stdout, _ = popen.communicate()
    if popen.returncode:
        raise SystemExit(f"training {model} failed (exit {popen.returncode})")
    summary = json.loads(stdout)
    final = summary["history"][-1]
    rows[model] = {"val_top1": final["val_acc"], "val_top5": final["val_top5"], "wall_s": round(time.time() - start), "load_start": load_start,
                   "load_end": load(),
                   "summary": {k: v for k, v in summary.items() if k not in ("history", "skipped_files")}}
    log(f"{model}: held-out top-1 {final['val_acc']} in {rows[model]['wall_s']} s (load {load()})")


def int8_agreement(run: Path, formats: list[str], calib_images: int, out: Path) -> dict:
    import torch

    from mobilenet.export import export_model, load_artifact
    from mobilenet.images import load_image
    from mobilenet.runtimes.common import model_preprocess
    from mobilenet.train.data import load_data
    from mobilenet.weights.sources import load_weights_file

    model = load_weights_file(str(run / "weights.safetensors")).eval()
    transform = model_preprocess(model).transform()
    split = load_data(str(DATA), val_split=0.2, seed=0, log=lambda m: None)  # the split training used
    order = torch.randperm(len(split.train.items), generator=torch.Generator().manual_seed(1)).tolist()
    calib_items = [split.train.items[i] for i in order[:calib_images]]  # training images, every class

    def tensors(items) -> torch.Tensor:
        return torch.stack([transform(load_image(p) if isinstance(p, Path) else p) for p, _ in items])

    calib = list(tensors(calib_items).split(25))
    x, y = tensors(split.val.items), torch.tensor([label for _, label in split.val.items])
    predict = lambda fn: torch.cat([fn(b).argmax(1) for b in x.split(100)])  # noqa: E731
    with torch.no_grad():
        ref = predict(model)
    with torch.no_grad():
        top2 = torch.cat([model(b).topk(2, dim=1).values for b in x.split(100)])
    gap = top2[:, 0] - top2[:, 1]  # how far fp32's winner is ahead: what int8 rounding must not cross
    wide = gap > gap.median()
    rows = {"fp32 eager": {"top1": float((ref == y).float().mean()), "agree_fp32": 1.0,
                           "max_abs_logit": round(float(top2[:, 0].abs().max()), 2),
                           "median_top2_gap": round(float(gap.median()), 3)}}
    log(f"fp32 held-out top-1 {rows['fp32 eager']['top1']:.4f} on {len(y)} images; calibrating on {calib_images}")
    for fmt in formats:
        path = out / f"v4s-int8-calib{calib_images}.{ {'executorch': 'pte', 'openvino': 'xml'}.get(fmt, fmt)}"
        for old in (path, path.with_suffix(".bin")):  # this script's own files from an earlier run
            old.unlink(missing_ok=True)
        start = time.time()
        report = export_model(model, fmt, path, example=x[:32], int8=True, calib=calib)
        artifact = load_artifact(path)
        with torch.no_grad():
            pred = predict(artifact)
        rows[f"int8 {fmt}"] = {"top1": float((pred == y).float().mean()), "agree_fp32": float((pred == ref).float().mean()),
                               "agree_wider_gap_half": float((pred == ref)[wide].float().mean()),
                               "bytes": report.bytes, "seconds": round(time.time() - start, 1)}
        log(f"int8 {fmt}: {rows[f'int8 {fmt}']}")
    return {"heldout_images": len(y), "calib_images": calib_images, "calib_from": "training split", "rows": rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--out", type=Path, default=ROOT.parent / "_scratch_v4_cifar")
    parser.add_argument("--sequential", action="store_true", help="train one model after the other")
    parser.add_argument("--skip-train", action="store_true", help="only (b), on the V4 already trained in --out")
    parser.add_argument("--formats", default="onnx,executorch,openvino")
    parser.add_argument("--calib-images", default="200", help="comma-separated counts to try (200)")
    parser.add_argument("--recipe", choices=("paper", "quick"), default="paper",
                        help="paper: each paper's recipe scaled down; quick: the int8 test's (no label smoothing)")
    parser.add_argument("--run", type=Path, default=None, help="only (b), on this run folder's model")
    parser.add_argument("--extra", default="", help='further train flags for both models, e.g. "--bn-momentum 0.1"')
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"{DATA} is missing (set MOBILENET_SHARED_DATA)", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    flags = [*(SCALED if args.recipe == "paper" else QUICK), *args.extra.split()]
    result = {"data": str(DATA), "epochs": args.epochs, "command_flags": " ".join(flags)}
    if args.run is not None:
        result = {"data": str(DATA), "run": str(args.run),
                  "int8": [int8_agreement(args.run, args.formats.split(","), int(n), args.out)
                           for n in args.calib_images.split(",")]}
        print(json.dumps(result, indent=2, default=str))
        return 0
    if not args.skip_train:
        result["train"] = train(MODELS, args.epochs, args.out, args.sequential, flags)
    result["int8"] = [int8_agreement(args.out / "runs" / f"{MODELS[0]}-cifar", args.formats.split(","), int(n), args.out)
                      for n in args.calib_images.split(",")]
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
