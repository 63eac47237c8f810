"""ONNX files run in ONNX Runtime. int8 comes from ONNX Runtime's own static
quantizer, whose QDQ graph its CPU provider fuses into QLinearConv/QLinearAdd
everywhere (torchao's x86 quantizer leaves the convs before residual adds in float,
and those files ran slower than fp32)."""

from __future__ import annotations

import contextlib
import io
import json
from collections import Counter, OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .base import Loaded, Run, Runtime, Written
from .common import METADATA_NAME, batch_dim

ONNX_OPSET = 18


class OnnxRuntime(Runtime):
    name = "onnx"
    engine = "onnxruntime"
    suffix = ".onnx"
    extra = "export"
    requires = ("onnx", "onnxruntime", "onnxscript")
    order = 10
    int8_backend = "onnxruntime"
    layout = "NCHW in (ORT's blocked layout inside)"
    plain_exporter = "torch.onnx.export(dynamo=True)"
    description = "ONNX"

    def detect(self, path: Path, head: bytes) -> bool:
        return head[:1] == b"\x08"  # protobuf field 1 (ir_version), varint: an ONNX ModelProto

    def write(self, model: nn.Module, path: Path, *, example: torch.Tensor, meta: dict[str, Any],
              calib: list[torch.Tensor] | None = None, precision: str = "fp32") -> Written:
        if getattr(model, "task", None) == "segmentation":  # any image size, as torchvision's preset makes them
            meta = {**meta, "dynamic_size": True}
        if calib is None:
            _write_onnx(model, example, path, meta)
            return Written()
        fp32_path = path.with_name(path.name + ".fp32")
        try:
            _write_onnx(model, example, fp32_path, meta)
            from .. import progress

            progress.step(f"quantizing with ONNX Runtime, calibrating on {sum(map(len, calib))} images")
            notes = _quantize_onnx(fp32_path, path, calib, meta)
        finally:
            fp32_path.unlink(missing_ok=True)
        return Written(_qdq_reference(path), "int8 QDQ graph, unfused (ONNX Runtime, optimisations off)", notes)

    def load(self, path: Path, *, threads: int | None = None, precision: str | None = None,
             compile: bool = False) -> Loaded:
        import onnx
        import onnxruntime as ort

        meta_props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}

        def session(fixed: dict[str, int] | None = None) -> Any:
            options = ort.SessionOptions()
            options.log_severity_level = 3
            if threads:
                options.intra_op_num_threads = threads
                options.inter_op_num_threads = 1
                options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            for dim, value in (fixed or {}).items():
                options.add_free_dimension_override_by_name(dim, value)
            return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

        sessions = SizedSessions(session)

        def run(x: torch.Tensor) -> torch.Tensor:
            outs = sessions.run(x.detach().float().contiguous().numpy())
            if len(outs) > 1:  # a detector's boxes, scores, labels
                return tuple(torch.from_numpy(o) for o in outs)
            return torch.from_numpy(outs[0])

        return Loaded(run, json.loads(meta_props.get(METADATA_NAME, "{}")))

    def write_plain(self, model: nn.Module, example: torch.Tensor, path: Path) -> None:
        torch.onnx.export(model, (example,), str(path), dynamo=True, external_data=False,
                          dynamic_shapes=(batch_dim(128),))


def _set_metadata(proto: Any, meta: dict) -> None:
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_NAME, json.dumps(meta)


