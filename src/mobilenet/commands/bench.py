"""``mobilenet bench``: latency and throughput of each model and runtime, beside
torchvision's and timm's same architecture measured in the same run."""

from __future__ import annotations

import argparse
import math
import os
import sys

from ..limits import MAX_RESOLUTION
from . import CommandError, format_table, print_json

DEFAULT_MODELS = ["mobilenet_v1_100", "mobilenet_v2_100", "mobilenet_v3_large_100", "mobilenet_v3_small_100"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="latency and throughput per model and runtime, side by side with torchvision and timm",
        description="Warm up, then time every route (model x runtime x batch) interleaved with the peers' same "
        "architecture until each median is known to within 2%: median and interquartile range, images/s, "
        "achieved GMAC/s beside the CPU's theoretical peak, and ours/theirs ratios.",
    )
    p.add_argument("models", nargs="*", metavar="MODEL", help=f"model names or patterns (default: {' '.join(DEFAULT_MODELS)})")
    p.add_argument("--runtime", default="eager", metavar="LIST",
                   help="comma-separated: eager, channels_last, compile, or a file runtime (onnxruntime, executorch, "
                   "openvino, ...: every one `mobilenet export` writes; an unknown name gets the list) (default: eager)")
    p.add_argument("--int8", action="store_true",
                   help="also time our int8 models (under each runtime in --runtime that has int8)")
    p.add_argument("--bf16", action="store_true",
                   help="also time our models in bf16 (under each runtime in --runtime that has it, on a CPU with "
                   "native bf16)")
    p.add_argument("--calib", metavar="DIR",
                   help="images to calibrate --int8 on (default: random batches; speed does not depend on them)")
    p.add_argument("--batch", default="1", metavar="LIST", help="comma-separated batch sizes (default: 1)")
    p.add_argument("--resolution", type=int, metavar="R", help="input size (default: 224; a detector or segmentation "
                   "model its own: 320 SSDLite, 520 LR-ASPP / DeepLabV3)")
    p.add_argument("--threads", type=int, metavar="N",
                   help="CPU threads for every runtime (default: the cores idle at the start, as `train` picks them; "
                   "threads beyond them turn medians into noise)")
    p.add_argument("--compare", default="torchvision,timm", metavar="LIST",
                   help="peers measured in the same run: torchvision, timm, or none (default: torchvision,timm)")
    p.add_argument("--train", metavar="BxR,...",
                   help="also time one training step at these batch x resolution shapes, e.g. 64x32,32x224")
    p.add_argument("--min-time", type=float, default=1.0, metavar="S", help="seconds of timed runs per route, at least")
    p.add_argument("--max-time", type=float, default=10.0, metavar="S", help="seconds per route, at most")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--plot", metavar="FILE.png", help="write the accuracy-vs-latency and MACs-vs-latency charts")
    p.add_argument("--no-progress", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _ints(text: str, argument: str) -> list[int]:
    try:
        values = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise CommandError(f"{argument} {text!r}: expected comma-separated integers, e.g. 1,32") from None
    if not values or any(v < 1 for v in values):
        raise CommandError(f"{argument} {text!r}: expected positive integers, e.g. 1,32")
    return values


def _shapes(text: str) -> list[tuple[int, int]]:
    shapes = []
    for item in text.split(","):
        b, _, r = item.strip().partition("x")
        if not (b.isdigit() and r.isdigit()) or int(b) < 1 or not 32 <= int(r) <= MAX_RESOLUTION:
            raise CommandError(f"--train {text!r}: expected BATCHxRESOLUTION pairs like 64x32,32x224 "
                               f"(resolution 32 to {MAX_RESOLUTION})")
        shapes.append((int(b), int(r)))
    return shapes


def header(machine, command: str | None = None) -> str:
    peak = machine.peak
    int8 = f", int8 {peak.int8_gmacs:,.0f}" if peak.int8_gmacs else ""
    lines = [
        f"CPU: {machine.cpu}; {machine.logical_cpus} logical CPUs; flags: {' '.join(machine.flags)}",
        f"threads: {machine.threads}; allocator: {machine.allocator}",
        f"theoretical peak for {peak.cores} cores: fp32 {peak.fp32_gmacs:,.0f} GMAC/s{int8} ({peak.basis})",
        "versions: " + ", ".join(f"{k} {v}" for k, v in machine.versions.items()),
    ]
    if command:
        lines.insert(0, f"command: {command}")
    return "\n".join(lines)


COLUMNS = ["model", "source", "task", "runtime", "precision", "batch", "res", "layout", "median ms", "IQR ms",
           "img/s", "GMAC/s", "% peak", "ratio", "runs", "noise"]


def table_rows(results, peak) -> list[dict]:
    from ..bench.claims import noisy, spread

    rows = []
    for r in results:
        p = peak.int8_gmacs if r.precision == "int8" else peak.fp32_gmacs
        rows.append({
            "model": r.model, "source": r.source, "task": r.task, "runtime": r.runtime, "precision": r.precision,
            "batch": r.batch, "res": r.resolution, "layout": r.layout,
            "median ms": None if r.median_ms is None else round(r.median_ms, 3),
            "IQR ms": None if r.iqr_ms is None else round(r.iqr_ms, 3),
            "img/s": None if r.images_per_s is None else round(r.images_per_s, 1),
            "GMAC/s": None if r.gmacs_per_s is None else round(r.gmacs_per_s, 2),
            "% peak": None if not (r.gmacs_per_s and p) else round(100 * r.gmacs_per_s / p, 1),
            "ratio": None if r.ratio is None else round(r.ratio, 3),
            "runs": r.runs or None,
            "spread": None if spread(r) is None else round(spread(r), 3),  # IQR / median
            "noise": "NOISE" if noisy(r) else "",
            "noisy": noisy(r),
            "error": r.error,
        })
    return rows


def format_claims(claims: list[dict]) -> str:
    if not claims:
        return ""
    rows = [{"check": c["check"], "model": c["model"], "batch": c["batch"], "value": c["value"], "target": c["target"],
             "holds": "noise" if c["holds"] is None else "yes" if c["holds"] else "NO", "compared": c["compared"]}
            for c in claims]
    return format_table(rows, ["check", "model", "batch", "value", "target", "holds", "compared"])


def run(args: argparse.Namespace) -> int:
    from ..bench import RUNTIMES, Schedule, parse_list
    from .info import resolve_names

    names = resolve_names(args.models) if args.models else DEFAULT_MODELS
    for flag, seconds in (("--min-time", args.min_time), ("--max-time", args.max_time)):
        if not (math.isfinite(seconds) and seconds >= 0):
            raise CommandError(f"{flag} {seconds}: expected seconds, 0 or more")
    if args.max_time < args.min_time:
        raise CommandError(f"--max-time {args.max_time} is below --min-time {args.min_time}")
    try:
        runtimes = parse_list(args.runtime, "--runtime", RUNTIMES)
        compare = [] if args.compare.strip() == "none" else parse_list(args.compare, "--compare", ("torchvision", "timm"))
        schedule = Schedule(min_time=args.min_time, max_time=args.max_time)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    batches = _ints(args.batch, "--batch")
    shapes = _shapes(args.train) if args.train else []
    if args.resolution is not None and not 32 <= args.resolution <= MAX_RESOLUTION:
        raise CommandError(f"--resolution {args.resolution}: use 32 to {MAX_RESOLUTION}")
    from ..limits import MAX_THREADS

    if args.threads is not None and not 1 <= args.threads <= MAX_THREADS:
        raise CommandError(f"--threads {args.threads}: expected a positive integer, at most {MAX_THREADS}")
    threads, threads_note = args.threads, "set by --threads"
    if threads is None:  # as `train` does: only the cores idle now (see docs/training.md)
        from ..train.distributed import cpu_threads

        threads = cpu_threads(0)
        threads_note = f"the idle cores of {os.cpu_count()} at load {_load():.1f}; --threads sets it"
    if args.plot:
        if not args.plot.lower().endswith(".png"):
            raise CommandError(f"--plot {args.plot}: the chart is written as PNG; give a file name ending in .png")
        from pathlib import Path

        from ..files import check_writable_dir

        try:
            check_writable_dir(Path(args.plot).resolve().parent, "--plot folder")
        except PermissionError as exc:
            raise CommandError(str(exc)) from None
    if args.calib and not os.path.isdir(args.calib):
        raise CommandError(f"--calib {args.calib}: no such folder of images")
    from .. import progress as lines

    # A bar on a terminal, per-step lines otherwise; neither under --json or --no-progress/--quiet.
    progress = not (args.no_progress or args.json) and sys.stderr.isatty() and lines.wanted()
    with lines.reporting(not (args.no_progress or args.json or progress)):
        return _measure(args, names, runtimes, compare, schedule, batches, shapes, threads, threads_note, progress)


def _measure(args, names, runtimes, compare, schedule, batches, shapes, threads, threads_note, progress) -> int:
    from ..bench import Schedule, benchmark, benchmark_training

    try:
        report = benchmark(names, runtimes=runtimes, batches=batches, resolution=args.resolution,
                           threads=threads, compare=compare, int8=args.int8, bf16=args.bf16, schedule=schedule,
                           calib=args.calib,
                           progress=progress)
        if shapes:
            train = benchmark_training(names, shapes=shapes, threads=threads, compare=compare,
                                       schedule=Schedule(min_time=args.min_time, max_time=args.max_time * 2),
                                       progress=progress)
            report = type(report)(report.machine, report.results + train.results,
                                  dict(report.settings, train=train.settings))
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    if args.plot:
        from ..bench.charts import plot

        plot(report.results, args.plot, peak_gmacs=report.machine.peak.fp32_gmacs,
             title=header(report.machine).splitlines()[0])
    from ..bench.claims import NOISY_SPREAD

    rows = table_rows(report.results, report.machine.peak)
    loud = [r for r in rows if r["noisy"]]
    warning = (f"{len(loud)} of {len(rows)} rows are NOISE: their IQR is over {NOISY_SPREAD:.0%} of the median "
               f"(worst {max(r['spread'] for r in loud):.0%}), so their medians and any claim resting on them say "
               f"little; load {_load():.1f} on {os.cpu_count()} CPUs. Rerun when the machine is idle, or with "
               "--threads 1." if loud else None)
    if args.json:
        out = report.to_dict()
        out["table"] = rows
        out["threads_chosen"] = threads_note
        out["noise_warning"] = warning
        print_json(out)
        return 0
    head = header(report.machine)
    if args.threads is None:  # say where the figure came from
        head = head.replace(f"threads: {threads};", f"threads: {threads} ({threads_note});")
    print(head)
    print()
    print(format_table(rows, COLUMNS))
    for r in rows:
        if r["error"]:
            print(f"  {r['model']} {r['source']} {r['runtime']} {r['precision']} b{r['batch']}: not measured: {r['error']}")
    print("\nratio: our median time / this row's, same model, runtime, precision and batch (below 1: ours faster). "
          "IQR: interquartile range. % peak: achieved GMAC/s over the theoretical peak above.")
    claims_text = format_claims(report.to_dict()["claims"])
    if claims_text:
        print("\n" + claims_text)
    if warning:
        print(f"\nWARNING: {warning}")
    return 0


def _load() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return 0.0
