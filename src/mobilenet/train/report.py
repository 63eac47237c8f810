"""What a run leaves for people: metrics.csv, curves.png, config.yaml and the
one-screen summary. Every file is written atomically."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from ..files import atomic_path, atomic_write_bytes

COLUMNS = ("epoch", "step", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "val_top5", "images_per_s",
           "elapsed_s")


def write_metrics(path: Path, history: list[dict[str, Any]], columns: tuple[str, ...] = COLUMNS) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    atomic_write_bytes(path, buf.getvalue().encode())


def write_config(path: Path, values: dict[str, Any]) -> None:
    import yaml

    atomic_write_bytes(path, yaml.safe_dump(values, sort_keys=False).encode())


def plot_curves(path: Path, history: list[dict[str, Any]], title: str,
                metric: tuple[str, str] = ("val_acc", "val top-1"), train_metric: str | None = "train_acc",
                ylabel: str = "accuracy") -> None:
    """Loss (train, and val where measured) and the validation metric per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(epochs, [r["train_loss"] for r in history], "o-", label="train")
    if all("val_loss" in r for r in history):
        ax1.plot(epochs, [r["val_loss"] for r in history], "o-", label="val")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("loss")
    ax1.legend()
    if train_metric:
        ax2.plot(epochs, [r[train_metric] for r in history], "o-", label="train (augmented)")
    ax2.plot(epochs, [r[metric[0]] for r in history], "o-", label=metric[1])
    ax2.set_xlabel("epoch")
    ax2.set_ylabel(ylabel)
    ax2.set_ylim(0, 1)
    ax2.legend()
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)


def summary_lines(s: dict[str, Any]) -> list[str]:
    """The one-screen summary printed at the end of a run."""
    last = s["history"][-1] if s["history"] else {}
    metric = s.get("metric", "val_acc")
    best = max(s["history"], key=lambda r: r[metric]) if s["history"] else {}
    lines = [
        f"mobilenet train: {'interrupted' if s['interrupted'] else 'done'} in {s['seconds']:.1f} s",
        f"  model   {s['model']} ({s['params'] / 1e6:.2f} M params) at {s['resolution']} px"
        + (f", fine-tuned from {s['pretrained']}" if s.get("pretrained") else ""),
        f"  data    {s['data']}: {s['train_images']} train / {s['val_images']} val images, {s['classes']} classes"
        + (f", {s['skipped']} file(s) skipped" if s["skipped"] else ""),
        f"  recipe  {s['recipe']}: {s['optimizer']} lr {s['lr']:.3g}, {s['schedule']}, {s['epochs']} epochs, "
        f"batch {s['batch_size']}" + (f" on {s['world']} processes" if s["world"] > 1 else ""),
    ]
    if last and metric != "val_acc":  # a dense task: its metric
        label = s["metric_label"]
        lines.append(f"  val     {label} {last[metric]:.4f}" + (f"  loss {last['val_loss']:.4f}" if "val_loss" in last
                     else f"  AP50 {last['val_ap50']:.4f}") + f"  (best {best[metric]:.4f} at epoch {best['epoch']})"
                     + (" [EMA]" if s["ema"] else ""))
    elif last:
        lines.append(f"  val     top-1 {last['val_acc']:.4f}  top-5 {last['val_top5']:.4f}  loss {last['val_loss']:.4f}"
                     f"  (best {best['val_acc']:.4f} at epoch {best['epoch']})" + (" [EMA]" if s["ema"] else ""))
    ips = s["images_per_s"]
    lines.append(f"  speed   {ips:.0f}" if ips >= 10 else f"  speed   {ips:.2g}")
    lines[-1] += (f" training images/s ({s['device']} x{s['threads']} threads, {s['layout']}, {s['amp']}, "
                 f"allocator: {s['allocator']})")
    if s.get("run_dir"):
        lines.append(f"  run     {s['run_dir']}/: {', '.join(s['files'])}")
        if s["interrupted"]:
            lines.append(f"  resume  mobilenet train --resume {s['run_dir']}")
        else:
            lines.append(f"  next    mobilenet eval --weights {s['run_dir']}/weights.safetensors --data {s['data_arg']}")
    return lines
