"""The speed claims issues 6 and 14 ask us to hold, computed from one run's results.

Every figure is a ratio of two medians from the same interleaved group (same
model, batch and resolution), never of numbers from different runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

EAGER_MAX_RATIO = 1.0  # ours / peer, eager NCHW
BEST_MAX_RATIO = 1.0  # our fastest fp32 route / torchvision's fastest route
EAGER_SPEEDUP = 4.0  # torchvision eager NCHW / our fastest fp32 route, batch 1
INT8_SPEEDUP = 1.8  # our fastest fp32 / our fastest int8, batch 32, where INT8_TARGETS names none
# Issue 14: our fastest int8 route (whichever runtime) / our fastest fp32 route, per family and batch.
INT8_TARGETS = {
    ("v1", 1): 2.0, ("v1", 32): 2.0,
    ("v2", 1): 2.0, ("v2", 32): 2.0,
    ("v3_large", 1): 1.5, ("v3_large", 32): 2.0,
    ("v3_small", 1): 1.1, ("v3_small", 32): 1.5,
}
TRAIN_MAX_RATIO = 1.0  # ours / torchvision, seconds per training step
# A row whose interquartile range exceeds this fraction of its median was timed on a machine
# too busy for its median to mean much (V3-Small on a loaded box: median 143.6 ms, IQR
# 293.5 ms, against 11.0 ms with one thread): a claim resting on it is left undecided.
NOISY_SPREAD = 0.25


def spread(r) -> float | None:
    """IQR / median of a row (None when it was not measured)."""
    return r.iqr_ms / r.median_ms if r.iqr_ms is not None and r.median_ms else None


def noisy(r) -> bool:
    s = spread(r)
    return s is not None and s > NOISY_SPREAD


def _family(model: str) -> str:
    for name in ("v1", "v2", "v3_large", "v3_small"):
        if model.startswith(f"mobilenet_{name}"):
            return name
    return model


def _fastest(rows: Sequence[Any]):
    rows = [r for r in rows if r.median_ms]
    return min(rows, key=lambda r: r.median_ms) if rows else None


def _claim(check: str, r, value: float, target: str, holds: bool, compared: str, note: str = "",
           rows: Sequence[Any] = ()) -> dict:
    """``rows``: the measured rows the value is computed from; if any is noise the claim
    is undecided (``holds`` None) and the note says why."""
    loud = [x for x in rows if x is not None and noisy(x)]
    if loud:
        worst = max(loud, key=spread)
        holds = None
        note = (f"not decided: the {worst.source} {worst.runtime} {worst.precision} timing's IQR is "
                f"{spread(worst):.0%} of its median (over {NOISY_SPREAD:.0%}): noise, e.g. a busy machine; "
                "rerun when it is idle" + (f"; {note}" if note else ""))
    return {"check": check, "model": r.model, "batch": r.batch, "resolution": r.resolution, "value": round(value, 3),
            "target": target, "holds": holds, "compared": compared, "note": note}


def _partner(ours: Sequence[Any], r):
    return next((o for o in ours if o.runtime == r.runtime and o.precision == r.precision), None)


def claims(results: Sequence[Any]) -> list[dict]:
    """One entry per claim that this run's rows can decide."""
    out: list[dict] = []
    groups: dict[tuple, list] = {}
    for r in results:
        if r.median_ms:
            groups.setdefault((r.task, r.model, r.batch, r.resolution), []).append(r)
    for (task, _model, batch, _res), rows in groups.items():
        ours = [r for r in rows if r.source == "ours"]
        if task == "train":
            for r in rows:
                if r.source != "ours" and r.ratio is not None:
                    out.append(_claim(f"training step: ours vs {r.source}", r, r.ratio, f"<= {TRAIN_MAX_RATIO}",
                                      r.ratio <= TRAIN_MAX_RATIO, "time per step, ours / theirs",
                                      rows=(r, _partner(ours, r))))
            continue
        for r in rows:
            if r.source != "ours" and r.runtime == "eager" and r.precision == "fp32" and r.ratio is not None:
                out.append(_claim(f"eager NCHW: ours vs {r.source}", r, r.ratio, f"<= {EAGER_MAX_RATIO}",
                                  r.ratio <= EAGER_MAX_RATIO, "latency, ours / theirs", rows=(r, _partner(ours, r))))
        best = _fastest([r for r in ours if r.precision == "fp32"])
        tv = [r for r in rows if r.source == "torchvision" and r.precision == "fp32"]
        # The issue names torchvision's best route: its ONNX export under ONNX Runtime.
        tv_ort = next((r for r in tv if r.runtime == "onnxruntime"), None)
        if best and tv_ort:
            ratio = best.median_ms / tv_ort.median_ms
            out.append(_claim("fastest fp32 route: ours vs torchvision ONNX Runtime", best, ratio,
                              f"<= {BEST_MAX_RATIO}", ratio <= BEST_MAX_RATIO,
                              f"ours {best.runtime} / torchvision onnxruntime", rows=(best, tv_ort)))
        tv_best = _fastest(tv)
        if best and tv_best and tv_best is not tv_ort:
            ratio = best.median_ms / tv_best.median_ms
            out.append(_claim("fastest fp32 route: ours vs torchvision's fastest measured", best, ratio, "info",
                              ratio <= BEST_MAX_RATIO, f"ours {best.runtime} / torchvision {tv_best.runtime}",
                              "informational: torchvision's model under a route the issue does not name",
                              rows=(best, tv_best)))
        tv_eager = next((r for r in tv if r.runtime == "eager"), None)
        if best and tv_eager and batch == 1:
            speedup = tv_eager.median_ms / best.median_ms
            out.append(_claim("fastest fp32 route vs torchvision eager NCHW", best, speedup, f">= {EAGER_SPEEDUP}",
                              speedup >= EAGER_SPEEDUP, f"torchvision eager / ours {best.runtime}",
                              rows=(best, tv_eager)))
        best8 = _fastest([r for r in ours if r.precision == "int8"])
        if best and best8:
            speedup = best.median_ms / best8.median_ms
            target = INT8_TARGETS.get((_family(best8.model), batch))
            note = "" if target else "the targets are set for batch 1 and 32"
            target = target or INT8_TARGETS.get((_family(best8.model), 32), INT8_SPEEDUP)
            out.append(_claim("int8 vs fp32 (ours, fastest routes)", best8, speedup, f">= {target}",
                              speedup >= target, f"ours {best.runtime} fp32 / ours {best8.runtime} int8", note,
                              rows=(best, best8)))
        best16 = _fastest([r for r in ours if r.precision == "bf16"])
        if best and best16:
            speedup = best.median_ms / best16.median_ms
            out.append(_claim("bf16 vs fp32 (ours, fastest routes)", best16, speedup, "info", speedup > 1.0,
                              f"ours {best.runtime} fp32 / ours {best16.runtime} bf16",
                              "informational: bf16 changes the numbers (see docs/deployment.md)", rows=(best, best16)))
    return out
