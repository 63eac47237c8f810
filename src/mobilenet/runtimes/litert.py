"""LiteRT (TensorFlow Lite) ``.tflite`` files: the format Android apps ship, and the one
Google distributes MobileNets in. Converted with ``litert-torch`` (the ``[litert]``
extra, about 850 MB, needed only to write), run and checked in ``ai-edge-litert``'s
interpreter with XNNPACK (the ``[tflite]`` extra, which also reads Google's files).

What a file holds, and why:
- NHWC input ``[1, H, W, 3]``, as TFLite image models (Google's MobileNets included)
  take it, so the graph starts with no transpose; the loader permutes our NCHW batches.
- Batch 1, what a phone runs (GPU and NPU delegates want static shapes); the
  interpreter is resized to each batch it is given (same outputs, tested).
- int8: PT2E with litert-torch's quantizer (int8 per-channel weights, int8 activations),
  conv -> ReLU6 fused and moving-average activation ranges (:mod:`._litert_quantizer`,
  chosen by measurement), converted by litert-torch, whose file then takes
  and gives int8; a QUANTIZE at the input and a DEQUANTIZE at the output make it take
  and give float like the fp32 file. It is checked against the same file run by
  TFLite's reference kernels (no XNNPACK): the textbook meaning of the file.
- Our metadata (model, preprocessing, labels) as JSON in the flatbuffer's metadata
  table under ``"mobilenet"``: interpreters ignore it; :func:`read_metadata` and
  :func:`mobilenet.weights.tflite.load_tflite` read it. A classifier also carries the
  TFLite Support ``TFLITE_METADATA`` (image input, mean/std, ``labels.txt`` zipped onto
  the file) that Android's Task Library reads, as Google's files do
  (:mod:`._tflite_metadata`).
"""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .base import Loaded, Runtime, Written
from .common import METADATA_NAME, MissingExtra, batch_dim


class ChannelsLastInput(nn.Module):
    """``model`` taking an NHWC batch: what a TFLite image classifier's input is."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.permute(0, 3, 1, 2))


def nhwc(x: torch.Tensor) -> torch.Tensor:
    return x.detach().float().permute(0, 2, 3, 1).contiguous()


class LiteRTRuntime(Runtime):
    name = "tflite"
    engine = "litert"
    suffix = ".tflite"
    extra = "tflite"  # to run; writing also needs litert-torch, the [litert] extra
    requires = ("ai_edge_litert",)
    order = 40
    int8_backend = "litert"
    layout = "NHWC in (XNNPACK)"
    plain_exporter = "litert_torch.convert"
    write_requires = ("litert_torch",)
    description = "LiteRT (.tflite)"

    def owns(self, path: Path) -> bool:
        if path.suffix.lower() != self.suffix:
            return False
        try:
            with open(path, "rb") as f:
                head = f.read(8)
        except OSError:  # not there (yet): a .tflite is Google's weights unless it says it is ours
            return False
        return self.detect(path, head)

    def detect(self, path: Path, head: bytes) -> bool:
        # Google's .tflite files are imported as our models (`mobilenet import-tflite`),
        # not run as artifacts: only a file carrying our metadata is ours.
        return head[4:8] == b"TFL3" and read_metadata(path) is not None

    def write(self, model: nn.Module, path: Path, *, example: torch.Tensor, meta: dict[str, Any],
              calib: list[torch.Tensor] | None = None, precision: str = "fp32") -> Written:
        content, written = convert(model, example[:1], calib=calib)
        path.write_bytes(finish(content, meta, float_io=calib is not None))
        if calib is not None:
            written.reference = _reference_kernels(path)
        return written

    def load(self, path: Path, *, threads: int | None = None, precision: str | None = None,
             compile: bool = False) -> Loaded:
        interpreter = _interpreter(path, threads)
        meta = read_metadata(path) or {}
        return Loaded(_runner(interpreter), meta)

    def write_plain(self, model: nn.Module, example: torch.Tensor, path: Path) -> None:
        litert_torch = _converter()
        path.write_bytes(litert_torch.convert(ChannelsLastInput(model).eval(), (nhwc(example[:1]),)).model_content())


RUNTIME = LiteRTRuntime()


# -- writing ----------------------------------------------------------------------------
def _converter():
    """litert_torch, quiet; a one-line error naming the extra when it is missing."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # the converter's C++ start-up chatter
    try:
        import litert_torch
    except ImportError:
        raise MissingExtra(RUNTIME.name, "litert_torch", "litert") from None
    litert_torch.config.show_progress = False
    return litert_torch


