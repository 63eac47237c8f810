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

RUNTIMES = ("eager", "channels_last", "compile", "onnxruntime", "executorch")
INT8_RUNTIMES = ("compile", "onnxruntime", "executorch")
SOURCES = ("ours", "torchvision", "timm")
PEER_SOURCES = ("torchvision", "timm")

# Memory layout each runtime runs in (every throughput figure names it).
LAYOUTS = {
    "eager": "NCHW",
    "channels_last": "channels_last",
    "compile": "channels_last",
    "onnxruntime": "NCHW in (ORT's blocked layout inside)",
    "executorch": "NCHW in (XNNPACK NHWC inside)",
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
    """A freshly initialised model of architecture ``name`` from ``source``."""
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


def _our_exporter():
    try:
        from .. import export
    except ImportError:
        return None
    return export if hasattr(export, "export_model") else None


def _batch_dim() -> tuple[dict, ...]:
    # An example batch of 2 keeps torch.export from specialising the batch size to 1.
    return ({0: torch.export.Dim("batch", min=1, max=128)},)


def _plain_onnx(model: nn.Module, x: torch.Tensor, path: Path) -> None:
    with _quiet():
        torch.onnx.export(model, (x[:1].expand(2, -1, -1, -1).contiguous(),), str(path), dynamo=True,
                          external_data=False, dynamic_shapes=_batch_dim())


def _plain_executorch(model: nn.Module, x: torch.Tensor, path: Path) -> None:
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    with _quiet():
        program = torch.export.export(model, (x[:1].expand(2, -1, -1, -1).contiguous(),), dynamic_shapes=_batch_dim())
        lowered = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch()
    path.write_bytes(lowered.buffer)


def _export(source: str, model: nn.Module, fmt: str, x: torch.Tensor, path: Path, int8: bool, calib) -> str:
    """Write ``model`` as an ONNX or ExecuTorch file; returns a note naming the exporter.

    Ours go through ``mobilenet.export`` (BatchNorm folded, the file checked against
    eager); the peers through the plain exporters. Both with a dynamic batch."""
    exporter = _our_exporter() if source == "ours" else None
    if exporter is not None:
        if not path.exists():  # dynamic batch: one file serves every batch size
            with _quiet():
                exporter.export_model(model, fmt, path, resolution=x.shape[-1], int8=int8,
                                      calib=_calib(calib, x) if int8 else None)
        return f"mobilenet.export ({fmt}{', int8' if int8 else ''})"
    if int8:
        raise RouteUnavailable("int8 needs mobilenet.export (export_model(..., int8=True)), which is not installed")
    if not path.exists():  # dynamic batch: one file serves every batch size
        (_plain_onnx if fmt == "onnx" else _plain_executorch)(model, x, path)
    name = "torch.onnx.export(dynamo=True)" if fmt == "onnx" else "torch.export + XNNPACK partitioner"
    return name + (" (mobilenet.export not available)" if source == "ours" else "")


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


def _ort_session(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


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
) -> Route:
    """Build, export and load one route, call it once, and time all of that as set-up."""
    start = time.perf_counter()
    model, impl = build_model(source, name)
    model.eval()
    x = torch.randn(batch, 3, resolution, resolution)
    layout, note = LAYOUTS[runtime], ""
    if int8 and runtime not in INT8_RUNTIMES:
        raise RouteUnavailable(f"int8 runs through {' or '.join(INT8_RUNTIMES)}, not {runtime}")
    if runtime in ("eager", "channels_last"):
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
    elif runtime in ("onnxruntime", "executorch"):
        fmt = "onnx" if runtime == "onnxruntime" else "executorch"
        tag = f"{source}-{impl}-{runtime}-{'int8' if int8 else 'fp32'}-r{resolution}"
        path = workdir / (tag + (".onnx" if fmt == "onnx" else ".pte"))
        note = _export(source, model, fmt, x, path, int8, calib)
        if runtime == "onnxruntime":
            session = _ort_session(path, threads)
            feed = {session.get_inputs()[0].name: x.numpy()}
            run = lambda: session.run(None, feed)  # noqa: E731
        else:
            # load_artifact runs batches above the planned input buffer (XNNPACK lowering
            # caps it at 15) in chunks, as a user of the .pte must.
            from ..export import load_artifact

            artifact = load_artifact(path, threads=threads)
            run = lambda: artifact(x)  # noqa: E731
    else:
        raise ValueError(f"unknown runtime {runtime!r}; expected one of {', '.join(RUNTIMES)}")
    run()
    return Route(run, impl, layout, time.perf_counter() - start, note)


def check_output(route: Route, batch: int, num_classes: int = 1000) -> None:
    """A route must return [batch, num_classes] logits: a runtime that returns
    nothing useful is not measured."""
    out = route.run()
    if isinstance(out, (list, tuple)):
        out = out[0]
    shape = tuple(np.asarray(out).shape) if not isinstance(out, torch.Tensor) else tuple(out.shape)
    if shape != (batch, num_classes):
        raise RouteUnavailable(f"returned an output of shape {shape}, expected {(batch, num_classes)}")
