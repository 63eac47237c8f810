"""``mobilenet predict``: top-5 classes of images with trained weights."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from . import CommandError, format_table, print_json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="top-5 classes of images with trained weights",
        description="Classify images with a weights file (ours, torchvision's or timm's; `mobilenet "
        "import-tflite` makes ours from Google's TFLite files) or an official tag, using the "
        "preprocessing and labels the weights came with. Any image mode works (grayscale, RGBA, "
        "CMYK, 16-bit).",
    )
    # "*" not "+": `--pretrained IMAGE` lets argparse take the image as the tag; run() gives it back
    p.add_argument("images", nargs="*", metavar="IMAGE", help="image files")
    p.add_argument("--weights", metavar="FILE", help="weights: .safetensors, a run folder, .pth/.bin, .tflite, or a file "
                   "`mobilenet export` wrote (.onnx, .pte, .xml, ...: run in its own runtime)")
    p.add_argument("--model", metavar="NAME", help="model name (found from the weights' shapes if omitted)")
    p.add_argument("--pretrained", nargs="?", const=True, metavar="TAG",
                   help="official weights of --model: the default ones, or --pretrained=TAG "
                   "(`mobilenet info --weights` lists the tags)")
    p.add_argument("--top", type=int, default=5, metavar="K", help="how many classes to show (default: 5)")
    p.add_argument("--out", metavar="DIR", help="detectors: write each image with its boxes and labels drawn "
                   "as DIR/<name>_boxes.png; segmentation models: with the coloured mask blended over it as "
                   "DIR/<name>_mask.png (an existing file is not overwritten)")
    p.add_argument("--score-min", type=float, default=0.3, metavar="S",
                   help="detectors: show detections scoring at least S (default: 0.3)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..images import ImageError, load_image
    from ..predict import classify, load_model
    from ..weights.store import WeightsError

    images = list(args.images)
    pretrained = args.pretrained
    # `--pretrained IMAGE ...` : argparse took the first image as the tag
    if isinstance(pretrained, str) and Path(pretrained).is_file():
        images.insert(0, pretrained)
        pretrained = True
    if not images:
        raise CommandError("give one or more IMAGE files")
    if args.top < 1:
        raise CommandError(f"--top {args.top}: give 1 or more")
    if args.weights and pretrained:
        raise CommandError("give --weights FILE or --pretrained, not both")
    if not args.weights and not args.model:
        raise CommandError("give --weights FILE, or --model NAME --pretrained[=TAG]")
    if not args.weights and not pretrained:
        raise CommandError(f"--model {args.model} needs weights: add --pretrained[=TAG] or --weights FILE")
    # A file that is not an image (`predict photos/*` meeting a COPYRIGHT file) is reported and
    # skipped, as training skips it; all of them bad fails before any weights load.
    names, pictures = [], []
    for path in images:
        try:
            pictures.append(load_image(path))
            names.append(path)
        except ImageError as exc:
            print(f"mobilenet predict: skipped {exc}", file=sys.stderr)
    if not pictures:
        raise CommandError(f"none of the {len(images)} files given is an image that can be read" if len(images) > 1
                           else "the file given is not an image that can be read (see above)")
    try:
        model = load_model(args.weights, args.model, pretrained)
        from ..detection.predict import is_detector

        if is_detector(model):
            return run_detection(model, images, args)
        from ..train.dense_eval import dense_task

        if dense_task(model) == "segmentation":
            return run_segmentation(model, names, args)
        results = classify(model, pictures, k=args.top)
    except (ImageError, WeightsError, ValueError, TypeError) as exc:
        raise CommandError(str(exc)) from None
    results = [r.__class__(name, r.top) for name, r in zip(names, results)]
    if args.json:
        print_json([r.to_dict() for r in results])
        return 0
    rows = []
    for r in results:
        for rank, g in enumerate(r.top, 1):
            # one fixed format for every probability (not 0.25 beside 1.2e-05)
            rows.append({"image": r.image if rank == 1 else "", "rank": rank, "probability": f"{g.probability:.4f}",
                         "class": g.index, "label": g.label})
    print(format_table(rows, ["image", "rank", "probability", "class", "label"], {"class": "index"}))
    if len(names) < len(images):
        print(f"\n{len(images) - len(names)} of {len(images)} files skipped: not images (see stderr)")
    return 0


def _outputs(args: argparse.Namespace, images: list[str], suffix: str) -> list[Path]:
    """``--out DIR``'s files, one per image; refused before any work if one would be overwritten."""
    from ..files import check_writable_dir

    if not args.out:
        return []
    try:
        folder = check_writable_dir(args.out, "--out")
    except OSError as exc:
        raise CommandError(str(exc)) from None
    outputs = [folder / f"{Path(p).stem}_{suffix}.png" for p in images]
    taken = [str(o) for o in outputs if o.exists()]
    if taken or len(set(outputs)) < len(outputs):
        raise CommandError(f"--out: {', '.join(taken) or 'two images share a name'} would be overwritten; "
                           "choose another folder or move them")
    return outputs


def run_segmentation(model, images: list[str], args: argparse.Namespace) -> int:
    """The classes found in each image (share of its pixels); with ``--out``, the mask drawn on it."""
    from ..segmentation.overlay import draw, segment

    outputs = _outputs(args, images, "mask")
    results = _drawn(segment(model, images), images, outputs, draw)

    def rows(r) -> list[dict]:
        return [{"image": r.image if i == 0 else "", "class": name, "pixels": f"{share:.1%}"}
                for i, (name, share) in enumerate(list(r.shares.items())[: args.top])]

    return _report(args, results, rows, ["image", "class", "pixels"])


def run_detection(model, images: list[str], args: argparse.Namespace) -> int:
    """Boxes, scores and labels per image; with ``--out``, the pictures with them drawn."""
    from ..detection.predict import detect, draw

    if not 0.0 <= args.score_min <= 1.0:
        raise CommandError(f"--score-min {args.score_min}: give a score in [0, 1]")
    outputs = _outputs(args, images, "boxes")
    results = _drawn(detect(model, images, args.score_min), images, outputs, draw)

    def rows(r) -> list[dict]:
        return [{"image": r.image if i == 0 else "", "label": d.name if d else "(none)",
                 "score": d.score if d else None, "box": ", ".join(f"{v:.1f}" for v in d.box) if d else ""}
                for i, d in enumerate(r.detections or [None])]

    return _report(args, results, rows, ["image", "label", "score", "box"])


def _drawn(results: list, images: list[str], outputs: list[Path], draw) -> list:
    """Each dense result drawn on its image into its ``--out`` file (none without ``--out``)."""
    if not outputs:
        return results
    return [dataclasses.replace(r, drawn=str(draw(p, r, o))) for p, r, o in zip(images, results, outputs)]


def _report(args: argparse.Namespace, results: list, rows, columns: list[str]) -> int:
    """Dense results as JSON (``--json``), or as a table of each one's ``rows`` and the files drawn."""
    if args.json:
        print_json([r.to_dict() for r in results])
        return 0
    print(format_table([row for r in results for row in rows(r)], columns))
    for r in results:
        if r.drawn:
            print(f"wrote {r.drawn}")
    return 0