def convert(model: nn.Module, example: torch.Tensor, *, calib: list[torch.Tensor] | None = None
            ) -> tuple[bytes, Written]:
    """The flatbuffer of ``model`` (BatchNorm folded) for an NHWC batch of one: fp32, or
    int8 through litert-torch's PT2E quantizer calibrated on ``calib`` (NCHW batches)."""
    litert_torch = _converter()
    wrapped = ChannelsLastInput(model).eval()
    sample = (nhwc(example[:1]),)
    if calib is None:
        return litert_torch.convert(wrapped, sample).model_content(), Written()
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e import allow_exported_model_train_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from ._litert_quantizer import quantizer as litert_quantizer

    quantizer = litert_quantizer()
    two = nhwc(torch.cat([example[:1], example[:1]]))  # a batch of 1 would be specialised
    graph = torch.export.export(wrapped, (two,), dynamic_shapes=(batch_dim(),)).module()
    prepared = prepare_pt2e(graph, quantizer)
    with torch.no_grad():
        for batch in calib:
            prepared(nhwc(batch))
    converted = convert_pt2e(prepared, fold_quantize=False)
    allow_exported_model_train_eval(converted)
    converted.eval()  # the graph's ops in eval form...
    converted.training = False  # ...and the flag litert-torch checks (it warns about a "training mode" graph)
    content = litert_torch.convert(converted, sample, quant_config=QuantConfig(pt2e_quantizer=quantizer))
    return content.model_content(), Written(reference_name="the same file in TFLite's reference kernels")


def finish(content: bytes, meta: dict[str, Any], *, float_io: bool = False) -> bytes:
    """The converted flatbuffer with our metadata added (and, for int8, float I/O)."""
    from ai_edge_litert.tools import flatbuffer_utils

    from . import _tflite_metadata as tflite_metadata  # flatbuffers: with ai-edge-litert

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
    if float_io:
        _float_io(model)
    _set_metadata(model, METADATA_NAME, zlib.compress(json.dumps(meta).encode(), 9))
    files: dict[str, bytes] = {}
    if _is_classifier(model):  # the Task Library's metadata, and the labels zipped onto the file
        support, files = tflite_metadata.image_classifier(meta)
        _set_metadata(model, tflite_metadata.NAME, tflite_metadata.build(support))
    data = bytes(flatbuffer_utils.convert_object_to_bytearray(model))
    return data + tflite_metadata.pack(files) if files else data


def _is_classifier(model: Any) -> bool:
    """One output of shape [batch, classes]: what the Task Library's ImageClassifier takes."""
    graph = model.subgraphs[0]
    return len(graph.inputs) == 1 and len(graph.outputs) == 1 and len(graph.tensors[graph.outputs[0]].shape) == 2


def _opcode(model: Any, builtin: int) -> int:
    from ai_edge_litert import schema_py_generated as fb
    from ai_edge_litert.tools.flatbuffer_utils import get_builtin_code_from_operator_code

    for index, code in enumerate(model.operatorCodes):
        if get_builtin_code_from_operator_code(code) == builtin:
            return index
    code = fb.OperatorCodeT()
    code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, min(builtin, 127), 1
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _float_io(model: Any) -> None:
    """Give an int8-in/int8-out graph float ends: each quantized input gets a float
    twin feeding a QUANTIZE op placed first, each quantized output a DEQUANTIZE op
    placed last (the int8 tensors keep their scales and become internal)."""
    from ai_edge_litert import schema_py_generated as fb

    graph = model.subgraphs[0]
    quantized = (fb.TensorType.INT8, fb.TensorType.UINT8)
    moved: dict[int, int] = {}

    def float_twin(index: int) -> int:
        tensor = graph.tensors[index]
        twin = fb.TensorT()
        twin.name = tensor.name
        tensor.name = (tensor.name.decode() if isinstance(tensor.name, bytes) else tensor.name) + "_int8"
        twin.shape = list(tensor.shape)
        twin.shapeSignature = None if tensor.shapeSignature is None else list(tensor.shapeSignature)
        twin.type, twin.buffer = fb.TensorType.FLOAT32, 0  # buffer 0: no data, an activation
        graph.tensors.append(twin)
        moved[index] = len(graph.tensors) - 1
        return moved[index]

    for position, index in enumerate(graph.inputs):
        if graph.tensors[index].type in quantized:
            op = fb.OperatorT()
            op.opcodeIndex, op.inputs, op.outputs = _opcode(model, fb.BuiltinOperator.QUANTIZE), [float_twin(index)], [index]
            graph.operators.insert(0, op)
            graph.inputs[position] = moved[index]
    for position, index in enumerate(graph.outputs):
        if graph.tensors[index].type in quantized:
            op = fb.OperatorT()
            op.opcodeIndex, op.inputs, op.outputs = _opcode(model, fb.BuiltinOperator.DEQUANTIZE), [index], [float_twin(index)]
            graph.operators.append(op)
            graph.outputs[position] = moved[index]
    for signature in model.signatureDefs or []:
        for entry in list(signature.inputs or []) + list(signature.outputs or []):
            entry.tensorIndex = moved.get(entry.tensorIndex, entry.tensorIndex)


