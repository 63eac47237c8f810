"""How one model runs under one runtime: build it, export it, load it, call it.

A route turns (source, model, runtime, precision, batch) into a zero-argument
function that runs one forward pass on a fixed input. Everything slow (export,
compilation, the first call) happens while the route is prepared, never inside
the timed calls. Our models go through ``mobilenet.export`` where it exists; the
peers' models (torchvision, timm) through the plain exporters, as a user of those
libraries would run them.
"""

from __future__ import annotations

import contextlib
import copy
import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import runtimes as _runtimes
from . import dense

# The torch-native routes, then every file runtime in mobilenet.runtimes (ONNX Runtime,
# ExecuTorch, OpenVINO, ...): bench learns those from the registry, not by name.
TORCH_RUNTIMES = ("eager", "channels_last", "compile")
_FILE_RUNTIMES = {r.engine: r for r in _runtimes.all_runtimes() if r.benchable}
RUNTIMES = (*TORCH_RUNTIMES, *_FILE_RUNTIMES)
INT8_RUNTIMES = ("compile", *(e for e, r in _FILE_RUNTIMES.items() if r.int8_backend))
BF16_RUNTIMES = tuple(e for e, r in _FILE_RUNTIMES.items() if "bf16" in r.precisions)
SOURCES = ("ours", "torchvision", "timm")
PEER_SOURCES = ("torchvision", "timm")

# Memory layout each runtime runs in (every throughput figure names it).
LAYOUTS = {
    "eager": "NCHW",
    "channels_last": "channels_last",
    "compile": "channels_last",
    **{e: r.layout for e, r in _FILE_RUNTIMES.items()},
}

# Our registry name -> the same architecture in each peer library (paper-exact
# equivalents only: torchvision's V3 width multiplier departs from the paper, so
# only its 1.0 models are listed).
PEERS: dict[str, dict[str, str]] = {
    "mobilenet_v1_100": {"timm": "mobilenetv1_100"},
    "mobilenet_v2_035": {"timm": "mobilenetv2_035"},
    "mobilenet_v2_050": {"timm": "mobilenetv2_050"},
    "mobilenet_v2_075": {"timm": "mobilenetv2_075"},
    "mobilenet_v2_100": {"torchvision": "mobilenet_v2", "timm": "mobilenetv2_100"},
    "mobilenet_v2_140": {"timm": "mobilenetv2_140"},
    "mobilenet_v3_large_075": {"timm": "mobilenetv3_large_075"},
    "mobilenet_v3_large_100": {"torchvision": "mobilenet_v3_large", "timm": "mobilenetv3_large_100"},
    "mobilenet_v3_small_050": {"timm": "mobilenetv3_small_050"},
    "mobilenet_v3_small_075": {"timm": "mobilenetv3_small_075"},
    "mobilenet_v3_small_100": {"torchvision": "mobilenet_v3_small", "timm": "mobilenetv3_small_100"},
    "mobilenet_v3_large_minimal_100": {"timm": "tf_mobilenetv3_large_minimal_100"},
    "mobilenet_v3_small_minimal_100": {"timm": "tf_mobilenetv3_small_minimal_100"},
    # V4: timm's mobilenetv4_* build the same networks (tests/test_v4.py compares logits).
    **{f"mobilenet_v4_{c}": {"timm": f"mobilenetv4_{c}"}
       for c in ("conv_small", "conv_small_050", "conv_small_035", "conv_medium", "conv_large", "hybrid_medium",
                 "hybrid_medium_075", "hybrid_large", "hybrid_large_075")},
    # detectors and segmentation models: torchvision's same model, with the same weights (bench.dense)
    **{name: {"torchvision": impl} for name, impl in dense.DENSE_PEERS.items()},
}


class RouteUnavailable(Exception):
    """This route cannot run here (a library or exporter is missing); the reason is reported."""


@dataclass
class Route:
    run: Callable[[], object]
    impl: str  # the builder's own name, e.g. torchvision "mobilenet_v2"
    layout: str
    setup_s: float
    note: str = ""


def peer_available(source: str) -> bool:
    try:
        __import__("torchvision.models" if source == "torchvision" else source)
    except ImportError:
        return False
    return True


