"""``benchmark()`` and ``benchmark_training()``: result records for every model,
runtime, precision and batch, ours beside the peers' same architecture.

All candidates of one (model, batch) group (every source, runtime and precision)
are timed in one interleaved run, so every ratio in the group compares numbers
taken side by side.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from ..profile import profile
from ..progress import step as progress_step
from . import routes
from .machine import Machine, describe_machine
from .timing import Schedule, Timed, interleave, summarize


@dataclass(frozen=True)
class Result:
    """One measured (or failed) candidate.

    ``ratio`` is set on the peers' rows: our median time / this row's median time
    for the same model, task, runtime, precision and batch (below 1.0: ours is
    faster).
    """

    model: str  # the architecture, as our registry names it
    source: str  # "ours" | "torchvision" | "timm"
    impl: str  # that source's own name for it
    task: str  # "inference" | "train"
    runtime: str
    precision: str  # "fp32" | "int8" | "bf16"
    batch: int
    resolution: int
    threads: int
    layout: str
    runs: int = 0
    median_ms: float | None = None
    q1_ms: float | None = None
    q3_ms: float | None = None
    iqr_ms: float | None = None
    ci_pct: float | None = None  # 95% CI half-width of the median, percent
    images_per_s: float | None = None
    macs: int = 0  # per image, forward pass
    gmacs_per_s: float | None = None  # forward MACs x images/s (training: forward only)
    params: int = 0
    setup_s: float | None = None
    ratio: float | None = None
    note: str = ""
    error: str | None = None


@dataclass(frozen=True)
class BenchReport:
    machine: Machine
    results: list[Result]
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        from .claims import claims

        return {
            "machine": self.machine.to_dict(),
            "settings": self.settings,
            "results": [asdict(r) for r in self.results],
            "claims": claims(self.results),
        }


def parse_list(text: str, argument: str, choices: Sequence[str]) -> list[str]:
    """``"eager,onnxruntime"`` -> ["eager", "onnxruntime"]; unknown names raise, naming the choices."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    for item in items:
        if item not in choices:
            raise ValueError(f"{argument}: unknown {item!r}; expected a comma-separated list of {', '.join(choices)}")
    if not items:
        raise ValueError(f"{argument} is empty; expected a comma-separated list of {', '.join(choices)}")
    return items


def _check(models: Sequence[str], runtimes: Sequence[str], compare: Sequence[str], batches: Sequence[int],
           resolution: int, threads: int) -> None:
    from ..registry import get_spec

    for name in models:
        get_spec(name)  # raises naming the close matches
    for runtime in runtimes:
        if runtime not in routes.RUNTIMES:
            raise ValueError(f"unknown runtime {runtime!r}; expected one of {', '.join(routes.RUNTIMES)}")
    for source in compare:
        if source not in routes.PEER_SOURCES:
            raise ValueError(f"cannot compare with {source!r}; expected one of {', '.join(routes.PEER_SOURCES)}")
    for b in batches:
        if not isinstance(b, int) or isinstance(b, bool) or b < 1:
            raise ValueError(f"batch sizes must be positive integers, got {b!r}")
    if resolution is not None and (not isinstance(resolution, int) or resolution < 32):
        raise ValueError(f"resolution must be an integer >= 32, got {resolution!r}")
    if not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")


@contextlib.contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _progress(total: int, enabled: bool):
    if enabled:
        try:
            from tqdm import tqdm

            return tqdm(total=total, unit="step", leave=False, dynamic_ncols=True)
        except ImportError:
            pass
    return None


def _counts(source: str, name: str, resolution: int, cache: dict) -> tuple[int, int]:
    key = (source, name, resolution)
    if key not in cache:
        try:
            stats = profile(routes.build_model(source, name)[0], resolution)
            cache[key] = (stats.macs, stats.params)
        except Exception:  # a model whose forward the counter cannot trace (a detector's list input): no GMAC/s
            if routes.dense.task_of(name) is None:
                raise
            model = routes.build_model(source, name)[0]
            cache[key] = (0, sum(p.numel() for p in model.parameters()))
    return cache[key]


