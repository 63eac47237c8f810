"""int8 vs fp32 of a trained segmentation model on coco128's VOC masks: the ONNX int8
and ExecuTorch int8 files `mobilenet export --int8` writes, calibrated on train2017
photos, evaluated on the val2017 images that have masks (mIoU, pixel accuracy, and the
share of pixels whose class agrees with fp32 eager).

    python benchmarks/dense_int8.py WEIGHTS [--resolution 160] [--calib-images 100]
        [--formats onnx,executorch] [--json OUT]

WEIGHTS: a segmentation model's weights (`mobilenet train --task segmentation` writes
them in its run folder). Images are resized to R x R (the files' input is fixed at
export time) for every row alike.
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
from mobilenet.runtimes.common import model_preprocess
from mobilenet.segmentation.data import SegmentationFolder
from mobilenet.segmentation.metrics import SegmentationMetrics
from mobilenet.weights.sources import load_weights_file

SHARED = Path(os.environ.get("MOBILENET_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
SUFFIX = {"onnx": ".onnx", "executorch": ".pte"}


@torch.no_grad()
def logits(fn, x: torch.Tensor, batch: int = 10) -> torch.Tensor:
    return torch.cat([fn(x[i : i + batch]) for i in range(0, len(x), batch)])


def evaluate(weights: str, resolution: int, formats: list[str], calib_images: int, out: Path) -> dict:
    model = load_weights_file(weights).eval()
    pre = model_preprocess(model)
    val = SegmentationFolder.coco128(SHARED / "coco128", "val2017", size=(resolution, resolution),
                                     mean=tuple(pre.mean), std=tuple(pre.std))
    x = torch.stack([val[i][0] for i in range(len(val))])
    y = torch.stack([val[i][1] for i in range(len(val))])
    rows: dict[str, dict] = {}
    reference = None

    def record(name: str, out_logits: torch.Tensor, seconds: float, size: int | None = None) -> None:
        nonlocal reference
        metrics = SegmentationMetrics(model.num_classes)
        metrics.update(out_logits, y)
        m = metrics.compute()
        pred = out_logits.argmax(1)
        reference = pred if reference is None else reference
        rows[name] = {"miou": m["miou"], "pixel_accuracy": m["pixel_accuracy"],
                      "agree_fp32": float((pred == reference).float().mean()), "bytes": size,
                      "seconds": round(seconds, 1)}
        print(name, rows[name], flush=True)

    start = time.perf_counter()
    record("fp32 eager", logits(model, x), time.perf_counter() - start)
    for fmt in formats:
        for int8 in (False, True):
            start = time.perf_counter()
            path = out / f"seg{'-int8' if int8 else ''}{SUFFIX[fmt]}"
            report = export_model(model, fmt, path, example=x[:4], int8=int8, resolution=resolution,
                                  calib=SHARED / "coco128" / "images" / "train2017" if int8 else None,
                                  calib_limit=calib_images)
            artifact = load_artifact(path)
            record(f"{fmt}{' int8' if int8 else ''}", logits(artifact, x), time.perf_counter() - start,
                   report.bytes)
    return {"weights": weights, "resolution": resolution, "val_images": len(x), "calib_images": calib_images,
            "rows": rows}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("weights")
    p.add_argument("--resolution", type=int, default=160)
    p.add_argument("--calib-images", type=int, default=100)
    p.add_argument("--formats", default="onnx,executorch")
    p.add_argument("--out", help="folder for the files (default: a temporary one)")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = evaluate(args.weights, args.resolution, args.formats.split(","), args.calib_images,
                          Path(args.out or tmp))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
