"""One process or many: the same loop runs alone or under ``torchrun``.

torchrun sets WORLD_SIZE/RANK/LOCAL_RANK; we then join a process group (NCCL on
GPUs, gloo on CPU) and only rank 0 logs and writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Context:
    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA GPU is available here")
    return device


def cpu_threads(requested: int, world: int = 1) -> int:
    """Threads per process. OpenMP threads that spin-wait against other busy processes
    collapse: on 2 cores at load 8 we measured 23 images/s with 2 threads and 380 with
    1. So by default we use only the cores that are idle when training starts."""
    if requested > 0:
        return requested
    cores = max(1, (os.cpu_count() or 1) // world)
    try:
        busy = os.getloadavg()[0] / world
    except OSError:
        busy = 0.0
    return max(1, min(cores, round(cores - busy)))


def setup(device: str = "auto") -> Context:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Context(0, 1, 0, pick_device(device))
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    dev = pick_device(device, local_rank)
    if not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return Context(rank, world, local_rank, dev)


def teardown(ctx: Context) -> None:
    if ctx.world > 1 and dist.is_initialized():
        dist.destroy_process_group()


def all_sum(ctx: Context, values: list[float]) -> list[float]:
    """Element-wise sum over processes."""
    if ctx.world == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=ctx.device)
    dist.all_reduce(t)
    return t.tolist()


def any_true(ctx: Context, flag: bool) -> bool:
    return bool(all_sum(ctx, [float(flag)])[0]) if ctx.world > 1 else flag


def gather(ctx: Context, obj):
    if ctx.world == 1:
        return [obj]
    out = [None] * ctx.world
    dist.all_gather_object(out, obj)
    return out


class CPUSyncBatchNorm(torch.nn.BatchNorm2d):
    """BatchNorm over the whole global batch for CPU processes (torch's SyncBatchNorm is
    CUDA-only): per-channel sums are all-reduced with autograd, so the gradient sees
    the global statistics exactly as one process with the whole batch would."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized()):
            return super().forward(x)
        import warnings

        from torch.distributed.nn.functional import all_reduce  # the all-reduce with a backward

        c = x.shape[1]
        # float64 sums: E[x^2] - E[x]^2 in float32 loses digits where the mean is large
        local = torch.cat([x.sum(dim=(0, 2, 3), dtype=torch.float64), (x * x).sum(dim=(0, 2, 3), dtype=torch.float64),
                           torch.full((1,), x.numel() / c, dtype=torch.float64)])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # its named successor has no backward yet
            total = all_reduce(local)
        n = total[2 * c]
        mean = total[:c] / n
        var = total[c : 2 * c] / n - mean * mean
        mean_x, var_x = mean.to(x.dtype), var.to(x.dtype)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.copy_((1 - m) * self.running_mean + m * mean_x)
                self.running_var.copy_((1 - m) * self.running_var + m * (var * n / (n - 1)).to(x.dtype))
        shape = (1, c, 1, 1)
        y = (x - mean_x.view(shape)) * torch.rsqrt(var_x + self.eps).view(shape)
        return y * self.weight.view(shape) + self.bias.view(shape) if self.affine else y


def convert_sync_bn(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """SyncBatchNorm on CUDA; our CPUSyncBatchNorm (same state-dict keys) on CPU."""
    if device.type == "cuda":
        return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for name, child in model.named_children():
        if type(child) is torch.nn.BatchNorm2d:
            sync = CPUSyncBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                    child.track_running_stats)
            sync.load_state_dict(child.state_dict())
            sync.train(child.training)
            setattr(model, name, sync)
        else:
            convert_sync_bn(child, device)
    return model
