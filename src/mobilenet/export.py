"""Export to ONNX, ExecuTorch and TorchScript, and prove every file works.

Each export starts from :func:`mobilenet.deploy` (BatchNorm folded), writes to a
temporary file, loads that file back in its own runtime (ONNX Runtime, ExecuTorch's
Python runtime, ``torch.jit.load``), runs a batch of a different size than the one
traced (so a batch size baked in by mistake fails) and compares with eager PyTorch.
Only a file that passes is renamed into place: a failed export leaves nothing behind.

Every file carries our metadata (model, preprocessing, labels, int8 backend), so
:func:`load_artifact` gives ``mobilenet eval`` and ``mobilenet bench`` a callable that
knows how to feed itself.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import __version__, progress
from .deploy import deploy
from .files import atomic_path, atomic_write_bytes
from .images import Preprocess
from .quantize import (
    QuantizeError,
    batch_dim,
    calibration_batches,
    check_quantizable,
    example_batch,
    model_preprocess,
    quantize_ptq,
    register_quantized_ops,
)

FORMATS = ("onnx", "executorch", "torchscript")
SUFFIXES = {"onnx": ".onnx", "executorch": ".pte", "torchscript": ".ts", "pt2": ".pt2"}
# The quantizer each runtime runs best. ONNX: ONNX Runtime's own static quantizer, whose
# QDQ graph its CPU provider fuses into QLinearConv/QLinearAdd everywhere (torchao's x86
# quantizer leaves the convs before residual adds in float, and those files ran slower
# than fp32). ExecuTorch: PT2E with the XNNPACK quantizer.
INT8_BACKEND = {"onnx": "onnxruntime", "executorch": "xnnpack", "pt2": None}
FP32_TOLERANCE = 1e-4  # x the largest |logit| of the eager model
# int8 runtimes round requantization differently from the reference graph, and in a
# deep, narrow net (V1-0.25) one-step differences compound: the runtime may differ from
# the reference by 0.1 x the logit scale, or by as much as the reference itself differs
# from fp32, whichever is larger. A broken lowering is far off both.
INT8_TOLERANCE = 0.1
ONNX_OPSET = 18
DEFAULT_MAX_BATCH = 128  # ExecuTorch plans memory for the largest batch it accepts
METADATA_NAME = "mobilenet"
ARTIFACT_FORMAT = "mobilenet-artifact"


class ExportError(ValueError):
    """An export request we cannot honour, or a file that failed its own check."""


@dataclass
class ExportReport:
    """What one export wrote and how it checked itself."""

    format: str
    path: str
    bytes: int
    int8: bool
    backend: str | None
    model: str | None
    resolution: int
    verify_batch: int
    reference: str  # what the runtime's output was compared with
    max_abs_diff: float  # runtime vs reference
    logit_scale: float  # max |logit| of the reference
    tolerance: float  # allowed max_abs_diff
    max_abs_diff_fp32: float  # runtime vs the fp32 eager model
    top1_agree_fp32: float  # fraction of the batch where top-1 equals fp32 eager's
    export_s: float
    verify_s: float
    runtime_ms: float  # one forward of the verify batch in the runtime, after a warm-up
    passed: bool = True
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- metadata -------------------------------------------------------------------------
def artifact_metadata(model: nn.Module, *, fmt: str, int8: bool, backend: str | None, resolution: int,
                      max_batch: int) -> dict[str, Any]:
    cfg = getattr(model, "pretrained_cfg", None) or {}
    return {
        "format": ARTIFACT_FORMAT,
        "mobilenet_version": __version__,
        "export_format": fmt,
        "model_name": getattr(model, "model_name", None),
        "arch": getattr(model, "arch", type(model).__name__) if hasattr(model, "arch_args") else None,
        "arch_args": getattr(model, "arch_args", None),
        "num_classes": getattr(model, "num_classes", None),
        "preprocess": model_preprocess(model).to_dict(),
        "labels": cfg.get("labels"),
        "int8": int8,
        "backend": backend,
        "resolution": resolution,
        "max_batch": max_batch,
    }


# -- writers (one per format) ---------------------------------------------------------
def _write_onnx(program_or_model: Any, example: torch.Tensor, path: Path, meta: dict) -> None:
    import onnx

    onnx_program = torch.onnx.export(program_or_model, (example,), None, dynamo=True, opset_version=ONNX_OPSET,
                                     dynamic_shapes=(batch_dim(),), external_data=False, verbose=False)
    proto = onnx_program.model_proto
    # Node metadata holds the exporting machine's source paths and stack traces:
    # a third of a small model's file, and nothing a runtime reads.
    for node in proto.graph.node:
        del node.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_NAME, json.dumps(meta)
    onnx.save_model(proto, str(path), save_as_external_data=False)


def _quantize_onnx(fp32_path: Path, path: Path, batches: list[torch.Tensor], meta: dict) -> list[str]:
    """int8 with ONNX Runtime's static quantizer: QDQ format, int8 symmetric
    per-channel weights, uint8 activations with percentile ranges observed on the
    calibration batches. Our metadata is carried over; shape annotations are dropped
    (the runtime infers them again), so the file holds little beyond the int8 weights."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    input_name = onnx.load(str(fp32_path), load_external_data=False).graph.input[0].name

    class Reader(CalibrationDataReader):
        """One calibration batch at a time. The calibrator keeps every activation of
        everything it reads until it has histogrammed them (13.6 GB for V2 at 224 px
        and 200 images); reading one batch per round (``CalibStridedMinMax``, despite
        its name used by every method) bounds that to one batch."""

        def __init__(self) -> None:
            self.start, self.end = 0, len(batches)

        def __len__(self) -> int:
            return len(batches)

        def set_range(self, start_index: int, end_index: int) -> None:
            self.start, self.end = start_index, end_index

        def get_next(self) -> dict | None:
            if self.start >= min(self.end, len(batches)):
                return None
            self.start += 1
            return {input_name: batches[self.start - 1].float().contiguous().numpy()}

    # Activation ranges: the 99.999th percentile of each tensor's histogram, not its
    # min/max, which a few outlying pixels stretch. Measured (docs/deployment.md): a
    # V3-Small trained on CIFAR went from -1.0 to +0.15 points, V1-0.25's top-1 agreement
    # with fp32 from 85.0% to 86.6%, TFLite V2 unchanged (95.6% / 95.7%).
    # numpy cannot histogram a tensor whose values all lie within a few ulps (a freshly
    # initialised model's squeeze-excite gates sit at 0.5): such a model gets min/max.
    notes = []
    for method in (CalibrationMethod.Percentile, CalibrationMethod.MinMax):
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # the calibrator prints its progress
                quantize_static(str(fp32_path), str(path), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                                calibrate_method=method, extra_options={"CalibStridedMinMax": 1})
            break
        except ValueError as exc:
            if method != CalibrationMethod.Percentile or "bins" not in str(exc):
                raise
            notes.append(f"percentile calibration failed ({exc}): an activation is (nearly) constant on the "
                         "calibration images, as in an untrained model; used min/max ranges instead")
    proto = onnx.load(str(path))
    del proto.graph.value_info[:]
    _drop_zero_points(proto)
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_NAME, json.dumps(meta)
    onnx.save_model(proto, str(path), save_as_external_data=False)
    float_ops = sum(node.op_type in ("HardSwish", "HardSigmoid") for node in proto.graph.node)
    if not float_ops:
        return notes
    return notes + [f"ONNX Runtime has no int8 hard-swish/hard-sigmoid: {float_ops} of them run in float between "
            "Dequantize/Quantize pairs, and on x86 this file can be slower than fp32 (see docs/deployment.md); "
            "for V3, the fp32 ONNX file or --format executorch --int8 is the faster choice"]