def build_model(source: str, name: str, *, num_classes: int = 1000) -> tuple[nn.Module, str]:
    """A freshly initialised model of architecture ``name`` from ``source`` (dense models:
    torchvision's seeded initialisation on both sides, see :mod:`.dense`)."""
    if dense.task_of(name):
        if source == "ours":
            return dense.our_model(name), name
        if source != "torchvision" or name not in dense.DENSE_PEERS:
            raise RouteUnavailable(f"{source} has no model of the same architecture as {name}")
        return dense.torchvision_model(name), dense.DENSE_PEERS[name]
    if source == "ours":
        from ..registry import create_model

        return create_model(name, num_classes=num_classes), name
    impl = PEERS.get(name, {}).get(source)
    if impl is None:
        raise RouteUnavailable(f"{source} has no model of the same architecture as {name}")
    if source == "torchvision":
        import torchvision.models

        return getattr(torchvision.models, impl)(num_classes=num_classes), impl
    import timm

    return timm.create_model(impl, pretrained=False, num_classes=num_classes), impl


def _inference(model: Callable, x: torch.Tensor) -> Callable[[], torch.Tensor]:
    def run() -> torch.Tensor:
        with torch.inference_mode():
            return model(x)

    return run


def _channels_last(model: nn.Module, x: torch.Tensor) -> tuple[nn.Module, torch.Tensor]:
    return copy.deepcopy(model).to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)


def _quiet() -> contextlib.ExitStack:
    """Exporters print progress lines; a benchmark table should not be interleaved with them."""
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
    return stack


def _export(source: str, model: nn.Module, runtime, x: torch.Tensor, path: Path, int8: bool, calib,
            precision: str) -> str:
    """Write ``model`` for a file runtime; returns a note naming the exporter.

    Ours go through ``mobilenet.export`` (BatchNorm folded, the file checked against
    eager); the peers through the library's plain exporter. Both with a dynamic batch."""
    if source == "ours":
        from ..export import export_model

        if not path.exists():  # dynamic batch: one file serves every batch size
            with _quiet():
                export_model(model, runtime.name, path, resolution=x.shape[-1], int8=int8,
                             calib=_calib(calib, x) if int8 else None, precision=precision)
        return f"mobilenet.export ({runtime.name}{', int8' if int8 else ''}{', ' + precision if precision != 'fp32' else ''})"
    if int8:
        raise RouteUnavailable("int8 routes run our models only")
    if runtime.plain_exporter is None:
        raise RouteUnavailable(f"no plain {runtime.name} exporter for {source}'s models")
    if not path.exists():  # dynamic batch: one file serves every batch size
        with _quiet():
            runtime.write_plain(model, x[:1].expand(2, -1, -1, -1).contiguous(), path)
    return runtime.plain_exporter


def _calib(calib, x: torch.Tensor):
    """A folder of images, or (for speed alone, which does not depend on the
    calibration) two random batches."""
    if calib is not None:
        return calib
    generator = torch.Generator().manual_seed(0)
    return [torch.randn(8, *x.shape[1:], generator=generator) for _ in range(2)]


def _compiled_int8(model: nn.Module, x: torch.Tensor, calib) -> Callable:
    try:
        from ..quantize import quantize_ptq
    except ImportError:
        raise RouteUnavailable("int8 under torch.compile needs mobilenet.quantize, which is not installed") from None
    with _quiet():
        return torch.compile(quantize_ptq(model, _calib(calib, x), backend="x86"), dynamic=False)


