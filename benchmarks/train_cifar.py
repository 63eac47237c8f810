"""Our mobilenet_v2_100 beside torchvision's mobilenet_v2, trained by the same loop.

Both train on ../shared/data/cifar10-test (10,000 32x32 JPEGs; a seeded 80/20
split) at 32 px for the same number of steps, one after the other in this run, and
we report held-out top-1 and training images/s, naming allocator, threads and
memory layout. Not a test: numbers depend on the machine and its load.

    python benchmarks/train_cifar.py [--steps 200] [--batch-size 64]
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
    parser.add_argument("--steps", type=int, default=200, help="optimizer steps per model (default 200)")
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

    from mobilenet.train import Interrupted

    common = dict(data=str(DATA), resolution=32, crop_pct=1.0, val_split=0.2, seed=0, epochs=100,
                  batch_size=args.batch_size, threads=args.threads, channels_last=not args.no_channels_last,
                  recipe="quick", bn_momentum=None)

    def budget(trainer, pos):  # the same fixed number of optimizer steps for both
        if pos.step >= args.steps:
            raise Interrupted

    rows = []
    for label, make in (
        ("mobilenet mobilenet_v2_100", lambda: None),
        ("torchvision mobilenet_v2", lambda: torchvision.models.mobilenet_v2(num_classes=10)),
    ):
        torch.manual_seed(0)
        cfg = resolve_config({**common, "model": "mobilenet_v2_100"})
        trainer = Trainer(cfg, model=make(), write=False, progress=False, callbacks=[budget], log=lambda m: None)
        s = trainer.run()
        _, _, seen, seconds = trainer.pos.sums
        val = trainer.validate()
        rows.append((label, val.acc, seen / seconds, seconds, s["threads"], s["layout"]))
    epochs = args.steps * args.batch_size / 8000
    print(f"cifar10-test, 8000 train / 2000 val (seeded), 32 px, {args.steps} steps of batch {args.batch_size} ({epochs:.2f} epochs), "
          f"recipe quick (AdamW, cosine over 100 epochs, so lr ~ peak); allocator: {allocator()}")
    print(f"{'model':32} {'val top-1':>9} {'train img/s':>12} {'seconds':>8} {'threads':>7}  layout")
    for label, acc, ips, secs, threads, layout in rows:
        print(f"{label:32} {acc:9.4f} {ips:12.1f} {secs:8.1f} {threads:7d}  {layout}")
    print(f"speed ratio ours/torchvision: {rows[0][2] / rows[1][2]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
