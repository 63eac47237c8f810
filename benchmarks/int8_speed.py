"""int8 vs fp32 latency of exported files, measured side by side (interleaved
rounds, median), at batch 1 and 32, in each file's own runtime.

    python benchmarks/int8_speed.py FP32_FILE INT8_FILE [FP32_FILE INT8_FILE ...] [--threads N]

The files come from ``mobilenet export`` (e.g. benchmarks/int8_accuracy.py writes them).
Prints the machine, the allocator and the ratios. ``mobilenet bench`` is the full tool;
this is the small check behind docs/deployment.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import torch

from mobilenet.cli import allocator
from mobilenet.export import load_artifact


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("files", nargs="+")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pairs = list(zip(args.files[::2], args.files[1::2]))
    rows = []
    for fp32_path, int8_path in pairs:
        arts = {"fp32": load_artifact(fp32_path, threads=args.threads), "int8": load_artifact(int8_path, threads=args.threads)}
        res = arts["fp32"].metadata.get("resolution") or 224
        for batch in args.batches:
            x = torch.randn(batch, 3, res, res)
            times = {k: [] for k in arts}
            for a in arts.values():
                a(x)  # warm-up
            for _ in range(args.rounds):
                for k, a in arts.items():
                    reps = max(1, 32 // batch)
                    t = time.perf_counter()
                    for _ in range(reps):
                        a(x)
                    times[k].append((time.perf_counter() - t) / reps * 1e3)
            med = {k: statistics.median(v) for k, v in times.items()}
            row = {"runtime": arts["fp32"].format, "batch": batch, "resolution": res,
                   "fp32_ms": round(med["fp32"], 2), "int8_ms": round(med["int8"], 2),
                   "speedup": round(med["fp32"] / med["int8"], 2),
                   "fp32_bytes": os.path.getsize(fp32_path), "int8_bytes": os.path.getsize(int8_path),
                   "size_ratio": round(os.path.getsize(int8_path) / os.path.getsize(fp32_path), 3)}
            rows.append(row)
            print(row, flush=True)
    print(json.dumps({"cpu": cpu_name(), "cores": os.cpu_count(), "threads": args.threads,
                      "allocator": allocator(), "layout": "runtime's own (NCHW input)",
                      "load_average": os.getloadavg(), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