def prepare(
    source: str,
    name: str,
    runtime: str,
    *,
    batch: int,
    resolution: int,
    threads: int,
    workdir: Path,
    int8: bool = False,
    calib=None,
    precision: str = "fp32",
) -> Route:
    """Build, export and load one route, call it once, and time all of that as set-up.
    ``precision`` is ``"bf16"`` for a reduced-precision route (``BF16_RUNTIMES``)."""
    start = time.perf_counter()
    model, impl = build_model(source, name)
    model.eval()
    task = dense.task_of(name)
    x = dense.example(name, batch, resolution) if task else torch.randn(batch, 3, resolution, resolution)
    layout, note = LAYOUTS[runtime], ""
    if task == "detection" and runtime not in ("eager", "onnxruntime"):
        raise RouteUnavailable(f"detectors run eager or onnxruntime here, not {runtime}")
    if task == "detection" and int8:
        raise RouteUnavailable("no int8 detector routes")
    if int8 and runtime not in INT8_RUNTIMES:
        raise RouteUnavailable(f"int8 runs through {' or '.join(INT8_RUNTIMES)}, not {runtime}")
    if precision != "fp32" and runtime not in BF16_RUNTIMES:
        raise RouteUnavailable(f"{precision} runs through {' or '.join(BF16_RUNTIMES) or 'no runtime'}, not {runtime}")
    if task and runtime == "eager":
        run = dense.eager_call(name, model, x)
    elif task == "detection":  # onnxruntime: decoding and NMS inside the file
        rt = _FILE_RUNTIMES[runtime]
        rt.check_installed()
        path = workdir / f"{source}-{impl}-{runtime}-fp32-r{resolution}{rt.suffix}"
        note = dense.export_file(source, name, model, x, path)
        run = dense.file_call(name, rt.load(path, threads=threads).run, x)
    elif runtime in ("eager", "channels_last"):
        if runtime == "channels_last":
            model, x = _channels_last(model, x)
        run = _inference(model, x)
    elif runtime == "compile" and int8:
        # PT2E int8 graph (x86 quantizer) lowered by Inductor to oneDNN int8 kernels.
        compiled = _compiled_int8(model, x, calib)
        import torch._inductor.config as inductor_config

        with inductor_config.patch(freezing=True), torch.inference_mode(), _quiet():
            compiled(x)
        run, layout, note = _inference(compiled, x), "NCHW in (Inductor's choice inside)", "mobilenet.quantize (x86) + torch.compile"
    elif runtime == "compile":
        model, x = _channels_last(model, x)
        compiled = torch.compile(model, dynamic=False)
        # Freezing folds BatchNorm into the convs and pre-packs oneDNN weights: the
        # inference set-up PyTorch recommends for CPU.
        import torch._inductor.config as inductor_config

        with inductor_config.patch(freezing=True), torch.inference_mode(), _quiet():
            compiled(x)
        run, note = _inference(compiled, x), "torch.compile (inductor, freezing)"
    elif runtime in _FILE_RUNTIMES:
        rt = _FILE_RUNTIMES[runtime]
        rt.check_installed()
        if precision != "fp32" and precision not in rt.native_precisions():
            raise RouteUnavailable(f"this CPU has no native {precision} for {runtime}")
        tag = f"{source}-{impl}-{runtime}-{'int8' if int8 else precision}-r{resolution}"
        path = workdir / (tag + rt.suffix)
        if task and not int8 and runtime == "onnxruntime":
            note = dense.export_file(source, name, model, x, path)
        else:
            note = _export(source, model, rt, x, path, int8, calib, precision)
        # Loaded as a user loads the file (load_artifact); ExecuTorch runs batches above
        # its planned input buffer (XNNPACK lowering caps it at 15) in chunks.
        loaded = rt.load(path, threads=threads, precision=precision)
        if loaded.precision != precision and not int8:
            raise RouteUnavailable(f"{runtime} ran {loaded.precision}, not {precision}")
        run = lambda: loaded.run(x)  # noqa: E731
    else:
        raise ValueError(f"unknown runtime {runtime!r}; expected one of {', '.join(RUNTIMES)}")
    run()
    return Route(run, impl, layout, time.perf_counter() - start, note)


def check_output(route: Route, batch: int, num_classes: int = 1000, *, name: str | None = None,
                 resolution: int | None = None) -> None:
    """A route must return [batch, num_classes] logits (a dense model ``name``: detections,
    or logits at the input size): a runtime that returns nothing useful is not measured."""
    out = route.run()
    if name is not None and dense.task_of(name):
        from ..registry import get_spec

        return dense.check(name, out, batch, resolution, get_spec(name).num_classes)
    if isinstance(out, (list, tuple)):
        out = out[0]
    shape = tuple(np.asarray(out).shape) if not isinstance(out, torch.Tensor) else tuple(out.shape)
    if shape != (batch, num_classes):
        raise RouteUnavailable(f"returned an output of shape {shape}, expected {(batch, num_classes)}")
