"""The two charts of ``mobilenet bench --plot``.

Left, as in the MobileNetV3 paper's Figure 1: top-1 accuracy against measured
latency (log x), bubble area = parameters, one colour per family. Accuracy is the
published figure (the model's own paper for ours, the checkpoint's card for the
peers), since latency does not depend on the weights. Right: MACs against
latency per image, with the line the CPU's theoretical peak would give: the
distance to that line shows which models and runtimes leave the CPU idle.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

FAMILY_COLOURS = {
    "MobileNetV1": "tab:blue",
    "MobileNetV2": "tab:orange",
    "MobileNetV3-Large": "tab:green",
    "MobileNetV3-Small": "tab:red",
}
SOURCE_MARKERS = {"ours": "o", "torchvision": "s", "timm": "^"}
RUNTIME_MARKERS = {"eager": "o", "channels_last": "s", "compile": "D", "onnxruntime": "^", "executorch": "v"}


def family(model: str) -> str:
    if model.startswith("mobilenet_v1"):
        return "MobileNetV1"
    if model.startswith("mobilenet_v2"):
        return "MobileNetV2"
    return "MobileNetV3-Large" if "_large" in model else "MobileNetV3-Small"


def published_top1(source: str, model: str, resolution: int) -> float | None:
    """Ours: the model's own paper (else TF-slim). Peers: their checkpoint's card."""
    from ..published import published_for, weights_for

    if source == "ours":
        rows = published_for(model, resolution)
        rows = sorted(rows, key=lambda p: (p.convention != "paper", p.top1 is None))
        return rows[0].top1 if rows and rows[0].top1 is not None else None
    if resolution != 224:
        return None
    cards = [w for w in weights_for(model) if w.source == source and w.top1 is not None]
    default = [w for w in cards if "DEFAULT" in getattr(w, "note", "")]
    return (default or cards)[0].top1 if cards else None


def _pick(results: Sequence[Any], batch: int, runtime: str | None) -> list[Any]:
    """Per (source, model): the row at ``runtime``, or the fastest fp32 route."""
    best: dict[tuple[str, str], Any] = {}
    for r in results:
        if r.task != "inference" or r.precision != "fp32" or r.batch != batch or not r.median_ms:
            continue
        if runtime is not None and r.runtime != runtime:
            continue
        key = (r.source, r.model)
        if key not in best or r.median_ms < best[key].median_ms:
            best[key] = r
    return list(best.values())


def plot(results: Sequence[Any], path: str | os.PathLike, *, peak_gmacs: float | None = None,
         batch: int | None = None, runtime: str | None = None, title: str = "") -> None:
    """Write both charts side by side to ``path`` (PNG), atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..files import atomic_path

    inference = [r for r in results if r.task == "inference" and r.median_ms]
    if not inference:
        raise ValueError("no inference result to plot")
    batch = batch if batch is not None else min(r.batch for r in inference)
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 5.8))

    picked = _pick(inference, batch, runtime)
    for source, marker in SOURCE_MARKERS.items():
        rows = [r for r in picked if r.source == source]
        points = [(r, published_top1(r.source, r.model, r.resolution)) for r in rows]
        points = [(r, acc) for r, acc in points if acc is not None]
        for fam, colour in FAMILY_COLOURS.items():
            fam_points = sorted([(r, a) for r, a in points if family(r.model) == fam], key=lambda p: p[0].median_ms)
            if not fam_points:
                continue
            xs = [r.median_ms for r, _ in fam_points]
            ys = [a for _, a in fam_points]
            sizes = [r.params / 1e6 * 40 for r, _ in fam_points]
            left.scatter(xs, ys, s=sizes, c=colour, marker=marker, alpha=0.55 if source == "ours" else 0.3,
                         edgecolors="black", linewidths=0.6, label=f"{fam} ({source})")
            if source == "ours" and len(xs) > 1:
                left.plot(xs, ys, c=colour, lw=1)
            for r, a in fam_points:
                left.annotate(f"{r.model.split('_')[-1]} {r.runtime}", (r.median_ms, a), fontsize=6,
                              xytext=(4, -3), textcoords="offset points")
    if not left.collections:
        left.text(0.5, 0.5, f"no published accuracy for these models at {picked[0].resolution} px" if picked
                  else "no fp32 result at this batch", ha="center", va="center", transform=left.transAxes)
    left.set_xscale("log")
    left.set_xlabel(f"latency, ms (batch {batch}, {'fastest fp32 route' if runtime is None else runtime}, log scale)")
    left.set_ylabel("ImageNet top-1, % (published)")
    left.set_title("Accuracy vs measured latency (bubble area = params)")
    left.grid(True, which="both", alpha=0.3)
    if left.collections:
        left.legend(fontsize=7, loc="lower right", markerscale=0.5)

    rows = [r for r in inference if r.batch == batch and r.precision == "fp32"]
    for r in rows:
        right.scatter(r.macs / 1e6, r.median_ms / r.batch, c=FAMILY_COLOURS[family(r.model)],
                      marker=RUNTIME_MARKERS.get(r.runtime, "o"), alpha=0.8 if r.source == "ours" else 0.35,
                      edgecolors="black", linewidths=0.4)
    for rt, marker in RUNTIME_MARKERS.items():
        if any(r.runtime == rt for r in rows):
            right.scatter([], [], c="grey", marker=marker, label=rt)
    for fam, colour in FAMILY_COLOURS.items():
        if any(family(r.model) == fam for r in rows):
            right.scatter([], [], c=colour, marker="o", label=fam)
    if peak_gmacs:
        macs = sorted({r.macs for r in rows})
        if macs:
            xs = [macs[0] / 1e6 * 0.8, macs[-1] / 1e6 * 1.25]
            right.plot(xs, [x * 1e6 / (peak_gmacs * 1e9) * 1000 for x in xs], "k--", lw=1,
                       label=f"theoretical fp32 peak ({peak_gmacs:.0f} GMAC/s)")
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel("MACs per image, millions (log)")
    right.set_ylabel(f"ms per image at batch {batch} (log)")
    right.set_title("MACs vs latency (bright: ours; faint: torchvision / timm)")
    right.grid(True, which="both", alpha=0.3)
    right.legend(fontsize=7, loc="upper left")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