def _set_metadata(model: Any, name: str, data: bytes) -> None:
    import numpy as np
    from ai_edge_litert import schema_py_generated as fb

    buffer = fb.BufferT()
    buffer.data = np.frombuffer(data, dtype=np.uint8)
    model.buffers.append(buffer)
    entries = [m for m in model.metadata or [] if (m.name.decode() if isinstance(m.name, bytes) else m.name) != name]
    entry = fb.MetadataT()
    entry.name, entry.buffer = name, len(model.buffers) - 1
    model.metadata = entries + [entry]


# -- reading ----------------------------------------------------------------------------
def read_metadata(path: str | os.PathLike) -> dict[str, Any] | None:
    """Our metadata in a ``.tflite`` file, or ``None`` when it carries none (Google's
    files) or is no TFLite flatbuffer. Reads with the ``flatbuffers`` schema of
    ai-edge-litert or, failing that, the pure-Python ``tflite`` package."""
    data = Path(path).read_bytes()
    if data[4:8] != b"TFL3":
        return None
    try:
        from ai_edge_litert.schema_py_generated import Model
    except ImportError:
        try:
            from tflite import Model
        except ImportError:
            return None
    try:
        model = Model.GetRootAs(data, 0) if hasattr(Model, "GetRootAs") else Model.GetRootAsModel(data, 0)
        for i in range(model.MetadataLength()):
            entry = model.Metadata(i)
            if entry.Name() is None or entry.Name().decode() != METADATA_NAME:
                continue
            buffer = model.Buffers(entry.Buffer())
            raw = buffer.DataAsNumpy().tobytes() if buffer.DataLength() else \
                data[buffer.Offset(): buffer.Offset() + buffer.Size()]
            return json.loads((raw if raw[:1] == b"{" else zlib.decompress(raw)).decode())
    except Exception:  # a damaged flatbuffer fails anywhere (struct.error on a truncated file...):
        return None  # not ours then; reading it as Google's weights names the damage in one line
    return None


def _interpreter(path: Path, threads: int | None, reference: bool = False):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kwargs: dict[str, Any] = {"num_threads": threads} if threads else {}
    if reference:  # TFLite's reference kernels, no XNNPACK
        kwargs["experimental_op_resolver_type"] = OpResolverType.BUILTIN_REF
    return Interpreter(model_path=str(path), **kwargs)


def _runner(interpreter: Any):
    """A callable taking NCHW float batches: the interpreter's input is resized to each
    new batch size (XNNPACK re-plans once per size). A graph XNNPACK cannot re-plan
    (V4's attention blocks) runs its own batch of one image at a time."""
    input_index = interpreter.get_input_details()[0]["index"]
    output_index = interpreter.get_output_details()[0]["index"]
    fixed = [int(d) for d in interpreter.get_input_details()[0]["shape"]]
    shape: list[int] = []
    state = {"resizable": True}

    def invoke(batch: torch.Tensor) -> torch.Tensor:
        if list(batch.shape) != shape:
            interpreter.resize_tensor_input(input_index, list(batch.shape))
            interpreter.allocate_tensors()
            shape[:] = list(batch.shape)
        interpreter.set_tensor(input_index, batch.numpy())
        interpreter.invoke()
        return torch.from_numpy(interpreter.get_tensor(output_index))

    def run(x: torch.Tensor) -> torch.Tensor:
        batch = nhwc(x)
        if state["resizable"] or len(batch) == fixed[0]:
            try:
                return invoke(batch)
            except RuntimeError:
                if len(batch) == fixed[0]:
                    raise
                state["resizable"] = False
                shape.clear()
        return torch.cat([invoke(part.contiguous()) for part in batch.split(fixed[0])])

    return run


def _reference_kernels(path: Path):
    return _runner(_interpreter(path, None, reference=True))
