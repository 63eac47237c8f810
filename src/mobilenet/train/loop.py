"""The training loop: one process or many (torchrun), resumable at any step.

Order of preparation (``Trainer.run``): data -> model (fresh or pretrained, new
classifier) -> ``model_transform`` (the hook where e.g. quantization-aware
training swaps in fake-quantized modules) -> device, layout, SyncBatchNorm ->
optimizer, schedule, EMA, grad scaler -> resume -> DDP, compile -> epochs.
"""

from __future__ import annotations

import dataclasses
import math
import signal
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..evaluate import Tally, amp_dtype, tally
from ..registry import MODELS
from . import distributed as D
from .build import build_model, freeze_batchnorm
from .checkpoint import STATE_FILE, load_state, rng_state, save_state, set_rng_state
from .config import FIELDS, RESUME_OVERRIDES, TrainConfig
from .data import DataError, DataSplit, load_data
from .loader import Augmented, EvalDataset, ResumableSampler, ShardSampler, loader, train_transform
from .optim import make_optimizer, make_scheduler
from .report import plot_curves, summary_lines, write_config, write_metrics
from .rundir import RunDir, RunDirError

WEIGHTS_FILE = "weights.safetensors"
ModelTransform = Callable[[nn.Module, TrainConfig], nn.Module]


class Interrupted(Exception):
    """Raised by a callback to stop after saving."""


