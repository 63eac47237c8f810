"""int8 vs fp32 of a trained SSDLite on coco128: the ONNX and ExecuTorch files
`mobilenet export --int8` writes (backbone and heads int8, decoding and NMS float),
calibrated on train2017 photos, scored with COCO's evaluator on val2017 and on train2017
(a detector trained on coco128's 128 train photos detects confidently only there), and
how many fp32 eager detections scoring >= --score-min each file gives again (same label,
IoU >= 0.5): `matched` by any of its detections (the export report's `int8_match`; a
file keeps up to 300 per image, most of them faint), `matched_confident` by one that
also scores >= --score-min.

    python benchmarks/det_int8.py WEIGHTS [--splits val2017,train2017] [--calib-images 128]
        [--formats onnx,executorch] [--score-min 0.3] [--json OUT]

WEIGHTS: a detector's weights (`mobilenet train --task detection` writes them in its run
folder). Every file takes the detector's own input size; each photo is resized to it
(as eager does) and the boxes scaled back.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from mobilenet.detection.evaluate import CocoDetection, evaluate_detector
from mobilenet.detection.export import iou_match
from mobilenet.export import load_artifact
from mobilenet.weights.sources import load_weights_file

SHARED = Path(os.environ.get("MOBILENET_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
SUFFIX = {"onnx": ".onnx", "executorch": ".pte"}


def coco128(split: str, model) -> CocoDetection:
    root = SHARED / "coco128"
    data = CocoDetection(root / "images" / split, root / "annotations" / f"instances_{split}.json")
    if data.num_classes > model.num_classes:  # a detector trained on contiguous labels
        data = CocoDetection(root / "images" / split, root / "annotations" / f"instances_{split}.json",
                             contiguous_labels=True)
    return data


def calibration_photos(limit: int) -> list[torch.Tensor]:
    from torchvision.io import ImageReadMode, decode_image

    files = sorted((SHARED / "coco128" / "images" / "train2017").glob("*.jpg"))[:limit]
    return [decode_image(str(f), mode=ImageReadMode.RGB).float() / 255 for f in files]


def export(model, fmt: str, int8: bool, path: Path, calib: list[torch.Tensor], check: list[torch.Tensor]):
    if fmt == "onnx":
        from mobilenet.detection.export import export_onnx
        from mobilenet.detection.quantize import export_onnx_int8

        if int8:
            return export_onnx_int8(model, path, calib=calib, images=check)
        return export_onnx(model, path, images=check)
    from mobilenet.detection.executorch import export_pte

    return export_pte(model, path, images=check, int8=int8, calib=calib if int8 else None)


def evaluate(weights: str, data: dict[str, CocoDetection], formats: list[str], calib: list[torch.Tensor],
             score_min: float, out: Path, int8_only: bool = False) -> dict:
    """fp32 eager and each file in ``formats`` (fp32 and int8, or int8 only) on each
    dataset of ``data``; int8 calibrated on ``calib`` ([3, H, W] photos in [0, 1])."""
    model = load_weights_file(weights).eval()
    check = [next(iter(data.values()))[i][0] for i in range(2)]
    rows: dict[str, dict] = {}
    eager: dict[str, list] = {}

    def score(name: str, fn, seconds: float, size: int | None = None) -> None:
        row: dict = {"bytes": size, "export_s": round(seconds, 1)}
        for split, dataset in data.items():
            outputs: list = []

            def run(images, fn=fn, outputs=outputs):
                got = fn(images)
                outputs.extend([d["boxes"], d["scores"], d["labels"]] for d in got)
                return got

            m = evaluate_detector(run, dataset)
            if name == "fp32 eager":
                eager[split] = outputs
            found = kept = of = 0
            confident_here = sum(int((got[1] >= score_min).sum()) for got in outputs)
            for want, got in zip(eager[split], outputs):
                hit, n = iou_match(want, got, score_min=score_min)
                confident = [t[got[1] >= score_min] for t in got]
                found, kept, of = found + hit, kept + iou_match(want, confident, score_min=score_min)[0], of + n
            row[split] = {"AP": m["AP"], "AP50": m["AP50"], "AP75": m["AP75"], "detections": m["detections"],
                          "confident": confident_here, "eager_confident": of, "matched": found / of if of else None,
                          "matched_confident": kept / of if of else None}
        rows[name] = row
        print(name, json.dumps(row), flush=True)

    with torch.no_grad():
        score("fp32 eager", model, 0.0)
    for fmt in formats:
        for int8 in ((True,) if int8_only else (False, True)):
            start = time.perf_counter()
            path = out / f"det{'-int8' if int8 else ''}{SUFFIX[fmt]}"
            report = export(model, fmt, int8, path, calib, check)
            score(f"{fmt}{' int8' if int8 else ''}", load_artifact(path).as_module(), time.perf_counter() - start,
                  report.bytes)
    return {"weights": weights, "splits": list(data), "calib_images": len(calib), "score_min": score_min,
            "input": model.size, "rows": rows}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("weights")
    p.add_argument("--splits", default="val2017,train2017")
    p.add_argument("--formats", default="onnx,executorch")
    p.add_argument("--calib-images", type=int, default=128)
    p.add_argument("--score-min", type=float, default=0.3)
    p.add_argument("--int8-only", action="store_true", help="skip the fp32 files")
    p.add_argument("--keep", metavar="DIR", help="write the files here (default: a temporary folder)")
    p.add_argument("--json", metavar="OUT", help="also write the figures as JSON")
    args = p.parse_args()
    model = load_weights_file(args.weights)
    data = {split: coco128(split, model) for split in args.splits.split(",")}
    calib, formats = calibration_photos(args.calib_images), args.formats.split(",")
    if args.keep:
        Path(args.keep).mkdir(parents=True, exist_ok=True)
        result = evaluate(args.weights, data, formats, calib, args.score_min, Path(args.keep), args.int8_only)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            result = evaluate(args.weights, data, formats, calib, args.score_min, Path(tmp), args.int8_only)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