def _record(base: Result, timed: Timed | None, setup_s: float | None) -> Result:
    if timed is None or not timed.times:
        return replace(base, setup_s=setup_s, error=(timed.error if timed else base.error) or "no timed runs")
    s = summarize(timed.times)
    ips = base.batch * 1000 / s["median_ms"]
    return replace(
        base, runs=len(timed.times), setup_s=setup_s, images_per_s=ips,
        gmacs_per_s=base.macs * ips / 1e9, error=timed.error, **s,
    )


def add_ratios(results: Sequence[Result]) -> list[Result]:
    """Set ``ratio`` on every peer row that has our row of the same kind beside it."""
    ours = {
        (r.model, r.task, r.runtime, r.precision, r.batch, r.resolution): r.median_ms
        for r in results
        if r.source == "ours" and r.median_ms
    }
    out = []
    for r in results:
        mine = ours.get((r.model, r.task, r.runtime, r.precision, r.batch, r.resolution))
        if r.source != "ours" and mine and r.median_ms:
            r = replace(r, ratio=mine / r.median_ms)
        out.append(r)
    return out


def benchmark(
    models: Sequence[str],
    *,
    runtimes: Sequence[str] = ("eager",),
    batches: Sequence[int] = (1,),
    resolution: int | None = 224,
    threads: int | None = None,
    compare: Sequence[str] = (),
    peer_runtimes: Sequence[str] | None = None,
    int8: bool = False,
    bf16: bool = False,
    schedule: Schedule | None = None,
    workdir: str | Path | None = None,
    calib: str | Path | None = None,
    progress: bool = False,
) -> BenchReport:
    """Time every model under every runtime and batch size, with the peers' same
    architecture (``compare``) in the same interleaved run.

    ``peer_runtimes`` limits the runtimes the peers run under (default: all of
    ``runtimes``). ``int8`` adds our int8 models under the runtimes that run int8 (Inductor, ONNX
    Runtime, ExecuTorch, OpenVINO), calibrated on ``calib`` (a folder of images; default:
    random batches, which change the accuracy, not the speed). A route that cannot run here (a library missing, an export
    failing) is kept as a row with ``error`` saying why. ``bf16`` adds our models in bf16 under the
    runtimes that run it (``routes.BF16_RUNTIMES``; a row says so where the CPU has no native bf16).
    ``resolution=None``: 224 for classifiers, a dense model's own input (:mod:`.dense`).
    """
    from .machine import available_cpus

    threads = available_cpus() if threads is None else threads
    _check(models, [*runtimes, *(peer_runtimes or ())], compare, batches, resolution, threads)
    schedule = schedule or Schedule()
    plan: list[tuple[str, int, list[tuple[str, str, str]]]] = []
    for name in models:
        for batch in batches:
            cands = [("ours", rt, "fp32") for rt in runtimes]
            cands += [(src, rt, "fp32") for src in compare if src in routes.PEERS.get(name, {}) for rt in runtimes
                      if peer_runtimes is None or rt in peer_runtimes]
            cands += [("ours", rt, "int8") for rt in runtimes if int8 and rt in routes.INT8_RUNTIMES]
            cands += [("ours", rt, "bf16") for rt in runtimes if bf16 and rt in routes.BF16_RUNTIMES]
            plan.append((name, batch, cands))
    results: list[Result] = []
    counts: dict = {}
    bar = _progress(sum(len(c) * 2 for _, _, c in plan), progress)
    with contextlib.ExitStack() as stack:
        stack.enter_context(_torch_threads(threads))
        tmp = Path(workdir) if workdir else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mobilenet-bench-")))
        for name, batch, cands in plan:
            res = resolution or (routes.dense.resolution_of(name) if routes.dense.task_of(name) else 224)
            group: list[tuple[Result, Timed | None, float | None]] = []
            for source, runtime, precision in cands:
                if bar is not None:
                    bar.set_description(f"{name} b{batch}: preparing {source} {runtime} {precision}")
                else:  # per-step lines where no bar is shown (not a terminal); silent unless the CLI asks
                    progress_step(f"{name} b{batch}: preparing {source} {runtime} {precision}")
                macs, params = _counts(source, name, res, counts)
                base = Result(name, source, routes.PEERS.get(name, {}).get(source, name), "inference", runtime,
                              precision, batch, res, threads, routes.LAYOUTS[runtime],
                              macs=macs, params=params)
                try:
                    if source != "ours" and not routes.peer_available(source):
                        raise routes.RouteUnavailable(f"{source} is not installed")
                    route = routes.prepare(source, name, runtime, batch=batch, resolution=res,
                                           threads=threads, workdir=tmp, int8=precision == "int8", calib=calib,
                                           precision="fp32" if precision == "int8" else precision)
                    routes.check_output(route, batch, name=name, resolution=res)
                    group.append((replace(base, impl=route.impl, note=route.note), Timed(route.run), route.setup_s))
                except Exception as exc:  # reported in the row, the rest of the run goes on
                    group.append((replace(base, error=_one_line(exc)), None, None))
                if bar is not None:
                    bar.update(1)
            if bar is not None:
                bar.set_description(f"{name} b{batch}: timing {sum(t is not None for _, t, _ in group)} routes")
            else:
                progress_step(f"{name} b{batch}: timing {sum(t is not None for _, t, _ in group)} routes, interleaved")
            timed = [t for _, t, _ in group if t is not None]
            interleave(timed, schedule)
            results += [_record(base, t, setup) for base, t, setup in group]
            if bar is not None:
                bar.update(len(cands))
    if bar is not None:
        bar.close()
    settings = dict(models=list(models), runtimes=list(runtimes), batches=list(batches), resolution=resolution,
                    threads=threads, compare=list(compare),
                    peer_runtimes=list(peer_runtimes or runtimes), int8=int8, bf16=bf16,
                    calib=str(calib) if calib else "random", schedule=asdict(schedule))
    return BenchReport(describe_machine(threads), add_ratios(results), settings)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def _train_step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, optimizer: torch.optim.Optimizer):
    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()

    return step