class Diverged(RuntimeError):
    """The loss or the weights became NaN or infinite; the message names the last good state."""


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
    called as ``cb(trainer, position)`` after every optimizer step. ``resume``: the
    run folder to continue (its state must have been saved with the same ``cfg``);
    ``overwrite``: replace the run in ``cfg.output/cfg.name`` if there is one.
    """

    def __init__(self, cfg: TrainConfig, *, resume: str | Path | None = None, model: nn.Module | None = None,
                 model_transform: ModelTransform | None = None, callbacks: Sequence[Callable] = (),
                 write: bool = True, progress: bool = True, explicit_model: bool = True, overwrite: bool = False,
                 log: Callable[[str], None] = print) -> None:
        self.cfg, self.resume, self.given_model, self.model_transform = cfg, resume, model, model_transform
        self.callbacks, self.write, self.progress, self.explicit_model = list(callbacks), write, progress, explicit_model
        self._log, self.stop_requested, self.overwrite = log, False, overwrite
        self.run_dir: Path | None = Path(resume) if resume else None
        self.rundir: RunDir | None = None  # the locked folder (rank 0)
        self._last_save: int | None = None  # step of the newest good state on disk
        self._saved_at = time.monotonic()
        self.task = None  # classification; a dense task object (.dense) for --task detection|segmentation
        if cfg.task != "classification":
            from .dense import make_task

            self.task = make_task(cfg)

    def log(self, msg: str) -> None:
        if self.ctx.main:
            self._log(msg)

    # -- preparation --------------------------------------------------------------------
    def _prepare_run_dir(self) -> None:
        """Take (and lock) the run folder before any long work: see ``rundir``."""
        cfg = self.cfg
        if not self.write:
            self.run_dir = None
            return
        if self.resume and self.overwrite:
            raise RunDirError("give --resume (continue a run) or --overwrite (replace it), not both")
        if not self.ctx.main:  # rank 0 owns the folder
            return
        if self.resume:
            self.rundir = RunDir.existing(self.resume)
        else:
            what = Path(cfg.pretrained).stem if cfg.pretrained and not self.explicit_model else cfg.model
            self.rundir = RunDir.new(cfg.output, cfg.name, f"{what}-{Path(cfg.data).name or 'data'}",
                                     overwrite=self.overwrite)
        self.run_dir = self.rundir.path
        if self.rundir.unlocked:
            self.log(f"warning: cannot lock {self.run_dir} ({self.rundir.unlocked}); nothing stops another run "
                     "from writing into it")
        if self.rundir.removed:
            self.log(f"removed {len(self.rundir.removed)} temporary file(s) a killed run left in {self.run_dir}: "
                     f"{', '.join(self.rundir.removed)}")

    def _prepare(self) -> None:
        cfg, ctx = self.cfg, self.ctx
        torch.manual_seed(cfg.seed)
        if self.task is not None:
            return self._prepare_dense()
        pre_side = (cfg.resolution or 224) * 8 // 7 + 1  # covers crop_pct down to 0.875
        self.data: DataSplit = load_data(cfg.data, val_split=cfg.val_split, seed=cfg.seed, root=cfg.data_root,
                                         strict=cfg.strict, cache_side=pre_side, log=self.log)
        classes = self.data.classes
        if len(classes) < 2:
            raise DataError(f"--data {cfg.data}: only one class ({classes[0]!r}); a classifier needs at least 2 "
                            "classes")
        if not self.data.val:
            raise DataError(f"--data {cfg.data}: too few images to hold out a validation split ({len(self.data.train)} "
                            f"images; with --val-split {cfg.val_split} a class needs 2 or more images to give one), "
                            "or give train/ and val/ folders")
        if self.given_model is not None:
            from ..images import Preprocess

            model, pre = self.given_model, Preprocess(resolution=cfg.resolution or 224, crop_pct=cfg.crop_pct or
                                                      self.data.crop_pct)
        else:
            model, pre = build_model(cfg, len(classes), classes, self.data.crop_pct, self.explicit_model)
        if getattr(model, "model_name", None) in MODELS and model.model_name != cfg.model:
            self.cfg = cfg = dataclasses.replace(cfg, model=model.model_name)  # named by the weights
        # config.yaml says what ran: digits are never flipped, the crop the data chose
        self.cfg = cfg = dataclasses.replace(cfg, hflip=cfg.hflip if self.data.hflip else 0.0, crop_pct=pre.crop_pct)
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
        self._prepare_training(model, pre)

    def _prepare_dense(self) -> None:
        """The dense task's data, model and datasets; the rest as for a classifier."""
        cfg, ctx, task = self.cfg, self.ctx, self.task
        self.data = task.load_data(self.log)
        model, pre = task.build_model(self.data)
        self.cfg = cfg = dataclasses.replace(cfg, resolution=pre.resolution, crop_pct=pre.crop_pct)
        model = model.to(ctx.device)
        if cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if cfg.sync_bn and ctx.world > 1:
            model = D.convert_sync_bn(model, ctx.device)
        self.pre = pre
        self._prepare_training(model, pre)
        if not self.resume:  # a resumed run's weights come from its state
            with torch.random.fork_rng(devices=[]):
                used = task.calibrate(model, self.train_set, ctx.device)
            if used:
                self.log(f"pretrained backbone: BatchNorm statistics measured on {used} training images")

    def _prepare_training(self, model: nn.Module, pre) -> None:
        """Loaders, optimizer, schedule, EMA, scaler, resumed state, DDP: the same for every task."""
        cfg, ctx, task = self.cfg, self.ctx, self.task
        self.model, self.pre = model, pre
        self.amp = amp_dtype(cfg.amp, ctx.device)
        if cfg.batch_size % ctx.world:
            raise ValueError(f"batch_size {cfg.batch_size} does not split evenly over {ctx.world} processes")
        self.local_batch = cfg.batch_size // ctx.world
        if task is None:
            train_set = Augmented(self.data.train, train_transform(cfg, pre, self.data.hflip), seed=cfg.seed)
        else:
            train_set = task.train_set(self.data, pre)
        self.sampler = ResumableSampler(train_set, world=ctx.world, rank=ctx.rank, seed=cfg.seed)
        drop_last = len(self.sampler) >= self.local_batch
        self.train_set = train_set
        self.train_loader = loader(train_set, batch_size=self.local_batch, sampler=self.sampler, workers=cfg.workers,
                                   drop_last=drop_last, **({"collate_fn": task.collate} if task else {}))
        n = len(self.sampler)
        self.steps_per_epoch = n // self.local_batch if drop_last else -(-n // self.local_batch)
        if task is None:
            shard = ShardSampler(len(self.data.val), ctx.world, ctx.rank)
            val_set = EvalDataset(self.data.val, pre, keep=shard.indices)  # as `mobilenet eval` reads it
            self.val_loader = loader(val_set, batch_size=self.local_batch * 2, workers=cfg.workers, sampler=shard)
        else:
            val_set = task.val_set(self.data, pre)
            self.val_loader = loader(val_set, batch_size=task.val_batch, workers=cfg.workers,
                                     sampler=ShardSampler(len(val_set), ctx.world, ctx.rank),
                                     collate_fn=task.val_collate)
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
        if ctx.world > 1 and cfg.freeze_backbone:
            raise ValueError("--freeze-backbone is not supported under torchrun (DistributedDataParallel needs the "
                             "same trainable parameters throughout); train in one process")
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
        """Write ``state.pt``, unless the weights are no longer finite (then raise Diverged:
        the state already on disk stays the last good one)."""
        self._check_weights()
        state = self.state()  # every rank joins the gather
        if self.ctx.main and self.run_dir is not None:
            save_state(self.run_dir / STATE_FILE, state)
        if self.write:  # rank 0 wrote it
            self._last_save = self.pos.step
        self._saved_at = time.monotonic()

    def _check_weights(self) -> None:
        models = [self.model] + ([self.ema.module] if self.ema is not None else [])
        named = [*((n, t) for m in models for n, t in m.named_parameters()),
                 *((n, t) for m in models for n, t in m.named_buffers() if "running_" in n and t.is_floating_point())]
        if named and not bool(torch.stack([torch.isfinite(t).all() for _, t in named]).all()):
            bad = next(n for n, t in named if not bool(torch.isfinite(t).all()))
            raise self._diverged(f"the weights hold NaN or inf ({bad})")

    def _diverged(self, what: str) -> Diverged:
        p, cfg = self.pos, self.cfg
        if self._last_save is None:
            kept = "nothing had been saved yet" + (", so the run folder is removed" if self.rundir and not self.resume
                                                   else "")
        else:
            where = self.run_dir / STATE_FILE if self.run_dir is not None else f"{STATE_FILE} in the run folder"
            kept = f"the last good state is {where} (step {self._last_save})"
        return Diverged(f"training diverged at epoch {p.epoch + 1}, step {p.step}: {what}; {kept}; no weights were "
                        f"written. Lower --lr (peak {cfg.peak_lr():.3g}) or add --clip-grad or --warmup-epochs, "
                        "and start a new run")

    def _load(self, path: Path) -> None:
        s = load_state(path)
        if s.get("config"):
            self._check_same_run(s["config"], path)
        self.model.load_state_dict(s["model"])
        self.optimizer.load_state_dict(s["optimizer"])
        self.scheduler.load_state_dict(s["scheduler"])
        if self.ema is not None and s.get("ema") is not None:
            self.ema.load_state_dict(s["ema"])
        self.scaler.load_state_dict(s["scaler"])
        self.pos = Position(s["epoch"], s["step"], s["batch"], tuple(s["sums"]), list(s["history"]))
        rngs = s["rng"]
        set_rng_state(rngs[self.ctx.rank] if self.ctx.rank < len(rngs) else rngs[0])
        self._last_save = self.pos.step

    def _check_same_run(self, saved: dict[str, Any], path: Path) -> None:
        """Resuming with another config would mix two runs in one folder: refuse, and say what differs."""
        def comparable(values: dict[str, Any]) -> dict[str, Any]:
            d = {k: v for k, v in values.items() if k in FIELDS and k not in (*RESUME_OVERRIDES, "name", "output")}
            d["crop_scale"] = [float(x) for x in d.get("crop_scale") or ()]
            d["crop_pct"] = d.get("crop_pct") or self.pre.crop_pct  # states from before these were recorded
            d["hflip"] = d.get("hflip") if self.data.hflip else 0.0
            return d

        mine, theirs = comparable(self.cfg.to_dict()), comparable(saved)
        differ = [k for k in mine if k in theirs and mine[k] != theirs[k]]
        if differ:
            listed = ", ".join(f"{k} {mine[k]!r} (state: {theirs[k]!r})" for k in differ)
            raise RunDirError(f"--resume {path.parent}: the config differs from the one {path} was saved with: "
                              f"{listed}; resuming would mix two runs. Resume with the saved config, or start a new run")

    # -- running ------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        self.ctx = D.setup(self.cfg.device)
        if self.ctx.device.type == "cpu":
            torch.set_num_threads(D.cpu_threads(self.cfg.threads, self.ctx.world))
        try:
            self._prepare_run_dir()
            try:
                self._prepare()
                if self.rundir is not None and self.overwrite:
                    self.rundir.clear()  # only now: a start that failed kept the old run
                if self.ctx.main and self.run_dir is not None:
                    write_config(self.run_dir / "config.yaml", self.cfg.to_dict())
                    if self.pos.history:  # resumed: the files a kill may have left behind the state
                        self._write_metrics()
                with _sigint_sets_flag(self):
                    start = time.perf_counter()
                    interrupted = self._epochs()
                    seconds = time.perf_counter() - start
                return self._finish(interrupted, seconds)
            except BaseException:
                if self.rundir is not None and not self.resume and self._last_save is None:
                    self.rundir.discard()  # a failed start leaves no run folder behind
                raise
        finally:
            if self.rundir is not None:
                self.rundir.release()
            D.teardown(self.ctx)

    def _write_metrics(self) -> None:
        history, task = self.pos.history, self.task
        title = f"{self.cfg.model} on {self.data.source}"
        if task is None:
            write_metrics(self.run_dir / "metrics.csv", history)
            plot_curves(self.run_dir / "curves.png", history, title)
        else:
            write_metrics(self.run_dir / "metrics.csv", history, task.columns)
            plot_curves(self.run_dir / "curves.png", history, title, metric=(task.metric, f"val {task.metric_label}"),
                        train_metric="train_acc" if "train_acc" in task.columns else None, ylabel=task.metric_label)

    def _epochs(self) -> bool:
        cfg, p = self.cfg, self.pos
        self._saved_at = time.monotonic()
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
        if self.task is not None and cfg.freeze_backbone:
            self.task.freeze_backbone(self.model, p.epoch < cfg.freeze_backbone)
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
            due = ctx.main and cfg.save_minutes > 0 and time.monotonic() - self._saved_at >= cfg.save_minutes * 60
            stop, diverged, due = D.all_sum(ctx, [float(self.stop_requested), float(not math.isfinite(loss)),
                                                  float(due)])  # every process decides alike
            if diverged:
                if bar is not None:
                    bar.close()
                raise self._diverged(f"the loss is {loss}")
            if due or (cfg.save_every and p.step % cfg.save_every == 0):
                self.save()
            if stop:
                if bar is not None:
                    bar.close()
                return True
            tick = time.perf_counter()
        if bar is not None:
            bar.close()
        return False

    def _step(self, images, labels) -> tuple[float, float]:
        cfg, dev = self.cfg, self.ctx.device
        if isinstance(labels, list):  # detection: one target dict per image
            images = [im.to(dev, non_blocking=True) for im in images]
            labels = [{k: v.to(dev, non_blocking=True) for k, v in t.items()} for t in labels]
        else:
            images, labels = images.to(dev, non_blocking=True), labels.to(dev, non_blocking=True)
            if cfg.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast(dev.type, dtype=self.amp or torch.bfloat16, enabled=self.amp is not None):
            if self.task is not None:
                loss, hits = self.task.loss(self.net, images, labels)
            else:
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
        if self.task is None:
            hits = int((logits.argmax(1) == labels).sum())
        return loss.item(), hits

    def _end_epoch(self) -> None:
        cfg, ctx, p = self.cfg, self.ctx, self.pos
        loss_sum, correct, seen, seconds = D.all_sum(ctx, list(p.sums))
        seconds /= ctx.world
        val = self.validate()
        elapsed = (p.history[-1]["elapsed_s"] if p.history else 0.0) + seconds
        if self.task is not None:
            return self._end_dense_epoch(val, loss_sum, correct, seen, seconds, elapsed)
        row = {"epoch": p.epoch + 1, "step": p.step, "lr": self.optimizer.param_groups[0]["lr"],
               "train_loss": loss_sum / max(1, seen), "train_acc": correct / max(1, seen),
               "val_loss": val.loss, "val_acc": val.acc, "val_top5": val.acc5,
               "images_per_s": seen / max(seconds, 1e-9), "elapsed_s": elapsed}
        p.history.append(row)
        p.epoch, p.batch, p.sums = p.epoch + 1, 0, (0.0, 0.0, 0.0, 0.0)
        self.log(f"epoch {row['epoch']}/{cfg.epochs}  train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f}"
                 f"  val loss {val.loss:.4f} top-1 {val.acc:.4f}  {row['images_per_s']:.0f} img/s")
        if ctx.main and self.run_dir is not None:  # before the state: a kill between them loses no row
            self._write_metrics()
        self.save()

    def _end_dense_epoch(self, val: dict[str, Any], loss_sum: float, correct: float, seen: float, seconds: float,
                         elapsed: float) -> None:
        cfg, ctx, p = self.cfg, self.ctx, self.pos
        row = {"epoch": p.epoch + 1, "step": p.step, "lr": self.optimizer.param_groups[0]["lr"],
               "train_loss": loss_sum / max(1, seen), "train_acc": correct / max(1, seen), **val,
               "images_per_s": seen / max(seconds, 1e-9), "elapsed_s": elapsed}
        p.history.append(row)
        p.epoch, p.batch, p.sums = p.epoch + 1, 0, (0.0, 0.0, 0.0, 0.0)
        self.log(f"epoch {row['epoch']}/{cfg.epochs}  {self.task.log_line(row)}  {row['images_per_s']:.1f} img/s")
        if ctx.main and self.run_dir is not None:
            self._write_metrics()
        self.save()

    def eval_model(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.model

    def validate(self) -> Tally | dict[str, Any]:
        if self.task is not None:
            result = self.task.validate(self.eval_model(), self.val_loader, self.ctx, self.data)
            if self.cfg.freeze_bn:
                freeze_batchnorm(self.model)
            return result
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
                metric = self.task.metric if self.task is not None else "val_acc"
                save_weights(final, self.run_dir / WEIGHTS_FILE, preprocess=self.pre, labels=self.data.classes,
                             training={"recipe": cfg.recipe, "data": self.data.source, "epochs": p.epoch,
                                       ("val_top1" if metric == "val_acc" else metric):
                                           p.history[-1][metric] if p.history else None})
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
            "task": cfg.task, "metric": self.task.metric if self.task is not None else "val_acc",
            "metric_label": self.task.metric_label if self.task is not None else "top-1",
        }
        s["lines"] = summary_lines(s)
        return s


class _sigint_sets_flag:
    """First Ctrl-C (or SIGTERM: `kill PID`, a scheduler or `docker stop`, which ended the
    process without saving) asks the loop to save and stop after the current step; a
    second one interrupts at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, trainer: Trainer) -> None:
        self.trainer, self.previous = trainer, {}

    def _handler(self, signum, frame) -> None:
        if self.trainer.stop_requested:
            raise KeyboardInterrupt
        self.trainer.stop_requested = True
        if self.trainer.ctx.main:
            what = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
            print(f"\n{what}: stopping after this step and saving ({what} again to abort)", flush=True)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = {s: signal.signal(s, self._handler) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)


def train(cfg: TrainConfig, **kwargs: Any) -> dict[str, Any]:
    """Train with ``cfg``; see :class:`Trainer` for the keyword arguments."""
    return Trainer(cfg, **kwargs).run()
