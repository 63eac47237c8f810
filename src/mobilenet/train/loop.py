"""The training loop: one process or many (torchrun), resumable at any step.

Order of preparation (``Trainer.run``): data -> model (fresh or pretrained, new
classifier) -> ``model_transform`` (the hook where e.g. quantization-aware
training swaps in fake-quantized modules) -> device, layout, SyncBatchNorm ->
optimizer, schedule, EMA, grad scaler -> resume -> DDP, compile -> epochs.
"""

from __future__ import annotations

import dataclasses
import signal
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..evaluate import Tally, amp_dtype, tally
from ..files import check_writable_dir
from ..registry import MODELS
from . import distributed as D
from .build import build_model, freeze_batchnorm
from .checkpoint import STATE_FILE, load_state, rng_state, save_state, set_rng_state
from .config import TrainConfig
from .data import DataSplit, load_data
from .loader import Augmented, EvalDataset, ResumableSampler, ShardSampler, loader, train_transform
from .optim import make_optimizer, make_scheduler
from .report import plot_curves, summary_lines, write_config, write_metrics

WEIGHTS_FILE = "weights.safetensors"
ModelTransform = Callable[[nn.Module, TrainConfig], nn.Module]


class Interrupted(Exception):
    """Raised by a callback to stop after saving."""


@dataclasses.dataclass
class Position:
    epoch: int = 0
    step: int = 0  # optimizer steps so far
    batch: int = 0  # batches done in the current epoch
    sums: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # loss, correct, seen, seconds
    history: list = dataclasses.field(default_factory=list)