def _drop_zero_points(proto: Any) -> None:
    """Remove the all-zero zero points of constant int32 biases and of conv weights
    (an optional input of DequantizeLinear, zero when absent). The quantizer writes
    one per channel: for V1-0.25, 3% of the int8 file. Gemm weights keep theirs,
    without which ONNX Runtime no longer fuses the classifier into QGemm."""
    from onnx import TensorProto, numpy_helper

    constants = {t.name: t for t in proto.graph.initializer}
    consumers: dict[str, list[str]] = {}
    for node in proto.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node.op_type)
    for node in proto.graph.node:
        if node.op_type != "DequantizeLinear" or len(node.input) < 3:
            continue
        value, zero = constants.get(node.input[0]), constants.get(node.input[2])
        if value is None or zero is None or numpy_helper.to_array(zero).any():
            continue
        if value.data_type == TensorProto.INT32 or consumers.get(node.output[0]) == ["Conv"]:
            del node.input[2]
    used = {name for node in proto.graph.node for name in node.input}
    kept = [t for t in proto.graph.initializer if t.name in used]
    del proto.graph.initializer[:]
    proto.graph.initializer.extend(kept)


def _onnx_qdq_reference(path: Path) -> Callable[[torch.Tensor], torch.Tensor]:
    """The int8 ONNX file with every graph optimisation off: ONNX Runtime then runs each
    DequantizeLinear -> float op -> QuantizeLinear as written, the textbook meaning of
    the file, against which its fused int8 kernels are checked."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: torch.from_numpy(session.run(None, {name: x.float().contiguous().numpy()})[0])


def _write_executorch(model: nn.Module, example: torch.Tensor, path: Path, meta: dict) -> None:
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    program = torch.export.export(model, (example,), dynamic_shapes=(batch_dim(meta["max_batch"]),))
    # The metadata rides along as a byte tensor, which no tool shows as text anyway:
    # zlib keeps a thousand labels from weighing 5% of a small int8 model.
    blob = torch.tensor(list(zlib.compress(json.dumps(meta).encode(), 9)), dtype=torch.uint8)
    edge = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()],
                                       constant_methods={"mobilenet_metadata": blob})
    path.write_bytes(edge.to_executorch().buffer)


def _write_torchscript(model: nn.Module, example: torch.Tensor, path: Path, meta: dict) -> None:
    with torch.no_grad():
        traced = torch.jit.trace(model, example)
    buffer = io.BytesIO()  # torch.jit.save's own file writer aborts the process on a full disk
    torch.jit.save(traced, buffer, _extra_files={f"{METADATA_NAME}.json": json.dumps(meta)})
    path.write_bytes(buffer.getvalue())


def save_program(model: nn.Module, path: str | os.PathLike, *, example: torch.Tensor | None = None,
                 metadata: dict | None = None) -> Path:
    """Save a (typically int8 PT2E) graph as a ``.pt2`` ExportedProgram with our
    metadata, atomically; :func:`load_artifact` reads it back."""
    example = example if example is not None else example_batch(model)
    meta = metadata or artifact_metadata(model, fmt="pt2", int8=hasattr(model, "quant_backend"),
                                         backend=getattr(model, "quant_backend", None),
                                         resolution=example.shape[-1], max_batch=1024)
    program = torch.export.export(model, (example,), dynamic_shapes=(batch_dim(),))
    program._example_inputs = None  # not the weights: a random batch would only add size
    import io

    buffer = io.BytesIO()  # torch.export.save wants a .pt2 name or a buffer, not our temporary name
    torch.export.save(program, buffer, extra_files={f"{METADATA_NAME}.json": json.dumps(meta)})
    path = Path(path)
    atomic_write_bytes(path, buffer.getvalue())
    return path


# -- loading ----------------------------------------------------------------------------
@dataclass
class Artifact:
    """An exported or quantized file loaded in its runtime: call it on a float
    batch [N, C, H, W] to get logits [N, classes] as a torch tensor."""

    path: Path
    format: str  # "onnx" | "executorch" | "torchscript" | "pt2"
    metadata: dict[str, Any]
    run: Callable[[torch.Tensor], torch.Tensor]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x)

    @property
    def int8(self) -> bool:
        return bool(self.metadata.get("int8"))

    @property
    def preprocess(self) -> Preprocess:
        pre = self.metadata.get("preprocess")
        return Preprocess.from_dict(pre) if pre else Preprocess()

    @property
    def labels(self) -> list[str] | None:
        return self.metadata.get("labels")

    @property
    def num_classes(self) -> int | None:
        return self.metadata.get("num_classes")

    def as_module(self) -> nn.Module:
        """This file as an ``nn.Module`` with ``num_classes`` and ``pretrained_cfg``,
        so code written for our models (``mobilenet eval``) runs it unchanged."""
        return ArtifactModule(self)


class ArtifactModule(nn.Module):
    def __init__(self, artifact: Artifact) -> None:
        super().__init__()
        self.artifact = artifact
        self.num_classes = artifact.num_classes
        self.pretrained_cfg = {"preprocess": artifact.preprocess.to_dict(), "labels": artifact.labels,
                               "source": str(artifact.path)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.artifact(x.contiguous())  # runtimes take plain NCHW buffers


def detect_format(path: Path) -> str:
    """Which runtime a file is for, from its content (names can lie)."""
    import zipfile

    with open(path, "rb") as f:
        head = f.read(8)
    if head[4:6] == b"ET":
        return "executorch"
    if zipfile.is_zipfile(path):
        names = zipfile.ZipFile(path).namelist()
        if any(n.endswith("archive_format") or "/models/" in n for n in names):
            return "pt2"
        if any(n.endswith("constants.pkl") or "/code/" in n for n in names):
            return "torchscript"
    elif head[:1] == b"\x08":  # protobuf field 1 (ir_version), varint: an ONNX ModelProto
        return "onnx"
    raise ExportError(f"{path}: not an ONNX, ExecuTorch (.pte), TorchScript or .pt2 file written by mobilenet")


def load_artifact(path: str | os.PathLike, *, threads: int | None = None, compile: bool = False) -> Artifact:
    """Load an ``.onnx`` (ONNX Runtime), ``.pte`` (ExecuTorch), TorchScript or
    ``.pt2`` (int8 PT2E graph; ``compile=True`` lowers it with Inductor, which is
    what makes x86 int8 fast) file as a callable :class:`Artifact`."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: no such file")
    fmt = detect_format(path)
    loader = {"onnx": _load_onnx, "executorch": _load_executorch, "torchscript": _load_torchscript,
              "pt2": _load_pt2}[fmt]
    try:
        run, meta = loader(path, threads, compile)
    except ExportError:
        raise
    except Exception as exc:
        raise ExportError(f"{path}: cannot load as {fmt}: {str(exc).splitlines()[0] if str(exc) else exc!r}") from exc
    return Artifact(path, fmt, meta, run)