class SizedSessions:
    """The sessions of one file. A file with free dimensions besides the batch (a
    segmentation model exported for any image size) runs every input in the session
    built for free sizes, and each input shape it has met ``specialize_after`` times in a
    session of its own with those dimensions fixed (``add_free_dimension_override_by_name``),
    for which ONNX Runtime plans memory and picks kernels knowing the sizes. Measured on
    LR-ASPP V3-Large at 520 px, one thread, interleaved: 62.0 ms free against 59.0 ms
    fixed (the same model exported for 520 px only: 60.0 ms); building a fixed session
    took 40-70 ms, so a size is fixed only once it recurs. At most ``keep`` fixed
    sessions are kept, the least recently used dropped."""

    def __init__(self, make: Callable[[dict[str, int] | None], Any], specialize_after: int = 3, keep: int = 4) -> None:
        self.make, self.specialize_after, self.keep = make, specialize_after, keep
        self.free = make(None)
        self.input = self.free.get_inputs()[0]
        self.free_dims = [(i, d) for i, d in enumerate(self.input.shape) if not isinstance(d, int)]
        self.specialize = any(i >= 2 for i, _ in self.free_dims)  # sizes, not just the batch
        self.fixed: OrderedDict[tuple[int, ...], Any] = OrderedDict()
        self.seen: Counter[tuple[int, ...]] = Counter()

    def session_for(self, shape: tuple[int, ...]) -> Any:
        if not self.specialize or len(shape) != len(self.input.shape):
            return self.free
        if shape in self.fixed:
            self.fixed.move_to_end(shape)
            return self.fixed[shape]
        self.seen[shape] += 1
        if self.seen[shape] < self.specialize_after:
            return self.free
        self.fixed[shape] = self.make({d: shape[i] for i, d in self.free_dims if d})
        if len(self.fixed) > self.keep:
            self.fixed.popitem(last=False)
        return self.fixed[shape]

    def run(self, x: Any) -> list:
        return self.session_for(tuple(x.shape)).run(None, {self.input.name: x})


def _write_onnx(model: nn.Module, example: torch.Tensor, path: Path, meta: dict) -> None:
    import onnx

    dims = batch_dim()
    if meta.get("dynamic_size"):
        dims.update({2: torch.export.Dim("height", min=32, max=4096), 3: torch.export.Dim("width", min=32, max=4096)})
    onnx_program = torch.onnx.export(model, (example,), None, dynamo=True, opset_version=ONNX_OPSET,
                                     dynamic_shapes=(dims,), external_data=False, verbose=False)
    proto = onnx_program.model_proto
    # Node metadata holds the exporting machine's source paths and stack traces:
    # a third of a small model's file, and nothing a runtime reads.
    for node in proto.graph.node:
        del node.metadata_props[:]
    _set_metadata(proto, meta)
    onnx.save_model(proto, str(path), save_as_external_data=False)


def calibration_reader(input_name: str, batches: list) -> Any:
    """ONNX Runtime's calibration input: one batch (torch or numpy) per round. The
    calibrator keeps every activation of everything it reads until it has histogrammed
    them (13.6 GB for V2 at 224 px and 200 images); reading one batch per round
    (``CalibStridedMinMax``, despite its name used by every method) bounds that to one
    batch, and lets a graph whose tensors change size per input (a detector's NMS) be
    calibrated one image at a time."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
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
            batch = batches[self.start - 1]
            return {input_name: batch.float().contiguous().numpy() if isinstance(batch, torch.Tensor) else batch}

    return Reader()


def _quantize_onnx(fp32_path: Path, path: Path, batches: list[torch.Tensor], meta: dict) -> list[str]:
    """int8 with ONNX Runtime's static quantizer: QDQ format, int8 symmetric
    per-channel weights, uint8 activations with percentile ranges observed on the
    calibration batches. Our metadata is carried over; shape annotations are dropped
    (the runtime infers them again), so the file holds little beyond the int8 weights."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    input_name = onnx.load(str(fp32_path), load_external_data=False).graph.input[0].name


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
                quantize_static(str(fp32_path), str(path), calibration_reader(input_name, batches), quant_format=QuantFormat.QDQ, per_channel=True,
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
    _set_metadata(proto, meta)
    onnx.save_model(proto, str(path), save_as_external_data=False)
    float_ops = sum(node.op_type in ("HardSwish", "HardSigmoid") for node in proto.graph.node)
    if not float_ops:
        return notes
    return notes + [f"ONNX Runtime has no int8 hard-swish/hard-sigmoid: {float_ops} of them run in float between "
            "Dequantize/Quantize pairs, and on x86 this file can be slower than fp32 (see docs/deployment.md); "
            "for V3, --format openvino --int8 or executorch --int8 is the faster choice"]


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


def _qdq_reference(path: Path) -> Run:
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


RUNTIME = OnnxRuntime()