class Trainer:
    """``Trainer(cfg).run()`` trains and returns the summary dict.

    ``model``: a ready model instead of ``cfg.model`` (the benchmark trains
    torchvision's this way). ``model_transform(model, cfg)`` runs once the model has
    its classifier, before the optimizer sees its parameters. ``callbacks`` are
    called as ``cb(trainer, position)`` after every optimizer step.
    """

    def __init__(self, cfg: TrainConfig, *, resume: str | Path | None = None, model: nn.Module | None = None,
                 model_transform: ModelTransform | None = None, callbacks: Sequence[Callable] = (),
                 write: bool = True, progress: bool = True, explicit_model: bool = True,
                 log: Callable[[str], None] = print) -> None:
        self.cfg, self.resume, self.given_model, self.model_transform = cfg, resume, model, model_transform
        self.callbacks, self.write, self.progress, self.explicit_model = list(callbacks), write, progress, explicit_model
        self._log, self.stop_requested = log, False
        self.run_dir: Path | None = Path(resume) if resume else None

    def log(self, msg: str) -> None:
        if self.ctx.main:
            self._log(msg)

    # -- preparation --------------------------------------------------------------------
    def _prepare_run_dir(self) -> None:
        cfg = self.cfg
        if not self.write:
            self.run_dir = None
            return
        if self.run_dir is None:
            what = Path(cfg.pretrained).stem if cfg.pretrained and not self.explicit_model else cfg.model
            name = cfg.name or f"{what}-{Path(cfg.data).name or 'data'}-{datetime.now():%Y%m%d-%H%M%S}"
            self.run_dir = Path(cfg.output) / name
        if self.ctx.main:
            check_writable_dir(self.run_dir, "output folder")

    def _prepare(self) -> None:
        cfg, ctx = self.cfg, self.ctx
        torch.manual_seed(cfg.seed)
        pre_side = (cfg.resolution or 224) * 8 // 7 + 1  # covers crop_pct down to 0.875
        self.data: DataSplit = load_data(cfg.data, val_split=cfg.val_split, seed=cfg.seed, root=cfg.data_root,
                                         strict=cfg.strict, cache_side=pre_side, log=self.log)
        classes = self.data.classes
        if self.given_model is not None:
            from ..images import Preprocess

            model, pre = self.given_model, Preprocess(resolution=cfg.resolution or 224, crop_pct=cfg.crop_pct or
                                                      self.data.crop_pct)
        else:
            model, pre = build_model(cfg, len(classes), classes, self.data.crop_pct, self.explicit_model)
        if getattr(model, "model_name", None) in MODELS and model.model_name != cfg.model:
            self.cfg = cfg = dataclasses.replace(cfg, model=model.model_name)  # named by the weights
        if self.model_transform is not None:
            model = self.model_transform(model, cfg)
        if cfg.qat:  # fake-quantized graph (mobilenet.quantize); BatchNorm stays until convert
            from ..quantize import prepare_qat

            model = prepare_qat(model, example=torch.randn(2, 3, pre.resolution, pre.resolution))
        if cfg.head_only:
            for name, param in model.named_parameters():
                param.requires_grad_(name.startswith("classifier."))
        model = model.to(ctx.device)
        if cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if cfg.sync_bn and ctx.world > 1:
            model = D.convert_sync_bn(model, ctx.device)
        self.model, self.pre = model, pre
        self.amp = amp_dtype(cfg.amp, ctx.device)
        if cfg.batch_size % ctx.world:
            raise ValueError(f"batch_size {cfg.batch_size} does not split evenly over {ctx.world} processes")
        self.local_batch = cfg.batch_size // ctx.world
        train_set = Augmented(self.data.train, train_transform(cfg, pre, self.data.hflip), seed=cfg.seed)
        self.sampler = ResumableSampler(train_set, world=ctx.world, rank=ctx.rank, seed=cfg.seed)
        drop_last = len(self.sampler) >= self.local_batch
        self.train_set = train_set
        self.train_loader = loader(train_set, batch_size=self.local_batch, sampler=self.sampler, workers=cfg.workers,
                                   drop_last=drop_last)
        n = len(self.sampler)
        self.steps_per_epoch = n // self.local_batch if drop_last else -(-n // self.local_batch)
        val_set = EvalDataset(self.data.val, pre.transform())
        self.val_loader = loader(val_set, batch_size=self.local_batch * 2, workers=cfg.workers,
                                 sampler=ShardSampler(len(val_set), ctx.world, ctx.rank))
        self.optimizer = make_optimizer(model, cfg)
        self.scheduler = make_scheduler(self.optimizer, cfg, self.steps_per_epoch)
        self.ema = None
        if cfg.ema_decay > 0:
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

            self.ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True)
        self.scaler = torch.amp.GradScaler(ctx.device.type, enabled=self.amp == torch.float16)
        self.pos = Position()
        if self.resume:
            self._load(Path(self.resume) / STATE_FILE)
        net: nn.Module = model
        if ctx.world > 1:
            ids = [ctx.device.index] if ctx.device.type == "cuda" else None
            net = nn.parallel.DistributedDataParallel(model, device_ids=ids)
        self.net = torch.compile(net) if cfg.compile else net

    # -- state -----------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        p = self.pos
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "scaler": self.scaler.state_dict(),
            "epoch": p.epoch, "step": p.step, "batch": p.batch, "sums": list(p.sums), "history": p.history,
            "rng": D.gather(self.ctx, rng_state()),
            "config": self.cfg.to_dict(),
        }

    def save(self) -> None:
        state = self.state()  # every rank joins the gather
        if self.ctx.main and self.run_dir is not None:
            save_state(self.run_dir / STATE_FILE, state)

    def _load(self, path: Path) -> None:
        s = load_state(path)
        self.model.load_state_dict(s["model"])
        self.optimizer.load_state_dict(s["optimizer"])
        self.scheduler.load_state_dict(s["scheduler"])
        if self.ema is not None and s.get("ema") is not None:
            self.ema.load_state_dict(s["ema"])
        self.scaler.load_state_dict(s["scaler"])
        self.pos = Position(s["epoch"], s["step"], s["batch"], tuple(s["sums"]), list(s["history"]))
        rngs = s["rng"]
        set_rng_state(rngs[self.ctx.rank] if self.ctx.rank < len(rngs) else rngs[0])

    # -- running ------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        self.ctx = D.setup(self.cfg.device)
        if self.ctx.device.type == "cpu":
            torch.set_num_threads(D.cpu_threads(self.cfg.threads, self.ctx.world))
        try:
            self._prepare_run_dir()
            self._prepare()
            if self.ctx.main and self.run_dir is not None:
                write_config(self.run_dir / "config.yaml", self.cfg.to_dict())
            with _sigint_sets_flag(self):
                start = time.perf_counter()
                interrupted = self._epochs()
                seconds = time.perf_counter() - start
            return self._finish(interrupted, seconds)
        finally:
            D.teardown(self.ctx)

    def _epochs(self) -> bool:
        cfg, p = self.cfg, self.pos
        while p.epoch < cfg.epochs:
            if self._train_epoch():
                self.save()
                return True
            self._end_epoch()
        return False

    def _train_epoch(self) -> bool:
        """One epoch from ``pos.batch``; True if stopped early (Ctrl-C, callback)."""
        cfg, ctx, p = self.cfg, self.ctx, self.pos
        self.sampler.set_position(p.epoch, p.batch * self.local_batch)
        self.train_set.epoch = p.epoch
        self.model.train()
        if cfg.freeze_bn:
            freeze_batchnorm(self.model)
        bar = self._bar(p.epoch)
        loss_sum, correct, seen, seconds = p.sums
        tick = time.perf_counter()
        for batch in self.train_loader:
            if batch is None:
                continue
            images, labels = batch
            loss, hits = self._step(images, labels)
            now = time.perf_counter()
            loss_sum, correct, seen, seconds = loss_sum + loss * len(labels), correct + hits, seen + len(labels), \
                seconds + now - tick
            tick = now
            p.step, p.batch, p.sums = p.step + 1, p.batch + 1, (loss_sum, correct, seen, seconds)
            if bar is not None:
                self._bar_update(bar, p, loss, correct / seen, seen * ctx.world / max(seconds, 1e-9))
            try:
                for cb in self.callbacks:
                    cb(self, p)
            except Interrupted:
                self.stop_requested = True
            if cfg.save_every and p.step % cfg.save_every == 0:
                self.save()
            if D.any_true(ctx, self.stop_requested):
                if bar is not None:
                    bar.close()
                return True
            tick = time.perf_counter()
        if bar is not None:
            bar.close()
        return False

    def _step(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[float, int]:
        cfg, dev = self.cfg, self.ctx.device
        images, labels = images.to(dev, non_blocking=True), labels.to(dev, non_blocking=True)
        if cfg.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast(dev.type, dtype=self.amp or torch.bfloat16, enabled=self.amp is not None):
            logits = self.net(images)
            loss = F.cross_entropy(logits.float(), labels, label_smoothing=cfg.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if cfg.clip_grad > 0:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), cfg.clip_grad)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        return loss.item(), int((logits.argmax(1) == labels).sum())

    def _end_epoch(self) -> None:
        cfg, ctx, p = self.cfg, self.ctx, self.pos
        loss_sum, correct, seen, seconds = D.all_sum(ctx, list(p.sums))
        seconds /= ctx.world
        val = self.validate()
        elapsed = (p.history[-1]["elapsed_s"] if p.history else 0.0) + seconds
        row = {"epoch": p.epoch + 1, "step": p.step, "lr": self.optimizer.param_groups[0]["lr"],
               "train_loss": loss_sum / max(1, seen), "train_acc": correct / max(1, seen),
               "val_loss": val.loss, "val_acc": val.acc, "val_top5": val.acc5,
               "images_per_s": seen / max(seconds, 1e-9), "elapsed_s": elapsed}
        p.history.append(row)
        p.epoch, p.batch, p.sums = p.epoch + 1, 0, (0.0, 0.0, 0.0, 0.0)
        self.log(f"epoch {row['epoch']}/{cfg.epochs}  train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f}"
                 f"  val loss {val.loss:.4f} top-1 {val.acc:.4f}  {row['images_per_s']:.0f} img/s")
        self.save()
        if ctx.main and self.run_dir is not None:
            write_metrics(self.run_dir / "metrics.csv", p.history)
            plot_curves(self.run_dir / "curves.png", p.history, f"{cfg.model} on {self.data.source}")

    def eval_model(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.model

    def validate(self) -> Tally:
        t = tally(self.eval_model(), self.val_loader, len(self.data.classes), device=self.ctx.device, amp=self.amp,
                  channels_last=self.cfg.channels_last)
        t.merge(D.all_sum(self.ctx, t.sums()))
        if self.cfg.freeze_bn:
            freeze_batchnorm(self.model)
        return t

    # -- progress and results ------------------------------------------------------------------
    def _bar(self, epoch: int):
        if not (self.progress and self.ctx.main):
            return None
        from tqdm import tqdm

        return tqdm(total=self.steps_per_epoch, initial=self.pos.batch, desc=f"epoch {epoch + 1}/{self.cfg.epochs}",
                    unit="step", leave=False, dynamic_ncols=True)

    def _bar_update(self, bar, p: Position, loss: float, acc: float, ips: float) -> None:
        left_steps = (self.cfg.epochs - p.epoch) * self.steps_per_epoch - p.batch
        eta = left_steps * self.cfg.batch_size / max(ips, 1e-9)
        bar.set_postfix_str(f"loss {loss:.3f} acc {acc:.3f} {ips:.0f} img/s left {eta // 60:.0f}:{eta % 60:02.0f}",
                            refresh=False)
        bar.update(1)

    def _finish(self, interrupted: bool, seconds: float) -> dict[str, Any]:
        from ..cli import allocator
        from ..weights.store import save_weights

        cfg, ctx, p = self.cfg, self.ctx, self.pos
        files = []
        final = self.eval_model()
        if ctx.main and self.run_dir is not None:
            files = ["config.yaml", STATE_FILE] + (["metrics.csv", "curves.png"] if p.history else [])
            if cfg.qat and not interrupted:
                from ..quantize import save_qat

                save_qat(final, self.run_dir / "int8.pt2", preprocess=self.pre, labels=self.data.classes)
                files.insert(0, "int8.pt2")
            elif hasattr(final, "arch_args") and not interrupted:
                save_weights(final, self.run_dir / WEIGHTS_FILE, preprocess=self.pre, labels=self.data.classes,
                             training={"recipe": cfg.recipe, "data": self.data.source, "epochs": p.epoch,
                                       "val_top1": p.history[-1]["val_acc"] if p.history else None})
                files.insert(0, WEIGHTS_FILE)
        ips = [r["images_per_s"] for r in p.history]
        s = {
            "interrupted": interrupted, "seconds": seconds, "model": getattr(self.model, "model_name", cfg.model),
            "params": sum(t.numel() for t in self.model.parameters()), "resolution": self.pre.resolution,
            "pretrained": cfg.pretrained, "data": self.data.source, "data_arg": cfg.data,
            "train_images": len(self.data.train), "val_images": len(self.data.val),
            "classes": len(self.data.classes), "skipped": len(self.data.skipped),
            "skipped_files": [dataclasses.asdict(x) for x in self.data.skipped],
            "recipe": cfg.recipe, "optimizer": cfg.optimizer, "lr": cfg.peak_lr(), "schedule": cfg.schedule,
            "epochs": cfg.epochs, "batch_size": cfg.batch_size, "world": ctx.world, "ema": self.ema is not None,
            "history": p.history, "images_per_s": sum(ips) / len(ips) if ips else 0.0,
            "device": str(ctx.device), "layout": "channels_last" if cfg.channels_last else "contiguous", "threads": torch.get_num_threads(),
            "amp": str(self.amp).replace("torch.", "") if self.amp else "fp32", "allocator": allocator(),
            "run_dir": str(self.run_dir) if self.run_dir else None, "files": files,
        }
        s["lines"] = summary_lines(s)
        return s


class _sigint_sets_flag:
    """First Ctrl-C asks the loop to save and stop after the current step; a second one
    interrupts at once."""

    def __init__(self, trainer: Trainer) -> None:
        self.trainer, self.previous = trainer, None

    def _handler(self, signum, frame) -> None:
        if self.trainer.stop_requested:
            raise KeyboardInterrupt
        self.trainer.stop_requested = True
        if self.trainer.ctx.main:
            print("\nstopping after this step and saving (Ctrl-C again to abort)", flush=True)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def train(cfg: TrainConfig, **kwargs: Any) -> dict[str, Any]:
    """Train with ``cfg``; see :class:`Trainer` for the keyword arguments."""
    return Trainer(cfg, **kwargs).run()