def _load_onnx(path: Path, threads: int | None, compile: bool):
    import onnx
    import onnxruntime as ort

    meta_props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(None, {name: x.detach().float().contiguous().numpy()})[0])

    return run, json.loads(meta_props.get(METADATA_NAME, "{}"))


def _load_executorch(path: Path, threads: int | None, compile: bool):
    from executorch.runtime import Runtime

    if threads:
        from executorch.extension.pybindings import portable_lib

        portable_lib._unsafe_reset_threadpool(threads)
    program = Runtime.get().load_program(path)
    meta = {}
    if "mobilenet_metadata" in program.method_names:
        blob = program.load_method("mobilenet_metadata").execute([])[0]
        raw = bytes(blob.tolist())
        meta = json.loads((raw if raw[:1] == b"{" else zlib.decompress(raw)).decode())
    from .quiet import native_stderr_filtered

    with native_stderr_filtered():  # ExecuTorch's threadpool prints ARM-only CPU probes on x86
        method = program.load_method("forward")
    # The planned input buffer bounds the batch. ExecuTorch 1.5's lowering narrows
    # the exported range (batch <= 15 for these graphs): larger batches run in chunks.
    capacity = int(program.metadata("forward").input_tensor_meta(0).sizes()[0])
    max_batch = min(int(meta.get("max_batch") or capacity), capacity)
    meta = {**meta, "batch_capacity": capacity}

    def run(x: torch.Tensor) -> torch.Tensor:
        x = x.detach().float().contiguous()
        outs = [method.execute([chunk.contiguous()])[0].clone() for chunk in x.split(max_batch)]
        return torch.cat(outs)

    return run, meta


