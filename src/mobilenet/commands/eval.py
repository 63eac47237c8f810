"""``mobilenet eval``: top-1, top-5, loss, per-class accuracy, a confusion-matrix
PNG and images/s for weights on a data set."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import CommandError, format_table, print_json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="accuracy, loss, per-class accuracy and a confusion matrix of weights on data",
        description="Evaluate weights (our .safetensors, a run folder, a .tflite file, or a file from `mobilenet export` / `quantize`: .onnx, .pte, .pt2, TorchScript, OpenVINO .xml, run in its own runtime) on --data: digits, "
        "cifar10, cifar100 (their held-out split), a folder with val/, a folder of class folders, or with "
        "--labels-from-filenames a flat folder of <class>_<anything>.<ext> files (ImageNet's <wnid>_<name>.JPEG; "
        "classes are the sorted prefixes; a model with one extra 'background' output first is handled). "
        "A detector reports COCO box AP (pycocotools) on --data laid out as COCO (annotations/instances_val2017.json, "
        "images/val2017/); a segmentation model mean and per-class IoU on images/val2017/ with class-index masks "
        "(masks_voc/val2017/ or --masks, classes_voc.txt).",
    )
    p.add_argument("--weights", metavar="W", help=".safetensors, run folder, .tflite, or .onnx/.pte/.pt2/.ts/.xml; "
                   "with --model also a torchvision checkpoint of that model")
    p.add_argument("--model", metavar="NAME", help="the registered model a foreign checkpoint (--weights) holds, or "
                   "whose official weights --pretrained loads")
    p.add_argument("--pretrained", nargs="?", const=True, metavar="TAG",
                   help="evaluate --model's official weights (the default ones, or --pretrained=TAG)")
    p.add_argument("--data", required=True, metavar="D", help="digits, cifar10, cifar100, or a folder")
    p.add_argument("--masks", metavar="DIR", help="segmentation: the masks folder inside --data (default masks/, "
                   "else masks_voc/, else the only masks_*/)")
    p.add_argument("--resolution", type=int, metavar="PX", help="segmentation: short side images are resized to "
                   "(default: the weights' own)")
    p.add_argument("--labels-from-filenames", action="store_true",
                   help="flat folder: the class of a file is its name up to the first '_'")
    p.add_argument("--split", choices=("val", "train", "all"), default="val",
                   help="which part of the data (default val: the held-out part training used)")
    p.add_argument("--val-split", type=float, default=0.2, help="held-out fraction, as in training (default 0.2)")
    p.add_argument("--seed", type=int, default=0, help="split seed, as in training (default 0)")
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--amp", choices=("none", "bf16", "fp16", "auto"), default="none")
    p.add_argument("--confusion", metavar="PNG", help="write the confusion matrix to this PNG (default: none, except "
                   "confusion-DATA.png inside a run folder given as --weights)")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=run)


def load_any(weights: str, model_name: str | None = None):
    from ..train.build import load_pretrained_model

    path = Path(weights)
    if path.is_dir():
        path = path / "weights.safetensors"
    if not path.is_file():
        raise CommandError(f"--weights {weights}: no such file")
    from ..runtimes import load_artifact, owner

    if owner(path) is not None:  # exported or int8 files run in their own runtime
        return load_artifact(path).as_module(), path
    return load_pretrained_model(str(path), model_name), path


def items_for(args: argparse.Namespace):
    from ..evaluate import filename_items
    from ..train.data import load_data

    if args.labels_from_filenames:
        if not Path(args.data).is_dir():
            raise CommandError(f"--data {args.data}: --labels-from-filenames needs a folder")
        return filename_items(args.data)
    split = load_data(args.data, val_split=args.val_split, seed=args.seed, log=lambda m: print(m, file=sys.stderr))  # stdout: results only
    parts = {"val": split.val.items, "train": split.train.items, "all": split.train.items + split.val.items}
    return parts[args.split], split.classes


def confusion_target(args: argparse.Namespace) -> Path | None:
    """Where the confusion PNG goes: --confusion, or into the run folder being evaluated;
    nothing is written beside a weights file or into a data folder unasked."""
    if args.confusion:
        png = Path(args.confusion)
        if png.suffix.lower() != ".png":
            raise CommandError(f"--confusion {png}: the matrix is written as PNG; give a file name ending in .png")
        if not png.resolve().parent.is_dir():
            raise CommandError(f"--confusion {png}: no such folder {png.resolve().parent}")
        return png
    if Path(args.weights).is_dir():
        return Path(args.weights) / f"confusion-{Path(args.data).name or 'data'}.png"
    return None


def run(args: argparse.Namespace) -> int:
    from .. import progress

    with progress.reporting(not (args.json or args.quiet)):
        return _run(args)


def check_numbers(args: argparse.Namespace) -> None:
    """The numeric options, before any work: one line naming the option."""
    import math

    from ..limits import MAX_RESOLUTION, MAX_WORKERS, MIN_RESOLUTION

    if not (math.isfinite(args.val_split) and 0 < args.val_split < 1):
        raise CommandError(f"--val-split {args.val_split}: expected a fraction between 0 and 1 (as in training)")
    if args.batch_size < 1:
        raise CommandError(f"--batch-size {args.batch_size}: expected a positive integer")
    if not 0 <= args.workers <= MAX_WORKERS:
        raise CommandError(f"--workers {args.workers}: expected 0 (load in this process) to {MAX_WORKERS}")
    if args.resolution is not None and not MIN_RESOLUTION <= args.resolution <= MAX_RESOLUTION:
        raise CommandError(f"--resolution {args.resolution}: expected {MIN_RESOLUTION} to {MAX_RESOLUTION} px")


def _run(args: argparse.Namespace) -> int:
    from .. import progress

    check_numbers(args)
    png = confusion_target(args)
    progress.step("loading torch and the weights")
    from ..evaluate import confusion_png, evaluate
    from ..images import Preprocess
    from ..train.data import DataError
    from ..train.distributed import pick_device
    from ..runtimes import ExportError
    from ..weights.store import WeightsError

    import torch

    from ..train.distributed import cpu_threads

    torch.set_num_threads(cpu_threads(0))  # the idle cores: see docs/training.md
    try:
        if args.weights and args.pretrained:
            raise CommandError("give --weights W or --model NAME --pretrained, not both")
        if args.weights:
            model, path = load_any(args.weights, args.model)
        elif args.model and args.pretrained:
            from ..registry import create_model

            model, path = create_model(args.model, pretrained=args.pretrained).eval(), Path(args.model)
        else:
            raise CommandError("give --weights W (or --model NAME --pretrained[=TAG])")
        from ..train.dense_eval import dense_task

        task = dense_task(model)
        if task is not None:
            return _run_dense(args, model, path, task)
        progress.step(f"reading {args.data}")
        items, classes = items_for(args)
        pre = Preprocess.from_dict((getattr(model, "pretrained_cfg", None) or {}).get("preprocess") or {})
        progress.step(f"evaluating {len(items):,} images")
        result = evaluate(model, items, classes, preprocess=pre, batch_size=args.batch_size, workers=args.workers,
                          device=pick_device(args.device), amp=args.amp)
    except (DataError, WeightsError, ExportError, ValueError, OSError) as exc:
        raise CommandError(str(exc)) from None
    # The work is done: whatever happens to the PNG, the results are printed.
    png_error = None
    if png is not None:
        try:
            confusion_png(result, png, f"{path.name} on {args.data}: top-1 {result.top1:.4f}")
        except (OSError, ValueError) as exc:
            png_error = f"cannot write the confusion matrix {png}: {getattr(exc, 'strerror', None) or exc}"
            png = None
    from ..cli import allocator

    out = result.to_dict()
    out.update(weights=str(path), data=args.data, confusion_png=None if png is None else str(png),
               allocator=allocator(), layout="channels_last")
    if args.json:
        del out["confusion"]
        print_json(out)
    else:
        print_tables(args, path, result, png)
    if png_error:
        asked = args.confusion is not None
        print(f"mobilenet eval: {'error' if asked else 'note'}: {png_error} (the results above are complete)",
              file=sys.stderr)
        return 2 if asked else 0
    return 0


def _run_dense(args: argparse.Namespace, model, path: Path, task: str) -> int:
    """COCO box AP of a detector, mean and per-class IoU of a segmentation model."""
    from ..train.data import DataError
    from ..train import dense_eval

    if args.split not in dense_eval.SPLITS:
        raise CommandError(f"--split {args.split}: a {task} model is evaluated on val or train")
    if args.confusion:
        raise CommandError("--confusion is for classifiers")
    show = not (args.json or args.quiet)
    try:
        if task == "detection":
            out = dense_eval.evaluate_detection(model, args.data, args.split, args.batch_size, progress=show)
        else:
            out = dense_eval.evaluate_segmentation(model, args.data, args.split, args.masks, args.resolution,
                                                   progress=show)
    except (DataError, ValueError, OSError) as exc:
        raise CommandError(str(exc)) from None
    out.update(weights=str(path), data=args.data, split=args.split)
    if args.json:
        print_json(out)
        return 0
    if task == "detection":
        cols = ["AP", "AP50", "AP75", "APs", "APm", "APl"]
        print(format_table([{"weights": path.name, "data": args.data, "images": out["images"],
                             **{c: round(out[c], 4) for c in cols}, "images/s": round(out["images_per_s"], 1)}],
                           ["weights", "data", "images", *cols, "images/s"]))
        print(f"\nCOCO box AP (pycocotools COCOeval) on {out['annotations']}: {out['detections']} detections; "
              "APs/APm/APl: small/medium/large objects (0 where the split has none)")
        return 0
    print(format_table([{"weights": path.name, "data": args.data, "images": out["images"], "px": out["resolution"],
                         "mIoU": round(out["miou"] or 0.0, 4), "pixel acc": round(out["pixel_accuracy"] or 0.0, 4),
                         "images/s": round(out["images_per_s"], 1)}],
                       ["weights", "data", "images", "px", "mIoU", "pixel acc", "images/s"]))
    print(f"\nper-class IoU ({out['classes_present']} classes present in the masks or the predictions; the mean is "
          "over them):")
    print(format_table([{"class": c, "IoU": None if v is None else round(v, 4)} for c, v in out["per_class_iou"].items()],
                       ["class", "IoU"]))
    return 0


def print_tables(args: argparse.Namespace, path: Path, result, png: Path | None) -> None:
    from ..cli import allocator

    print(format_table([{"weights": path.name, "data": args.data, "images": result.images, "top-1": round(result.top1, 4),
                         "top-5": round(result.top5, 4), "loss": round(result.loss, 4),
                         "images/s": round(result.images_per_s, 1)}],
                       ["weights", "data", "images", "top-1", "top-5", "loss", "images/s"]))
    rows = sorted(result.per_class, key=lambda r: (r["top1"] is None, r["top1"] if r["top1"] is not None else 0))
    shown = rows if len(rows) <= 20 else rows[:10]
    print(f"\nper-class top-1{' (the 10 worst)' if len(rows) > 20 else ''}:")
    print(format_table([{"class": r["class"], "images": r["images"], "top-1": r["top1"]} for r in shown],
                       ["class", "images", "top-1"]))
    where = f"confusion matrix: {png}" if png else "confusion matrix: not written (--confusion PNG writes it)"
    print(f"\n{where}  (batch {args.batch_size}, channels_last, fp32; allocator: {allocator()})")