def benchmark_training(
    models: Sequence[str],
    *,
    shapes: Sequence[tuple[int, int]] = ((64, 32), (32, 224)),
    threads: int | None = None,
    compare: Sequence[str] = ("torchvision",),
    channels_last: bool = True,
    schedule: Schedule | None = None,
    progress: bool = False,
) -> BenchReport:
    """Images per second of one training step (forward, cross-entropy, backward,
    SGD with momentum) for each (batch, resolution) in ``shapes``, ours beside the
    peers' same model, interleaved. Below 64 px the head has 10 classes (CIFAR-like),
    otherwise 1000."""
    from .machine import available_cpus

    threads = available_cpus() if threads is None else threads
    for batch, res in shapes:
        _check(models, (), compare, [batch], res, threads)
    schedule = schedule or Schedule(min_runs=5, min_time=2.0, max_time=20.0)
    layout = "channels_last" if channels_last else "NCHW"
    results: list[Result] = []
    counts: dict = {}
    plan = [(n, b, r) for n in models for b, r in shapes]
    bar = _progress(len(plan), progress)
    with _torch_threads(threads):
        for name, batch, res in plan:
            classes = 10 if res < 64 else 1000
            group = []
            for source in ("ours", *[s for s in compare if s in routes.PEERS.get(name, {})]):
                macs, params = _counts(source, name, res, counts)
                base = Result(name, source, name, "train", "eager", "fp32", batch, res, threads, layout,
                              macs=macs, params=params, note=f"{classes} classes, SGD momentum 0.9")
                try:
                    start = time.perf_counter()
                    model, impl = routes.build_model(source, name, num_classes=classes)
                    x = torch.randn(batch, 3, res, res)
                    if channels_last:
                        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
                    model.train()
                    y = torch.randint(0, classes, (batch,))
                    step = _train_step(model, x, y, torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9))
                    step()
                    group.append((replace(base, impl=impl), Timed(step), time.perf_counter() - start))
                except Exception as exc:
                    group.append((replace(base, error=_one_line(exc)), None, None))
            if bar is not None:
                bar.set_description(f"training {name} b{batch}x{res}")
            else:
                progress_step(f"timing a training step of {name} b{batch}x{res}")
            interleave([t for _, t, _ in group if t is not None], schedule)
            results += [_record(base, t, setup) for base, t, setup in group]
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    settings = dict(models=list(models), shapes=[list(s) for s in shapes], threads=threads, compare=list(compare),
                    layout=layout, schedule=asdict(schedule))
    return BenchReport(describe_machine(threads), add_ratios(results), settings)