def _load_torchscript(path: Path, threads: int | None, compile: bool):
    extra = {f"{METADATA_NAME}.json": ""}
    module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    module.eval()

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return module(x.float())

    return run, json.loads(extra[f"{METADATA_NAME}.json"] or "{}")


def _load_pt2(path: Path, threads: int | None, compile: bool):
    register_quantized_ops()
    extra = {f"{METADATA_NAME}.json": ""}
    module = torch.export.load(str(path), extra_files=extra).module()
    if compile:
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True  # constant-folds weights so int8 kernels are chosen
        module = torch.compile(module)

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return module(x.float())

    return run, json.loads(extra[f"{METADATA_NAME}.json"] or "{}")


# -- export -----------------------------------------------------------------------------
def export_model(
    model: nn.Module,
    format: str,
    path: str | os.PathLike,
    *,
    example: torch.Tensor | None = None,
    int8: bool = False,
    calib: str | os.PathLike | Iterable[torch.Tensor] | None = None,
    resolution: int | None = None,
    max_batch: int = DEFAULT_MAX_BATCH,
    calib_limit: int = 200,
) -> ExportReport:
    """Write ``model`` as ``format`` to ``path`` and check the written file.

    ``example`` is the batch the check runs (real images are best; default: random at
    the model's resolution). ``int8`` quantizes with the quantizer each runtime runs
    best, calibrated on ``calib`` (a folder of images or a list of batches): ONNX
    Runtime's static quantizer for ONNX, PT2E with XNNPACK's for ExecuTorch. Raises
    :class:`ExportError` on a bad request or a failed check; ``path`` is then untouched.
    """
    check_request(format, int8=int8, max_batch=max_batch)
    if not isinstance(model, nn.Module):
        raise ExportError(f"expected an nn.Module, got {type(model).__name__}")
    if getattr(model, "features_only", False):
        raise ExportError("features_only=True models return feature maps, not logits; export the classifier "
                          "model (features_only=False)")
    if int8 and calib is None:
        raise ExportError("int8 needs calibration images: pass calib (a folder of images, --calib DIR)")
    try:
        check_quantizable(model)
        resolution = resolution or (example.shape[-1] if example is not None else model_preprocess(model).resolution)
        fp32 = deploy(model)
        trace_input = example_batch(model, resolution)
        verify = example if example is not None else example_batch(model, resolution, batch=3)
        backend = INT8_BACKEND[format] if int8 else None
        start = time.perf_counter()
        onnx_int8 = int8 and backend == "onnxruntime"
        batches = calibration_batches(calib, model_preprocess(model), limit=calib_limit) if onnx_int8 else None
        target = quantize_ptq(model, calib, backend=backend, limit=calib_limit) if int8 and not onnx_int8 else fp32
    except QuantizeError as exc:
        raise ExportError(str(exc)) from None
    meta = artifact_metadata(model, fmt=format, int8=int8, backend=backend, resolution=resolution,
                             max_batch=max_batch)
    progress.step(f"writing the {format}{' int8' if int8 else ''} file")
    writer = {"onnx": _write_onnx, "executorch": _write_executorch, "torchscript": _write_torchscript}[format]
    path = Path(path)
    notes: list[str] = []
    with atomic_path(path) as tmp:
        try:
            if onnx_int8:
                fp32_tmp = tmp.with_name(tmp.name + ".fp32")
                try:
                    writer(target, trace_input, fp32_tmp, meta)
                    progress.step(f"quantizing with ONNX Runtime, calibrating on {sum(map(len, batches))} images")
                    notes = _quantize_onnx(fp32_tmp, tmp, batches, meta)
                finally:
                    fp32_tmp.unlink(missing_ok=True)
                target = _onnx_qdq_reference(tmp)
            else:
                writer(target, trace_input, tmp, meta)
        except Exception as exc:
            raise ExportError(f"{format} export of {getattr(model, 'model_name', type(model).__name__)} failed: "
                              f"{str(exc).splitlines()[0] if str(exc) else exc!r}") from exc
        export_s = time.perf_counter() - start
        progress.step(f"checking the file in its runtime against eager PyTorch on {len(verify)} images")
        report = _verify(tmp, format, fp32, target, verify, int8=int8, backend=backend,
                         reference_name="int8 QDQ graph, unfused (ONNX Runtime, optimisations off)" if onnx_int8
                         else "int8 PT2E graph (eager)")
        report.path, report.export_s, report.model = str(path), export_s, getattr(model, "model_name", None)
        report.notes += notes
        report.resolution = resolution
        if not report.passed:
            raise ExportError(
                f"{format} file failed its check: max |diff| {report.max_abs_diff:.3g} from {report.reference} "
                f"exceeds {report.tolerance:.3g}; nothing was written to {path}")
    return report


