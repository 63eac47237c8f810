"""Check the CUDA paths on a machine with a GPU (CI has none; run this where one is lent).

    PYTHONPATH=src python benchmarks/cuda_check.py --out DIR

1. Every registered model on CUDA: fp32 logits against the CPU (TF32 off), bf16
   autocast top-1 agreement with fp32, channels_last, a backward step.
2. ``mobilenet train`` on CUDA (digits, bf16 autocast by default, then fp16 with the
   grad scaler), resumed from its own state, under torchrun (NCCL, one process),
   and with ``--compile``; ``mobilenet eval --device cuda`` of the result.
3. Training throughput of ours against torchvision's same models, interleaved, at
   batch 128 x 224 px, channels_last, bf16.

Prints one JSON line per check and writes ``cuda_check.json`` to ``--out``; exits 1
if any check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from mobilenet import create_model, list_models

RESULTS: list[dict] = []


def record(name: str, ok: bool, **info) -> None:
    row = {"check": name, "ok": bool(ok), **info}
    RESULTS.append(row)
    print(json.dumps(row), flush=True)


def check_models() -> None:
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    x = torch.randn(4, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    for name in list_models():
        torch.manual_seed(0)
        model = create_model(name).eval()
        with torch.no_grad():
            cpu = model(x)
            gpu_model = model.cuda()
            gpu = gpu_model(x.cuda()).cpu()
            cl = gpu_model.to(memory_format=torch.channels_last)(x.cuda().to(memory_format=torch.channels_last)).cpu()
            with torch.autocast("cuda", dtype=torch.bfloat16):
                bf16 = gpu_model(x.cuda()).float().cpu()
        scale = float(cpu.abs().max())
        diff = float((gpu - cpu).abs().max()) / scale
        diff_cl = float((cl - cpu).abs().max()) / scale
        agree = float((bf16.argmax(1) == cpu.argmax(1)).float().mean())
        gpu_model.train()
        loss = gpu_model(x.cuda()).logsumexp(1).mean()
        loss.backward()
        grads_ok = all(p.grad is not None and torch.isfinite(p.grad).all() for p in gpu_model.parameters())
        record("model", diff < 1e-4 and diff_cl < 1e-4 and grads_ok, model=name, rel_diff=diff,
               rel_diff_channels_last=diff_cl, bf16_top1_agree=agree, grads_finite=grads_ok)


def cli(args: list[str], *, torchrun: bool = False, timeout: int = 600) -> tuple[int, str, float]:
    base = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1", "-m",
            "mobilenet"] if torchrun else [sys.executable, "-m", "mobilenet"]
    start = time.perf_counter()
    proc = subprocess.run(base + args, capture_output=True, text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    if proc.returncode:
        print(out[-3000:], file=sys.stderr)
    return proc.returncode, proc.stdout, time.perf_counter() - start


def last_json(text: str) -> dict:
    start = text.rfind("\n{")
    return json.loads(text[start + 1 if start >= 0 else text.find("{"):])


def check_training(out: Path) -> None:
    runs = out / "runs"
    common = ["--device", "cuda", "--output", str(runs), "--quiet", "--json", "--workers", "2"]
    for amp in ("bf16", "fp16"):
        rc, text, wall = cli(["train", "--amp", amp, "--name", f"digits_{amp}", *common])
        s = last_json(text) if rc == 0 else {}
        top1 = s.get("history", [{}])[-1].get("val_acc") if s else None
        record("train", rc == 0 and top1 is not None and top1 >= 0.95, amp=amp, val_top1=top1, wall_s=round(wall, 1),
               images_per_s=s.get("images_per_s"), device=s.get("device"))
    rc, text, wall = cli(["train", "--resume", str(runs / "digits_bf16"), "--epochs", "14", "--quiet", "--json"])
    s = last_json(text) if rc == 0 else {}
    record("resume", rc == 0 and len(s.get("history", [])) == 14, epochs_after=len(s.get("history", [])),
           val_top1=s.get("history", [{}])[-1].get("val_acc") if s else None)
    rc, text, wall = cli(["train", "--name", "digits_torchrun", *common], torchrun=True)
    s = last_json(text) if rc == 0 else {}
    top1 = s.get("history", [{}])[-1].get("val_acc") if s else None
    record("torchrun_nccl", rc == 0 and top1 is not None and top1 >= 0.95, val_top1=top1, world=s.get("world"))
    rc, text, wall = cli(["train", "--compile", "--epochs", "3", "--name", "digits_compile", *common])
    s = last_json(text) if rc == 0 else {}
    record("train_compile", rc == 0, val_top1=s.get("history", [{}])[-1].get("val_acc") if s else None,
           wall_s=round(wall, 1))
    rc, text, wall = cli(["eval", "--weights", str(runs / "digits_bf16"), "--data", "digits", "--device", "cuda",
                          "--amp", "bf16", "--json"])
    s = last_json(text) if rc == 0 else {}
    record("eval", rc == 0 and s.get("top1", 0) >= 0.95, top1=s.get("top1"))


def check_throughput(batch: int = 128, steps: int = 20) -> None:
    import torchvision

    pairs = {"mobilenet_v2_100": torchvision.models.mobilenet_v2,
             "mobilenet_v3_large_100": torchvision.models.mobilenet_v3_large,
             "mobilenet_v3_small_100": torchvision.models.mobilenet_v3_small}
    x = torch.randn(batch, 3, 224, 224, device="cuda").to(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (batch,), device="cuda")
    for ours_name, tv_fn in pairs.items():
        models = {"ours": create_model(ours_name), "torchvision": tv_fn()}
        opts = {}
        for k, m in models.items():
            m.cuda().to(memory_format=torch.channels_last).train()
            opts[k] = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
        times: dict[str, list[float]] = {k: [] for k in models}
        for rep in range(steps + 3):
            for k, m in models.items():  # interleaved, so drift hits both
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    loss = torch.nn.functional.cross_entropy(m(x), y)
                loss.backward()
                opts[k].step()
                opts[k].zero_grad(set_to_none=True)
                torch.cuda.synchronize()
                if rep >= 3:
                    times[k].append(time.perf_counter() - t0)
        med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
        ips = {k: batch / v for k, v in med.items()}
        record("train_throughput", True, model=ours_name, batch=batch, images_per_s_ours=round(ips["ours"]),
               images_per_s_torchvision=round(ips["torchvision"]), ratio=round(ips["ours"] / ips["torchvision"], 3),
               layout="channels_last", amp="bf16")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("cuda_check"))
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA GPU here: nothing to check", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    record("device", True, gpu=torch.cuda.get_device_name(), torch=torch.__version__, python=sys.version.split()[0])
    for step in (check_models, lambda: check_training(args.out), check_throughput):
        try:
            step()
        except Exception as exc:  # record and go on: one broken path should not hide the others
            record("error", False, step=getattr(step, "__name__", "?"), error=f"{type(exc).__name__}: {exc}")
    (args.out / "cuda_check.json").write_text(json.dumps(RESULTS, indent=1))
    failed = [r for r in RESULTS if not r["ok"]]
    print(f"{len(RESULTS) - len(failed)} checks passed, {len(failed)} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
