"""``mobilenet export``: a file for any runtime in :mod:`mobilenet.runtimes`, checked in that runtime."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import CommandError, LazyChoices, format_table, print_json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a model to ONNX, ExecuTorch, TorchScript, OpenVINO, ...: fp32, int8 or bf16",
        description="BatchNorm is folded into the convs, the file is written, loaded back in its own runtime "
        "(ONNX Runtime, ExecuTorch, torch.jit.load, OpenVINO, LiteRT, ...), run on a batch and compared with eager "
        "PyTorch; a file that differs by more than 1e-4 x the largest logit (fp32) is not written. --int8 "
        "quantizes with the runtime's own quantizer (ONNX Runtime's quantize_static for ONNX, PT2E + "
        "XNNPACKQuantizer for ExecuTorch, NNCF for OpenVINO, litert-torch's PT2E quantizer for TFLite), "
        "calibrated on --calib images.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--weights", metavar="FILE", help="our .safetensors weights, or a TFLite MobileNet classifier")
    src.add_argument("--model", metavar="NAME", help="a registry model with fresh weights (see `mobilenet info`)")
    p.add_argument("--format", required=True, choices=LazyChoices("mobilenet.runtimes", "formats"), metavar="FORMAT",
                   help="what to write: %(choices)s")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="file to write")
    p.add_argument("--int8", action="store_true", help="int8 (onnx, executorch, openvino, tflite): quantize with --calib images")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="what the runtime computes in: bf16 (openvino, on a CPU with native bf16); default fp32")
    p.add_argument("--calib", metavar="DIR", help="folder of calibration images for --int8")
    p.add_argument("--calib-images", type=int, default=200, metavar="N", help="images used to calibrate (200)")
    p.add_argument("--images", metavar="DIR", help="check the file on real images from DIR (default: --calib, "
                   "else a random batch)")
    p.add_argument("--num-classes", type=int, default=None,
                   help="classes for --model (default: the model's own, 1000 for classifiers)")
    p.add_argument("--no-nms", action="store_true", help="detectors: write the raw head (box offsets, logits, "
                   "anchors) instead of boxes, scores and labels decoded and suppressed in the graph")
    p.add_argument("--resolution", type=int, help="input size (default: the weights' preprocessing, else 224)")
    p.add_argument("--max-batch", type=int, default=128, help="largest batch an ExecuTorch file accepts (128)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=run)


def load_model(weights: str | None, name: str | None, num_classes: int | None = None):
    """The model a command names: ``--weights`` (any weights file) or ``--model``."""
    from ..registry import create_model
    from ..weights.store import WeightsError

    if name is not None:
        try:
            return create_model(name, num_classes=num_classes).eval()
        except (ValueError, TypeError) as exc:
            raise CommandError(str(exc)) from None
    from ..weights.sources import load_weights_file

    try:
        return load_weights_file(weights)
    except (WeightsError, ValueError, OSError) as exc:
        raise CommandError(str(exc)) from None


def real_batch(folder: str, preprocess, argument: str, count: int = 8):
    from ..runtimes.common import QuantizeError, calibration_batches

    try:
        return calibration_batches(folder, preprocess, limit=count, batch_size=count)[0]
    except QuantizeError as exc:
        raise CommandError(str(exc).replace("--calib", argument)) from None


def run(args: argparse.Namespace) -> int:
    from .. import progress

    with progress.reporting(not (args.json or args.quiet)):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from .. import progress

    progress.step("loading torch and the model")
    from ..export import ExportError, check_request, export_model
    from ..runtimes.common import model_preprocess

    try:
        runtime = check_request(args.format, int8=args.int8, max_batch=args.max_batch, precision=args.precision)
        runtime.check_path(Path(args.output))
        runtime.check_installed()
    except ExportError as exc:
        raise CommandError(str(exc)) from None
    if args.int8 and not args.calib:
        raise CommandError("--int8 needs --calib DIR, a folder of real images to calibrate on")
    if args.calib and not args.int8:
        raise CommandError("--calib is only used with --int8")
    from ..limits import MAX_RESOLUTION

    if args.resolution is not None and not 32 <= args.resolution <= MAX_RESOLUTION:
        raise CommandError(f"--resolution {args.resolution}: use 32 to {MAX_RESOLUTION}")
    if args.num_classes is not None and args.num_classes < 1:
        raise CommandError(f"--num-classes {args.num_classes}: expected a positive integer")
    if args.calib_images < 1:
        raise CommandError(f"--calib-images {args.calib_images}: expected a positive integer")
    from ..files import check_writable_file

    check_writable_file(args.output)  # a read-only -o fails now, not after the export
    model = load_model(args.weights, args.model, args.num_classes)
    from ..detection.predict import is_detector

    if is_detector(model):
        return run_detection(model, args)
    if args.no_nms:
        raise CommandError("--no-nms is for detectors; this model is a classifier")
    pre = model_preprocess(model)
    if args.resolution:
        from dataclasses import replace

        pre = replace(pre, resolution=args.resolution)
    folder = args.images or args.calib
    example = real_batch(folder, pre, "--images" if args.images else "--calib") if folder else None
    try:
        report = export_model(model, args.format, args.output, example=example, int8=args.int8, calib=args.calib,
                              resolution=pre.resolution, max_batch=args.max_batch, calib_limit=args.calib_images,
                              precision=args.precision)
    except ExportError as exc:
        raise CommandError(str(exc)) from None
    row = report.to_dict()
    row["verified_on"] = f"{len(example)} images from {folder}" if folder else "a random batch"
    if args.json:
        print_json(row)
        return 0
    print(format_table([{
        "file": report.path, "format": report.format + (" int8" if report.int8 else f" {report.precision}"),
        "MB": round(report.bytes / 1e6, 2), "max |diff|": report.max_abs_diff, "vs": report.reference,
        "tolerance": report.tolerance, "export s": round(report.export_s, 1),
        "runtime ms": round(report.runtime_ms, 1),
    }], ["file", "format", "MB", "max |diff|", "vs", "tolerance", "export s", "runtime ms"]))
    agree = f"; top-1 agrees with fp32 on {report.top1_agree_fp32:.0%}" if report.int8 else ""
    print(f"checked in its runtime on {row['verified_on']} (batch {report.verify_batch}, "
          f"{report.resolution} px){agree}: ok")
    for note in report.notes:
        print(f"note: {note}")
    return 0


def run_detection(model, args: argparse.Namespace) -> int:
    """A detector: ONNX with its decoding and NMS in the graph, or ExecuTorch with its decoding in
    the program and NMS in the loader (or either as the raw head), checked in its runtime against
    eager PyTorch (see mobilenet.detection.export and mobilenet.detection.executorch)."""
    from ..detection.export import DetectionExportError, export_onnx

    if args.format not in ("onnx", "executorch"):
        raise CommandError(f"--format {args.format}: detectors export to ONNX or ExecuTorch only "
                           "(--format onnx or executorch)")
    if args.precision != "fp32":
        raise CommandError("detectors export in fp32 or --int8 (no --precision bf16)")
    images = read_photos(args.images, "--images", 4) if args.images else None
    size = (args.resolution, args.resolution) if args.resolution else None
    try:
        if args.format == "onnx":
            if args.int8:
                from ..detection.quantize import export_onnx_int8

                report = export_onnx_int8(model, args.output, nms=not args.no_nms, image_size=size, images=images,
                                          calib=read_photos(args.calib, "--calib", args.calib_images))
            else:
                report = export_onnx(model, args.output, nms=not args.no_nms, image_size=size, images=images)
        else:
            from ..detection.executorch import export_pte

            calib = read_photos(args.calib, "--calib", args.calib_images) if args.int8 else None
            report = export_pte(model, args.output, nms=not args.no_nms, image_size=size, images=images,
                                int8=args.int8, calib=calib)
    except DetectionExportError as exc:
        raise CommandError(str(exc)) from None
    row = report.to_dict()
    row["format"], row["int8"] = args.format, args.int8
    row["verified_on"] = f"{report.checked_images} images from {args.images}" if args.images else "random images"
    if args.json:
        print_json(row)
        return 0
    runtime = "ONNX Runtime" if args.format == "onnx" else "ExecuTorch"
    kind = args.format + (" int8" if args.int8 else "") + ("" if report.nms else " raw head")
    print(format_table([{"file": report.path, "format": kind,
                         "MB": round(report.bytes / 1e6, 2), "input": "x".join(map(str, report.image_size)),
                         "network |diff|/scale": report.max_raw_diff, "boxes |diff| px": report.max_box_diff}],
                       ["file", "format", "MB", "input", "network |diff|/scale", "boxes |diff| px"]))
    agree = f"; {report.eager_agreement:.0%} of fp32 eager detections within 1e-3 px" if report.nms else ""
    if args.int8 and report.nms:
        agree = (f"; {report.int8_match:.0%} of fp32 eager detections scoring >= 0.3 found (same label, IoU >= 0.5)"
                 if report.int8_match is not None else "; no fp32 eager detection scores >= 0.3 on these images "
                 "(an untrained model?), so int8 agreement is not measured")
    print(f"checked in {runtime} on {row['verified_on']}: ok{agree}")
    return 0


def read_photos(folder: str, argument: str, limit: int):
    """The first ``limit`` images of ``folder`` as [3, H, W] floats in [0, 1]."""
    from torchvision.io import ImageReadMode, decode_image

    from ..images import find_images

    files = find_images(folder)[:limit] if Path(folder).is_dir() else []
    if not files:
        raise CommandError(f"{argument} {folder}: no images found; point it at a folder of photos")
    try:
        return [decode_image(str(f), mode=ImageReadMode.RGB).float() / 255 for f in files]
    except (RuntimeError, OSError) as exc:
        raise CommandError(f"{argument}: {exc}") from None
