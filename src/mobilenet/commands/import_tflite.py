"""``mobilenet import-tflite``: Google's TFLite MobileNet classifier -> our weights file."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import CommandError, format_table, print_json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import-tflite",
        help="convert a TFLite MobileNet classifier into our weights file",
        description="Read a TFLite MobileNet classifier (V1/V2 of any width and resolution, V3 where the "
        "layout is known; uint8 files are dequantized), and write our .safetensors weights with the "
        "file's preprocessing ((x-128)/128, 87.5% centre crop, bilinear) and labels.",
    )
    p.add_argument("file", metavar="FILE.tflite", help="the TFLite file")
    p.add_argument("-o", "--output", required=True, metavar="OUT.safetensors", help="weights file to write")
    p.add_argument("--labels", metavar="FILE", help="class names, one a line (default: imagenet_labels.txt "
                   "beside the file, else ImageNet's with 'background' first for 1001 classes)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def default_labels(num_classes: int) -> list[str] | None:
    from ..images import imagenet_labels

    if num_classes == 1000:
        return imagenet_labels()
    if num_classes == 1001:  # Google's classifiers: output 0 is "background"
        return ["background", *imagenet_labels()]
    return None


def read_labels(path: str, num_classes: int) -> list[str]:
    from ..files import read_text_file

    try:
        labels = [line.strip() for line in read_text_file(path, "--labels").splitlines() if line.strip()]
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    if len(labels) != num_classes:
        raise CommandError(f"--labels {path}: has {len(labels)} names, the model has {num_classes} outputs")
    return labels


def run(args: argparse.Namespace) -> int:
    from .. import progress

    with progress.reporting(not args.json):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from .. import progress

    progress.step("loading torch")
    from ..files import check_writable_dir
    from ..weights.store import WeightsError, save_weights
    from ..weights.tflite import load_tflite

    out = Path(args.output)
    if out.suffix != ".safetensors":
        raise CommandError(f"-o {out}: the output must end in .safetensors")
    if not Path(args.file).is_file():
        raise CommandError(f"{args.file}: no such file")
    try:
        check_writable_dir(out.parent if str(out.parent) else ".", "-o folder")
    except PermissionError as exc:
        raise CommandError(str(exc)) from None
    progress.step(f"reading {args.file}")
    try:
        model, info = load_tflite(args.file)
    except (WeightsError, ValueError, OSError) as exc:
        raise CommandError(f"{args.file}: {exc}" if args.file not in str(exc) else str(exc)) from None
    classes = info["num_classes"]
    labels = read_labels(args.labels, classes) if args.labels else info.get("labels") or default_labels(classes)
    summary = {
        "file": str(args.file),
        "output": str(out),
        "model": info.get("model_name") or info.get("arch"),
        "version": info.get("version"),
        "width": info.get("width"),
        "resolution": info.get("resolution"),
        "num_classes": classes,
        "quantized": bool(info.get("quantized")),
    }
    progress.step(f"writing {out}")
    save_weights(model, out, preprocess=info["preprocess"], labels=labels, source=str(args.file),
                 tflite={k: v for k, v in summary.items() if k not in ("file", "output")})
    if args.json:
        print_json(summary)
    else:
        print(format_table([summary], list(summary)))
    return 0
