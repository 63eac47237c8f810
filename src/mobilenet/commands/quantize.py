"""``mobilenet quantize``: int8 PT2E post-training quantization to a ``.pt2`` file."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from . import CommandError, LazyChoices, format_table, print_json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "quantize",
        help="int8 post-training quantization (PT2E, per-channel weights) calibrated on real images",
        description="Fold BatchNorm, export the graph, quantize it with the backend's PT2E quantizer (int8 "
        "per-channel weights), calibrate on images from --calib, and write a .pt2 ExportedProgram that "
        "`mobilenet eval`/`bench` and mobilenet.runtimes.load_artifact read. For ONNX or ExecuTorch int8 files "
        "use `mobilenet export --int8`.",
    )
    p.add_argument("--weights", required=True, metavar="FILE", help="our .safetensors weights, or a TFLite classifier")
    p.add_argument("--calib", required=True, metavar="DIR", help="folder of calibration images")
    p.add_argument("--calib-images", type=int, default=200, metavar="N", help="images used to calibrate (200)")
    p.add_argument("--backend", choices=LazyChoices("mobilenet.quantize", "BACKENDS"), default="x86", metavar="BACKEND",
                   help="x86: Inductor/oneDNN and ONNX Runtime; xnnpack: ExecuTorch (default x86)")
    p.add_argument("-o", "--output", metavar="OUT.pt2", help="file to write (default: WEIGHTS-int8.pt2)")
    p.add_argument("--check-images", type=int, default=100, metavar="N",
                   help="further images from --calib, not calibrated on, on which the int8 file's top-1 is "
                   "compared with fp32 (100; the calibration images if the folder has no others)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import progress

    with progress.reporting(not (args.json or args.quiet)):
        return _run(args, getattr(args, "started", time.perf_counter()))


def _run(args: argparse.Namespace, start: float) -> int:
    from .. import progress

    progress.step("loading torch and the weights")
    import torch

    from ..quantize import QuantizeError, calibration_batches, model_preprocess, quantize_ptq
    from ..runtimes import load_artifact
    from ..runtimes.common import artifact_metadata
    from ..runtimes.pt2 import save_program
    from .export import load_model

    if args.calib_images < 1:
        raise CommandError(f"--calib-images must be at least 1, got {args.calib_images}")
    if args.check_images < 0:
        raise CommandError(f"--check-images must be 0 or more, got {args.check_images}")
    out = Path(args.output) if args.output else Path(args.weights).with_name(Path(args.weights).stem + "-int8.pt2")
    if out.suffix != ".pt2":
        raise CommandError(f"-o {out}: quantize writes a .pt2 ExportedProgram; name it *.pt2 "
                           "(for .onnx or .pte use `mobilenet export --int8`)")
    from ..files import check_writable_file

    check_writable_file(out)  # a read-only -o fails now, not after calibrating
    model = load_model(args.weights, None)
    pre = model_preprocess(model)
    try:
        progress.step(f"reading up to {args.calib_images + args.check_images} images from {args.calib}")
        images = torch.cat(calibration_batches(args.calib, pre, limit=args.calib_images + args.check_images))
        calib, held_out = images[: args.calib_images], images[args.calib_images:]
        batches = list(calib.split(25))
        quantized = quantize_ptq(model, batches, backend=args.backend)
    except QuantizeError as exc:
        raise CommandError(str(exc)) from None
    meta = artifact_metadata(model, fmt="pt2", int8=True, backend=args.backend, resolution=pre.resolution,
                             max_batch=1024)
    progress.step(f"writing {out}")
    save_program(quantized, out, example=batches[0][:2], metadata=meta)
    # The written file, loaded back, against the float model: on images it was not calibrated
    # on where the folder has more, else (said so) on the calibration images.
    check_on = held_out if len(held_out) else calib
    basis = (f"{len(held_out)} images from {args.calib} not used for calibration" if len(held_out) else
             f"the {len(calib)} calibration images ({args.calib} has no other images)")
    progress.step(f"checking the written file against fp32 on {basis}")
    check = load_artifact(out)
    with torch.no_grad():
        got = torch.cat([check(b) for b in check_on.split(25)])
        want = torch.cat([model(b) for b in check_on.split(25)])
    row = {
        "file": str(out), "backend": args.backend, "bytes": out.stat().st_size,
        "weights_bytes": Path(args.weights).stat().st_size, "calib_images": len(calib),
        "top1_agree_fp32": float((got.argmax(1) == want.argmax(1)).float().mean()),
        "agreement_images": len(check_on), "agreement_on": basis,
        "max_abs_diff_fp32": float((got - want).abs().max()), "logit_scale": float(want.abs().max()),
        "seconds": time.perf_counter() - start,  # the command's wall time
    }
    if args.json:
        print_json(row)
        return 0
    print(format_table([{"file": row["file"], "backend": row["backend"], "MB": round(row["bytes"] / 1e6, 2),
                         "fp32 weights MB": round(row["weights_bytes"] / 1e6, 2),
                         "calib images": row["calib_images"],
                         "top-1 = fp32": f"{row['top1_agree_fp32']:.1%}", "seconds": round(row["seconds"], 1)}],
                       ["file", "backend", "MB", "fp32 weights MB", "calib images", "top-1 = fp32", "seconds"]))
    print(f"\ntop-1 = fp32: how often the int8 file's top class is the fp32 model's, on {basis}. "
          "seconds: the whole command.")
    return 0