def check_request(format: str, *, int8: bool = False, max_batch: int = DEFAULT_MAX_BATCH) -> None:
    """Reject a format/option combination before any work starts."""
    if format not in FORMATS:
        raise ExportError(f"unknown format {format!r}; expected one of {', '.join(FORMATS)}")
    if int8 and format == "torchscript":
        raise ExportError("int8 TorchScript is not supported (TorchScript has no PT2E int8 path); "
                          "use --format onnx or executorch, or `mobilenet quantize` for a .pt2")
    if not isinstance(max_batch, int) or isinstance(max_batch, bool) or max_batch < 4:
        raise ExportError(f"max_batch must be an integer >= 4, got {max_batch!r}")


@torch.no_grad()
def _verify(path: Path, fmt: str, fp32: nn.Module, reference: Callable[[torch.Tensor], torch.Tensor],
            batch: torch.Tensor, *, int8: bool, backend: str | None, reference_name: str = "") -> ExportReport:
    start = time.perf_counter()
    artifact = load_artifact(path)
    got = artifact(batch)  # warm-up, and the output we check
    t0 = time.perf_counter()
    artifact(batch)
    runtime_ms = (time.perf_counter() - t0) * 1e3
    verify_s = time.perf_counter() - start
    want_fp32 = fp32(batch)
    want = reference(batch) if int8 else want_fp32
    scale = float(want.abs().max())
    tolerance = (INT8_TOLERANCE if int8 else FP32_TOLERANCE) * max(scale, 1e-12)
    if int8 and want.shape == want_fp32.shape:
        tolerance = max(tolerance, float((want - want_fp32).abs().max()))
    diff = float((got - want).abs().max()) if got.shape == want.shape else float("inf")
    return ExportReport(
        format=fmt, path=str(path), bytes=path.stat().st_size, int8=int8, backend=backend, model=None,
        resolution=batch.shape[-1], verify_batch=len(batch),
        reference=reference_name if int8 else "fp32 eager",
        max_abs_diff=diff, logit_scale=scale, tolerance=tolerance,
        max_abs_diff_fp32=float((got - want_fp32).abs().max()) if got.shape == want_fp32.shape else float("inf"),
        top1_agree_fp32=float((got.argmax(1) == want_fp32.argmax(1)).float().mean()) if got.shape == want_fp32.shape else 0.0,
        export_s=0.0, verify_s=verify_s, runtime_ms=runtime_ms, passed=diff <= tolerance,
        notes=[f"ExecuTorch input buffer holds {artifact.metadata['batch_capacity']} images; larger batches "
               "run in chunks"] if "batch_capacity" in artifact.metadata else [],
    )
