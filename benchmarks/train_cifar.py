"""Our mobilenet_v2_100 beside torchvision's mobilenet_v2, trained by the same loop.

Both train on ../shared/data/cifar10-test (10,000 32x32 JPEGs; a seeded 80/20
split) at 32 px for the same number of steps, one after the other in this run, and
we report held-out top-1 and training images/s, naming allocator, threads and
memory layout. Not a test: numbers depend on the machine and its load.

    python benchmarks/train_cifar.py [--steps 60] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MOBILENET_SHARED_DATA", ROOT.parent / "shared" / "data")) / "cifar10-test"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="optimizer steps per model (default 60)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: idle cores)")
    parser.add_argument("--no-channels-last", action="store_true")
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"{DATA} is missing (set MOBILENET_SHARED_DATA)", file=sys.stderr)
        return 2

    from mobilenet.cli import MALLOC_TUNABLES, allocator

    if sys.platform.startswith("linux") and "GLIBC_TUNABLES" not in os.environ:  # as the CLI does
        os.execve(sys.executable, [sys.executable, *sys.argv], dict(os.environ, GLIBC_TUNABLES=MALLOC_TUNABLES))
    import torch
    import torchvision

    from mobilenet.train import Trainer, resolve_config

    train_images = 8000
    epochs = max(1, round(args.steps * args.batch_size / train_images))
    common = dict(data=str(DATA), resolution=32, crop_pct=1.0, val_split=0.2, seed=0, epochs=epochs,
                  batch_size=args.batch_size, threads=args.threads, channels_last=not args.no_channels_last,
                  recipe="quick", bn_momentum=None)
    rows = []
    for label, make in (
        ("mobilenet mobilenet_v2_100", lambda: None),
        ("torchvision mobilenet_v2", lambda: torchvision.models.mobilenet_v2(num_classes=10)),
    ):
        torch.manual_seed(0)
        cfg = resolve_config({**common, "model": "mobilenet_v2_100"})
        s = Trainer(cfg, model=make(), write=False, progress=False, log=lambda m: None).run()
        last = s["history"][-1]
        rows.append((label, last["val_acc"], s["images_per_s"], s["seconds"], s["threads"], s["layout"]))
    print(f"cifar10-test, 8000 train / 2000 val (seeded), 32 px, {epochs} epochs of batch {args.batch_size}, "
          f"recipe quick (AdamW, cosine); allocator: {allocator()}")
    print(f"{'model':32} {'val top-1':>9} {'train img/s':>12} {'seconds':>8} {'threads':>7}  layout")
    for label, acc, ips, secs, threads, layout in rows:
        print(f"{label:32} {acc:9.4f} {ips:12.1f} {secs:8.1f} {threads:7d}  {layout}")
    print(f"speed ratio ours/torchvision: {rows[0][2] / rows[1][2]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
