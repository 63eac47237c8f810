"""Google's TFLite MobileNet classifiers, read without TensorFlow.

:func:`read_tflite` walks a ``.tflite`` flatbuffer with the pure-Python
``tflite`` package (PyPI) and returns its layers in execution order, every
weight dequantized to float32 in PyTorch's layout, plus what the file says about
its input. It then recognises the network: MobileNet V1, V2 or V3, the width
multiplier, the resolution and the number of classes, by matching the file's
convolutions one to one against our own models (built on the ``meta`` device,
so nothing is allocated). Anything else is refused with a ``WeightsError``
(a ``ValueError``) that names the file.

:func:`load_tflite` builds the matching model with ``padding="same"`` (the
files were trained in TensorFlow, whose stride-2 convolutions pad 0 before and 1
after on even inputs) and copies the weights. The files have BatchNorm folded
into the convolution biases; it is restored as an identity BatchNorm
(weight 1, running mean 0, running variance ``1 - eps``) whose bias is the
folded bias, so ``state_dict`` keys are the usual ones and fine-tuning works.

What the files hold (Google's quantization-aware-trained uint8 releases, and
the float ones): conv weights OHWI, depthwise weights ``[1, kh, kw, C]``,
``w = (q - zero_point) * scale`` per tensor or per channel along the tensor's
``quantized_dimension``, int32 biases with scale ``input_scale * weight_scale``,
ReLU6 fused into every conv but V2's linear projections and the classifier,
a 1x1 conv as classifier with 1001 outputs (index 0 is "background").
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .store import WeightsError, check_finite

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ..images import Preprocess

WEIGHTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
# Everything else a MobileNet classifier may hold. QUANTIZE/DEQUANTIZE appear at
# the edges of float-in/float-out quantized files, and DEQUANTIZE also unpacks
# float16 weights; PAD appears where a converter wrote SAME padding out explicitly.
OTHER_OPS = (
    "ADD",
    "MUL",
    "AVERAGE_POOL_2D",
    "MEAN",
    "RESHAPE",
    "SQUEEZE",
    "SOFTMAX",
    "HARD_SWISH",
    "RELU",
    "RELU6",
    "LOGISTIC",
    "PAD",
    "QUANTIZE",
    "DEQUANTIZE",
)
SUPPORTED_OPS = WEIGHTED_OPS + OTHER_OPS

_DTYPES = {
    "FLOAT32": np.float32,
    "FLOAT16": np.float16,
    "FLOAT64": np.float64,
    "INT32": np.int32,
    "INT64": np.int64,
    "INT16": np.int16,
    "INT8": np.int8,
    "UINT8": np.uint8,
}
# The candidate widths tried besides the ones read off the file's channel counts.
STANDARD_WIDTHS = (0.25, 0.35, 0.5, 0.75, 1.0, 1.25, 1.3, 1.4)
LABELS_FILE = "imagenet_labels.txt"


def _tflite_module():
    try:
        import tflite
    except ImportError:
        raise ImportError(
            'reading .tflite files needs the pure-Python "tflite" package: pip install "mobilenet[tflite]"'
        ) from None
    return tflite


def _enum_names(enum_class: type) -> dict[int, str]:
    return {v: k for k, v in vars(enum_class).items() if not k.startswith("_") and isinstance(v, int)}


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class TensorSpec:
    """A tensor as the file declares it: name, shape (NHWC for images), element
    type and quantization (``real = (q - zero_point) * scale``)."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: tuple[float, ...] | None = None
    zero_point: tuple[int, ...] | None = None
    quantized_dimension: int = 0

    @property
    def quantized(self) -> bool:
        return self.scale is not None and self.dtype not in ("float32", "float16", "float64")


@dataclass
class Layer:
    """One operator of the file, in execution order.

    ``weight`` and ``bias`` (float32, PyTorch layout: conv OIHW, depthwise
    ``[C, 1, kh, kw]``, fully connected ``[out, in]``) are set for CONV_2D,
    DEPTHWISE_CONV_2D and FULLY_CONNECTED. ``inputs``/``outputs`` are the
    file's tensor indices (``-1`` for an absent optional input); ``constants``
    maps the position of each constant input of the other operators (the 3 of
    an ADD, MEAN's axes, RESHAPE's shape, PAD's amounts) to its value, dequantized.
    Shapes are the file's (NHWC).
    """

    index: int
    op: str
    name: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    input_shapes: tuple[tuple[int, ...], ...]
    output_shape: tuple[int, ...]
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    stride: tuple[int, int] = (1, 1)
    padding: str | None = None  # "SAME" / "VALID" for convolutions and pooling
    dilation: tuple[int, int] = (1, 1)
    activation: str = "NONE"  # fused: NONE, RELU, RELU6, RELU_N1_TO_1, TANH
    kernel: tuple[int, int] | None = None  # window of convolutions and pooling
    constants: dict[int, np.ndarray] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.input_shapes[0] if self.input_shapes else ()

    @property
    def out_channels(self) -> int | None:
        return None if self.weight is None else int(self.weight.shape[0])

    @property
    def in_channels(self) -> int | None:
        if self.weight is None:
            return None
        return int(self.weight.shape[0]) if self.op == "DEPTHWISE_CONV_2D" else int(self.weight.shape[1])

    def __repr__(self) -> str:
        extra = ""
        if self.weight is not None:
            extra = f" w{list(self.weight.shape)} s{self.stride[0]} {self.padding} {self.activation}"
        return f"Layer({self.index} {self.op}{extra} {list(self.input_shape)}->{list(self.output_shape)})"


@dataclass
class TFLiteModel:
    """What :func:`read_tflite` found in a file."""

    path: Path
    layers: list[Layer]
    input: TensorSpec
    output: TensorSpec
    version: str  # "v1", "v2" or "v3"
    width: float
    resolution: int
    num_classes: int
    config: str | None = None  # V3: "large" or "small"
    minimal: bool = False  # V3's minimalistic variant
    arch: str = ""  # our class name, e.g. "MobileNetV2"
    arch_kwargs: dict[str, Any] = field(default_factory=dict)  # the class's width arguments
    model_name: str | None = None  # our registry name when there is one, e.g. "mobilenet_v1_025"
    padding: str = "same"  # our model's padding that reproduces the file: "same", or "symmetric" (PyTorch's)
    tensors: dict[int, TensorSpec] = field(default_factory=dict, repr=False)

    @property
    def weighted(self) -> list[Layer]:
        return [layer for layer in self.layers if layer.weight is not None]

    @property
    def ops(self) -> list[str]:
        return [layer.op for layer in self.layers]

    @property
    def quantized(self) -> bool:
        return self.input.quantized

    def preprocess(self) -> Preprocess:
        """TensorFlow's evaluation transform: central 87.5% crop, bilinear resize
        to the file's resolution, and the normalisation its input quantization
        implies, ``(x - 128) / 128`` for Google's uint8 files (on 0..1 pixels:
        mean = std = 128/255). Float files take TF-slim's ``[-1, 1]`` inputs."""
        from ..images import Preprocess

        mean, std = input_normalization(self.input)
        return Preprocess(
            resolution=self.resolution,
            crop_pct=0.875,
            interpolation="bilinear",
            mean=(mean,) * 3,
            std=(std,) * 3,
            crop_mode="crop_resize",
        )


def input_normalization(spec: TensorSpec) -> tuple[float, float]:
    """(mean, std) on 0..1 pixels that turns an 8-bit image into the values the
    file's input stands for. A uint8 input of scale ``s`` and zero point ``z``
    means ``(x - z) * s`` on 0..255 pixels; an int8 input holds ``x - 128``."""
    if spec.quantized and spec.dtype in ("uint8", "int8"):
        zero = spec.zero_point[0] + (128 if spec.dtype == "int8" else 0)
        return zero / 255.0, 1.0 / (255.0 * spec.scale[0])
    return 0.5, 0.5  # float inputs: TF-slim's (x - 127.5) / 127.5


# --------------------------------------------------------------------------- reading


class _Reader:
    def __init__(self, path: Path) -> None:
        tflite = _tflite_module()
        self.tfl = tflite
        self.path = path
        if not path.is_file():
            raise WeightsError(f"{path}: no such file")
        self.data = path.read_bytes()
        if len(self.data) < 8 or self.data[4:8] != b"TFL3":
            raise WeightsError(f"{path}: not a TFLite flatbuffer (no TFL3 identifier)")
        try:
            self.model = tflite.Model.GetRootAsModel(self.data, 0)
            if self.model.SubgraphsLength() < 1:
                raise WeightsError(f"{path}: the TFLite file holds no graph")
            self.graph = self.model.Subgraphs(0)
        except WeightsError:
            raise
        except Exception as exc:  # a corrupt flatbuffer raises anything
            raise WeightsError(f"{path}: unreadable TFLite flatbuffer ({exc})") from None
        self.type_names = _enum_names(tflite.TensorType)
        self.act_names = _enum_names(tflite.ActivationFunctionType)
        self.pad_names = _enum_names(tflite.Padding)
        self.specs: dict[int, TensorSpec] = {}
        self.producer: dict[int, int] = {}  # tensor -> index of the operator writing it
        self.dequantized_consts: dict[int, np.ndarray] = {}  # outputs of DEQUANTIZE of constants

    # -- tensors --------------------------------------------------------------
    def spec(self, index: int) -> TensorSpec:
        if index not in self.specs:
            t = self.graph.Tensors(index)
            q = t.Quantization()
            scale = zero = None
            qdim = 0
            if q is not None and q.ScaleLength() > 0:
                scale = tuple(float(s) for s in q.ScaleAsNumpy())
                zero = tuple(int(z) for z in q.ZeroPointAsNumpy()) if q.ZeroPointLength() else (0,) * len(scale)
                qdim = int(q.QuantizedDimension())
            type_name = self.type_names.get(t.Type(), str(t.Type()))
            dtype = np.dtype(_DTYPES[type_name]).name if type_name in _DTYPES else type_name.lower()
            self.specs[index] = TensorSpec(
                index=index,
                name=t.Name().decode("utf-8", "replace"),
                shape=tuple(int(t.Shape(i)) for i in range(t.ShapeLength())),
                dtype=dtype,
                scale=scale,
                zero_point=zero,
                quantized_dimension=qdim,
            )
        return self.specs[index]

    def raw(self, index: int) -> np.ndarray | None:
        """The stored values of a constant tensor, or None for an activation."""
        t = self.graph.Tensors(index)
        if t.Sparsity() is not None:
            raise WeightsError(f"{self.path}: tensor {self.spec(index).name!r} is sparse, which is not supported")
        buffer = self.model.Buffers(t.Buffer())
        if buffer is None:
            return None
        if buffer.DataLength() > 0:
            raw = buffer.DataAsNumpy().tobytes()
        elif buffer.Offset() > 1:  # files over 2 GB keep buffers after the flatbuffer
            raw = self.data[buffer.Offset() : buffer.Offset() + buffer.Size()]
        else:
            return None
        spec = self.spec(index)
        if spec.dtype not in {np.dtype(d).name for d in _DTYPES.values()}:
            raise WeightsError(f"{self.path}: constant {spec.name!r} has unsupported type {spec.dtype}")
        return np.frombuffer(raw, dtype=spec.dtype).reshape(spec.shape)

    def constant(self, index: int, scale: np.ndarray | None = None) -> np.ndarray | None:
        """A constant input as float32 (dequantized), or None when it is computed.

        ``scale`` is the bias scale to use for an int32 tensor that declares none
        (``input_scale * weight_scale``)."""
        if index < 0:
            return None
        if index in self.dequantized_consts:
            return self.dequantized_consts[index]
        raw = self.raw(index)
        if raw is None:
            return None
        spec = self.spec(index)
        if spec.dtype in ("float32", "float16", "float64"):
            return raw.astype(np.float32)
        if spec.scale is None:
            if scale is not None:
                return (raw.astype(np.float64) * scale).astype(np.float32)
            return raw  # shapes, axes, paddings: plain integers
        return dequantize(raw, spec)

    # -- operators ------------------------------------------------------------
    def op_name(self, op) -> str:
        code = self.model.OperatorCodes(op.OpcodeIndex())
        builtin = max(int(code.BuiltinCode()), int(code.DeprecatedBuiltinCode()))
        name = self.tfl.BUILTIN_OPCODE2NAME.get(builtin, f"BUILTIN_{builtin}")
        if name == "CUSTOM":
            custom = code.CustomCode()
            name = f"CUSTOM:{custom.decode() if custom else '?'}"
        return name

    def options(self, op, cls):
        table = op.BuiltinOptions()
        if table is None:
            return None
        opts = cls()
        opts.Init(table.Bytes, table.Pos)
        return opts

    def layers(self) -> list[Layer]:
        layers = []
        for i in range(self.graph.OperatorsLength()):
            op = self.graph.Operators(i)
            name = self.op_name(op)
            inputs = tuple(int(t) for t in op.InputsAsNumpy()) if op.InputsLength() else ()
            outputs = tuple(int(t) for t in op.OutputsAsNumpy()) if op.OutputsLength() else ()
            if name == "DEQUANTIZE" and inputs and self.raw(inputs[0]) is not None:
                # float16 / int8 weights unpacked at load time: a constant, not a layer
                self.dequantized_consts[outputs[0]] = self.constant(inputs[0])
                continue
            layer = self.layer(i, op, name, inputs, outputs)
            for t in outputs:
                self.producer[t] = len(layers)
            layers.append(layer)
        return layers

    def layer(self, i: int, op, name: str, inputs, outputs) -> Layer:
        tfl = self.tfl
        out_spec = self.spec(outputs[0]) if outputs else None
        layer = Layer(
            index=i,
            op=name,
            name=out_spec.name if out_spec else "",
            inputs=inputs,
            outputs=outputs,
            input_shapes=(),
            output_shape=out_spec.shape if out_spec else (),
        )
        if name in WEIGHTED_OPS:
            if len(inputs) < 2:
                raise WeightsError(f"{self.path}: operator {i} ({name}) has no weight input")
            layer.input_shapes = (self.spec(inputs[0]).shape,)
            self.read_weights(layer, inputs)
        else:
            shapes = []
            for pos, t in enumerate(inputs):
                if t < 0:
                    continue
                value = self.constant(t)
                if value is not None:
                    layer.constants[pos] = value
                else:
                    shapes.append(self.spec(t).shape)
            layer.input_shapes = tuple(shapes)

        if name == "CONV_2D":
            o = self.options(op, tfl.Conv2DOptions)
            layer.stride = (o.StrideH(), o.StrideW())
            layer.dilation = (o.DilationHFactor(), o.DilationWFactor())
            layer.padding = self.pad_names[o.Padding()]
            layer.activation = self.act_names[o.FusedActivationFunction()]
        elif name == "DEPTHWISE_CONV_2D":
            o = self.options(op, tfl.DepthwiseConv2DOptions)
            layer.stride = (o.StrideH(), o.StrideW())
            layer.dilation = (o.DilationHFactor(), o.DilationWFactor())
            layer.padding = self.pad_names[o.Padding()]
            layer.activation = self.act_names[o.FusedActivationFunction()]
            layer.params["depth_multiplier"] = layer.weight.shape[0] // max(layer.input_shape[-1], 1)
        elif name == "FULLY_CONNECTED":
            o = self.options(op, tfl.FullyConnectedOptions)
            layer.activation = self.act_names[o.FusedActivationFunction()] if o else "NONE"
            layer.params["keep_num_dims"] = bool(o.KeepNumDims()) if o else False
        elif name == "AVERAGE_POOL_2D":
            o = self.options(op, tfl.Pool2DOptions)
            layer.stride = (o.StrideH(), o.StrideW())
            layer.kernel = (o.FilterHeight(), o.FilterWidth())
            layer.padding = self.pad_names[o.Padding()]
            layer.activation = self.act_names[o.FusedActivationFunction()]
        elif name in ("ADD", "MUL"):
            o = self.options(op, tfl.AddOptions if name == "ADD" else tfl.MulOptions)
            layer.activation = self.act_names[o.FusedActivationFunction()] if o else "NONE"
        elif name == "MEAN":
            o = self.options(op, tfl.ReducerOptions)
            layer.params["keep_dims"] = bool(o.KeepDims()) if o else False
        elif name == "SOFTMAX":
            o = self.options(op, tfl.SoftmaxOptions)
            layer.params["beta"] = float(o.Beta()) if o else 1.0
        if layer.kernel is None and layer.weight is not None and layer.weight.ndim == 4:
            layer.kernel = tuple(int(k) for k in layer.weight.shape[2:])
        return layer

    def read_weights(self, layer: Layer, inputs) -> None:
        w_index = inputs[1]
        weight = self.constant(w_index)
        if weight is None:
            raise WeightsError(
                f"{self.path}: operator {layer.index} ({layer.op}) computes its weights; not a classifier we read"
            )
        if layer.op == "CONV_2D":  # OHWI -> OIHW
            weight = weight.transpose(0, 3, 1, 2)
        elif layer.op == "DEPTHWISE_CONV_2D":  # [1, kh, kw, C*M] -> [C*M, 1, kh, kw]
            weight = weight.transpose(3, 0, 1, 2)
        layer.weight = np.ascontiguousarray(weight, dtype=np.float32)
        bias = None
        if len(inputs) > 2 and inputs[2] >= 0:
            # an int32 bias without its own scale uses input_scale * weight_scale
            in_spec, w_spec = self.spec(inputs[0]), self.spec(w_index)
            fallback = None
            if in_spec.scale is not None and w_spec.scale is not None:
                fallback = in_spec.scale[0] * np.asarray(w_spec.scale, dtype=np.float64)
            bias = self.constant(inputs[2], scale=fallback)
            if bias is None:
                raise WeightsError(f"{self.path}: operator {layer.index} ({layer.op}) computes its bias")
        if bias is None:
            bias = np.zeros(layer.weight.shape[0], np.float32)
        layer.bias = bias.astype(np.float32).reshape(-1)


def dequantize(raw: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """``(q - zero_point) * scale`` per tensor, or per channel along ``quantized_dimension``."""
    scale = np.asarray(spec.scale, dtype=np.float64)
    zero = np.asarray(spec.zero_point, dtype=np.float64)
    if scale.size > 1:
        shape = [1] * raw.ndim
        shape[spec.quantized_dimension] = scale.size
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return ((raw.astype(np.float64) - zero) * scale).astype(np.float32)


MIN_SIDE, MAX_SIDE = 8, 4096  # input sides a MobileNet classifier file may declare


@contextlib.contextmanager
def _unreadable_as_weights_error(path: Path) -> Iterator[None]:
    """The reader's boundary: a corrupt flatbuffer fails anywhere (struct.error, a
    bad uint32, a reshape, a missing table...); every such failure is one
    ``WeightsError`` naming the file."""
    try:
        yield
    except (WeightsError, ImportError):
        raise
    except Exception as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        kind = type(exc).__name__ if type(exc).__module__ == "builtins" else f"{type(exc).__module__}.{type(exc).__name__}"
        raise WeightsError(f"{path}: corrupt or damaged TFLite file ({kind}"
                           f"{': ' + first if first else ''}); download it again") from None


def read_tflite(path: str | os.PathLike) -> TFLiteModel:
    """Read a TFLite MobileNet classifier: its layers in execution order with
    float32 weights in PyTorch layout, its input, and which of our models it is.

    Raises ``WeightsError`` (a ``ValueError``) naming the file when it is not a
    MobileNet V1/V2/V3 classifier that we understand, or is damaged.
    """
    path = Path(path)
    with _unreadable_as_weights_error(path):
        return _read_tflite(path)


def _read_tflite(path: Path) -> TFLiteModel:
    reader = _Reader(path)
    graph = reader.graph
    layers = reader.layers()
    tensors = dict(reader.specs)
    if graph.InputsLength() != 1 or graph.OutputsLength() < 1:
        raise WeightsError(f"{path}: a classifier has one input; this graph has {graph.InputsLength()}")
    inp = reader.spec(int(graph.Inputs(0)))
    out = reader.spec(int(graph.Outputs(0)))
    unknown = sorted({layer.op for layer in layers} - set(SUPPORTED_OPS))
    if unknown:
        raise WeightsError(
            f"{path}: operators {', '.join(unknown)} are not part of a MobileNet classifier we read"
        )
    if len(inp.shape) != 4 or inp.shape[3] != 3 or inp.shape[1] != inp.shape[2]:
        raise WeightsError(f"{path}: input of shape {list(inp.shape)} is not one square RGB image (NHWC)")
    if not MIN_SIDE <= inp.shape[1] <= MAX_SIDE:
        raise WeightsError(f"{path}: input of side {inp.shape[1]} px is outside {MIN_SIDE}..{MAX_SIDE}; "
                           "not a classifier input we read")
    weighted = [layer for layer in layers if layer.weight is not None]
    if len(weighted) < 3:
        raise WeightsError(f"{path}: {len(weighted)} convolution/dense layers; not a MobileNet")
    model = TFLiteModel(
        path=path,
        layers=layers,
        input=inp,
        output=out,
        version="",
        width=0.0,
        resolution=int(inp.shape[1]),
        num_classes=int(weighted[-1].weight.shape[0]),
        tensors=tensors,
    )
    _identify(model)
    return model


# --------------------------------------------------------------------------- identification


def _consumers(layers: list[Layer]) -> dict[int, list[Layer]]:
    users: dict[int, list[Layer]] = {}
    for layer in layers:
        for t in layer.inputs:
            users.setdefault(t, []).append(layer)
    return users


def _producers(layers: list[Layer]) -> dict[int, Layer]:
    return {t: layer for layer in layers for t in layer.outputs}


def _same_pads(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _effective_padding(layer: Layer, producers: dict[int, Layer]) -> str:
    """How a conv pads, as one of our paddings: "SAME" (TensorFlow's, also written out
    as a PAD before a VALID conv), "SYMMETRIC" (PyTorch's ``k // 2`` on every side,
    written out so: a model of ours exported with `mobilenet export`), "BOTH" where the
    two agree (1x1 kernels, stride 1 with odd kernels), "OTHER" for anything else."""
    if layer.op == "FULLY_CONNECTED":
        return "BOTH"
    kh, kw = layer.kernel
    h, w = layer.input_shape[1:3]
    sym = [[kh // 2 * layer.dilation[0]] * 2, [kw // 2 * layer.dilation[1]] * 2]
    same = [list(_same_pads(n, k, st, d)) for n, k, st, d in zip((h, w), (kh, kw), layer.stride, layer.dilation)]
    if layer.padding == "SAME":
        return "BOTH" if same == sym else "SAME"
    if same == [[0, 0], [0, 0]]:  # VALID = SAME here
        return "BOTH" if sym == same else "SAME"
    pad = producers.get(layer.inputs[0])
    if pad is not None and pad.op == "PAD" and 1 in pad.constants:
        amounts = np.asarray(pad.constants[1]).reshape(-1, 2).tolist()
        if amounts[0] != [0, 0] or amounts[3] != [0, 0]:
            return "OTHER"
        ph, pw = pad.input_shape[1:3]
        same = [list(_same_pads(n, k, st, d)) for n, k, st, d in zip((ph, pw), (kh, kw), layer.stride, layer.dilation)]
        fits_same, fits_sym = amounts[1:3] == same, amounts[1:3] == sym
        return "BOTH" if fits_same and fits_sym else "SAME" if fits_same else "SYMMETRIC" if fits_sym else "OTHER"
    return "OTHER"


def _effective_activation(layer: Layer, users: dict[int, list[Layer]]) -> str:
    """The fused activation, or the activation op that alone reads the output."""
    if layer.activation != "NONE":
        return layer.activation
    readers = users.get(layer.outputs[0], [])
    if len(readers) == 1 and readers[0].op in ("HARD_SWISH", "RELU", "RELU6"):
        return readers[0].op
    return "NONE"


def _candidates(model: TFLiteModel, family: str) -> list[tuple[str, dict[str, Any]]]:
    w = model.weighted
    derived: list[float] = []

    def ratio(channels: int, base: int) -> None:
        derived.append(round(channels / base, 4))

    if family == "v1":
        # widths: stem max(int(32a), 8), first pointwise int(64a), last int(1024a)
        ratio(w[-2].out_channels, 1024)
        if len(w) > 2:
            ratio(w[2].out_channels, 64)
        widths = list(dict.fromkeys(derived + list(STANDARD_WIDTHS)))
        relu6 = _effective_activation(w[0], _consumers(model.layers)) != "RELU"
        return [("MobileNetV1", {"depth_multiplier": a, "use_relu6": relu6}) for a in widths]
    # the widest block output before the last conv: 320a for V2, 160a / 96a for V3
    # V2: ... last block's projection, last conv, classifier; V3 has the head conv too
    outs = [layer.out_channels for layer in w[:-2] if layer.op == "CONV_2D"]
    if not outs:
        return []
    last_block = outs[-1] if family == "v2" or len(outs) < 2 else outs[-2]
    ratio(w[0].out_channels, 32 if family == "v2" else 16)
    if family == "v2":
        ratio(last_block, 320)
        widths = list(dict.fromkeys(derived + list(STANDARD_WIDTHS)))
        return [("MobileNetV2", {"width": a}) for a in widths]
    out = []
    for config, base in (("large", 160), ("small", 96)):
        widths = list(dict.fromkeys([*derived, round(last_block / base, 4), *STANDARD_WIDTHS]))
        for minimal in (False, True):
            out += [("MobileNetV3", {"config": config, "width": a, "minimal": minimal}) for a in widths]
    return out


def _weighted_modules(net: nn.Module) -> list[tuple[str, nn.Module, str | None]]:
    """Our model's conv and linear layers in execution order, each with the
    activation that follows it in its ConvNormAct (None when not checked)."""
    from torch import nn

    names = {nn.ReLU: "RELU", nn.ReLU6: "RELU6", nn.Hardswish: "HARD_SWISH"}
    out = []
    parents = dict(net.named_modules())
    for name, module in net.named_modules():
        if not isinstance(module, (nn.Conv2d, nn.Linear)):
            continue
        act: str | None = None
        parent_name, _, child = name.rpartition(".")
        parent = parents.get(parent_name)
        if child == "conv" and parent is not None and hasattr(parent, "bn"):
            act = next((n for t, n in names.items() if isinstance(getattr(parent, "act", None), t)), "NONE")
        elif name == "classifier":
            act = "NONE"
        out.append((name, module, act))
    return out


def _signature_of_module(module: nn.Module) -> tuple:
    from torch import nn

    if isinstance(module, nn.Linear):
        return ("fc", tuple(module.weight.shape), (1, 1))
    depthwise = module.groups > 1 and module.groups == module.in_channels
    return ("dw" if depthwise else "conv", tuple(module.weight.shape), tuple(module.stride))


def _signature_of_layer(layer: Layer, as_linear: bool) -> tuple:
    shape = tuple(layer.weight.shape)
    if as_linear:
        return ("fc", (shape[0], int(np.prod(shape[1:]))), (1, 1))
    if layer.op == "FULLY_CONNECTED":
        return ("fc", shape, (1, 1))
    kind = "dw" if layer.op == "DEPTHWISE_CONV_2D" else "conv"
    return (kind, shape, tuple(layer.stride))


def _build(arch: str, kwargs: dict[str, Any], num_classes: int, device=None, padding: str = "same") -> nn.Module:
    import torch

    from .. import v1, v2, v3

    classes = {"MobileNetV1": v1.MobileNetV1, "MobileNetV2": v2.MobileNetV2, "MobileNetV3": v3.MobileNetV3}
    with torch.device(device) if device is not None else contextlib.nullcontext():
        return classes[arch](n_classes=num_classes, padding=padding, **kwargs)


def _matches(model: TFLiteModel, net: nn.Module) -> bool:
    from torch import nn

    ours = _weighted_modules(net)
    theirs = model.weighted
    if len(ours) != len(theirs):
        return False
    for (_, module, _), layer in zip(ours, theirs):
        as_linear = isinstance(module, nn.Linear)
        if _signature_of_module(module) != _signature_of_layer(layer, as_linear):
            return False
    return True


def _check_layers(model: TFLiteModel, net: nn.Module) -> str:
    """Padding and activations must be what our model computes; returns the padding
    ("same" for TensorFlow's files, "symmetric" for PyTorch's written out as PADs)."""
    users, producers = _consumers(model.layers), _producers(model.layers)
    layers = list(zip(_weighted_modules(net), model.weighted))
    paddings = [_effective_padding(layer, producers) for _, layer in layers]
    symmetric = "SYMMETRIC" in paddings
    for ((name, _, act), layer), padding in zip(layers, paddings):
        if layer.dilation != (1, 1):
            raise WeightsError(
                f"{model.path}: {name} (operator {layer.index}) is dilated {layer.dilation}; ours are not"
            )
        if padding not in ("BOTH", "SYMMETRIC" if symmetric else "SAME"):
            raise WeightsError(
                f"{model.path}: {name} (operator {layer.index}) uses {layer.padding} padding, "
                f"which our {'symmetric' if symmetric else 'SAME'}-padded model cannot reproduce"
            )
        if act is not None:
            theirs = _effective_activation(layer, users)
            if theirs != act:
                raise WeightsError(
                    f"{model.path}: {name} (operator {layer.index}) is followed by {theirs}; "
                    f"our model applies {act}"
                )
    return "symmetric" if symmetric else "same"


def _family(model: TFLiteModel) -> str:
    ops = set(model.ops)
    # SE gates multiply a feature map by a computed (non-constant) tensor
    se = any(layer.op == "MUL" and len(layer.input_shapes) == 2 for layer in model.layers)
    if "HARD_SWISH" in ops or se:
        return "v3"
    residual = any(layer.op == "ADD" and len(layer.input_shapes) == 2 for layer in model.layers)
    return "v2" if residual else "v1"


def _identify(model: TFLiteModel) -> None:
    from ..registry import MODELS

    family = _family(model)
    families = [family] + (["v3"] if family == "v2" else [])  # V3-minimal has no hard-swish nor SE
    tried = []
    for fam in families:
        for arch, kwargs in _candidates(model, fam):
            tried.append(kwargs.get("width", kwargs.get("depth_multiplier")))
            net = _build(arch, kwargs, model.num_classes, device="meta")
            if not _matches(model, net):
                continue
            model.padding = _check_layers(model, net)
            model.arch, model.arch_kwargs = arch, kwargs
            model.version = {"MobileNetV1": "v1", "MobileNetV2": "v2", "MobileNetV3": "v3"}[arch]
            model.width = float(kwargs.get("width", kwargs.get("depth_multiplier")))
            model.config = kwargs.get("config")
            model.minimal = bool(kwargs.get("minimal", False))
            spec_kwargs = {k: v for k, v in kwargs.items() if not (k == "use_relu6" and v)}
            for spec in MODELS.values():
                if spec.cls.__name__ == arch and spec.kwargs == spec_kwargs:
                    model.model_name = spec.name
                    break
            return
    widths = ", ".join(f"{w:g}" for w in dict.fromkeys(tried))
    raise WeightsError(
        f"{model.path}: not a MobileNet classifier we understand: its {len(model.weighted)} "
        f"convolution/dense layers ({', '.join(sorted(set(model.ops)))}) match no MobileNet{family[1:].upper()} "
        f"of width {widths} with {model.num_classes} classes"
    )


# --------------------------------------------------------------------------- loading


def _read_labels(path: Path, num_classes: int) -> list[str] | None:
    labels_path = path.with_name(LABELS_FILE)
    if not labels_path.is_file():
        return None
    labels = [line.strip() for line in labels_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return labels if len(labels) == num_classes else None


def _our_metadata(path: Path) -> dict[str, Any]:
    try:
        from ..runtimes.litert import read_metadata
    except ImportError:  # the runtime layer is not importable: a foreign file's conventions apply
        return {}
    return read_metadata(path) or {}


def load_tflite(path: str | os.PathLike) -> tuple[nn.Module, dict[str, Any]]:
    """Our float model with the weights of a TFLite MobileNet classifier.

    Returns ``(model, info)``: the model is in eval mode, built with
    ``padding="same"`` and the file's class count (1001 for Google's files:
    output 0 is "background", ImageNet class i is output i + 1). ``info`` holds
    ``version``, ``width``, ``config``/``minimal`` (V3), ``model_name``,
    ``resolution``, ``num_classes``, ``preprocess`` (a :class:`Preprocess`:
    central 87.5% crop, bilinear resize, ``(x - 128) / 128``), ``labels``
    (from ``imagenet_labels.txt`` beside the file, or None; a file written by
    ``mobilenet export`` gives its own preprocessing and labels), ``input``
    (the file's input tensor: dtype, scale, zero point), ``source`` and
    ``graph`` (the :class:`TFLiteModel` read). ``model.pretrained_cfg`` gets
    the preprocessing and labels, so ``save_weights`` keeps them.
    """
    path = Path(path)
    with _unreadable_as_weights_error(path):
        return _load_tflite(path)


def _load_tflite(path: Path) -> tuple[nn.Module, dict[str, Any]]:
    import torch
    from torch import nn

    from ..registry import create_model

    graph = _read_tflite(path)
    if graph.model_name is not None:
        net = create_model(graph.model_name, num_classes=graph.num_classes, padding=graph.padding)
    else:
        net = _build(graph.arch, graph.arch_kwargs, graph.num_classes, padding=graph.padding)
    modules = dict(net.named_modules())
    with torch.no_grad():
        for (name, module, _), layer in zip(_weighted_modules(net), graph.weighted):
            weight = torch.from_numpy(layer.weight)
            bias = torch.from_numpy(layer.bias)
            module.weight.copy_(weight.reshape(module.weight.shape))
            parent = modules.get(name.rpartition(".")[0])
            bn = getattr(parent, "bn", None) if name.endswith(".conv") else None
            if isinstance(bn, nn.BatchNorm2d):
                bn.weight.fill_(1.0)
                bn.bias.copy_(bias)
                bn.running_mean.zero_()
                bn.running_var.fill_(1.0 - bn.eps)
            elif module.bias is not None:
                module.bias.copy_(bias)
            elif bool((bias != 0).any()):
                raise WeightsError(f"{graph.path}: {name} has a bias in the file but none in our model")
    net.eval()
    check_finite(net.state_dict(), graph.path)
    preprocess = graph.preprocess()
    labels = _read_labels(graph.path, graph.num_classes)
    ours = _our_metadata(graph.path)  # a file `mobilenet export` wrote says what it was made with
    if ours.get("preprocess"):
        preprocess = type(preprocess).from_dict(ours["preprocess"])
    if ours.get("labels") and len(ours["labels"]) == graph.num_classes:
        labels = ours["labels"]
    net.pretrained_cfg = {"preprocess": preprocess.to_dict(), "labels": labels, "source": str(graph.path)}
    info = {
        "version": graph.version,
        "arch": graph.arch,
        "width": graph.width,
        "config": graph.config,
        "minimal": graph.minimal,
        "model_name": graph.model_name,
        "resolution": graph.resolution,
        "num_classes": graph.num_classes,
        "preprocess": preprocess,
        "mean": preprocess.mean,
        "std": preprocess.std,
        "crop_pct": preprocess.crop_pct,
        "interpolation": preprocess.interpolation,
        "labels": labels,
        "input": {"dtype": graph.input.dtype, "shape": graph.input.shape, "scale": graph.input.scale,
                  "zero_point": graph.input.zero_point},
        "quantized": graph.quantized,
        "source": str(graph.path),
        "graph": graph,
    }
    return net, info


# --------------------------------------------------------------------------- reference forward


def run_float(graph: TFLiteModel, x: torch.Tensor) -> torch.Tensor:
    """Execute the file's operators in float on ``x`` (N, 3, H, W, already
    normalised), straight from the records: an oracle for the reader that does
    not involve our model classes. Returns the graph's output (probabilities for
    Google's classifiers). Tensors stay in TFLite's NHWC layout between ops.
    """
    import torch
    import torch.nn.functional as F

    def act(value: torch.Tensor, name: str) -> torch.Tensor:
        if name == "NONE":
            return value
        if name == "RELU":
            return F.relu(value)
        if name == "RELU6":
            return F.relu6(value)
        if name == "RELU_N1_TO_1":
            return value.clamp(-1, 1)
        if name == "TANH":
            return torch.tanh(value)
        raise NotImplementedError(f"fused activation {name}")

    def operand(layer: Layer, pos: int, values: dict) -> torch.Tensor:
        if pos in layer.constants:
            return torch.from_numpy(np.asarray(layer.constants[pos], dtype=np.float32))
        return values[layer.inputs[pos]]

    values: dict[int, torch.Tensor] = {graph.input.index: x.permute(0, 2, 3, 1)}
    for layer in graph.layers:
        op = layer.op
        if op in WEIGHTED_OPS:
            inp = values[layer.inputs[0]]
            weight, bias = torch.from_numpy(layer.weight), torch.from_numpy(layer.bias)
            if op == "FULLY_CONNECTED":
                y = F.linear(inp.reshape(-1, weight.shape[1]), weight, bias)
                if layer.params.get("keep_num_dims"):
                    y = y.reshape(*inp.shape[:-1], -1)
            else:
                z = inp.permute(0, 3, 1, 2)
                if layer.padding == "SAME":
                    top, bottom = _same_pads(z.shape[2], layer.kernel[0], layer.stride[0], layer.dilation[0])
                    left, right = _same_pads(z.shape[3], layer.kernel[1], layer.stride[1], layer.dilation[1])
                    z = F.pad(z, (left, right, top, bottom))
                groups = z.shape[1] if op == "DEPTHWISE_CONV_2D" else 1
                y = F.conv2d(z, weight, bias, layer.stride, 0, layer.dilation, groups).permute(0, 2, 3, 1)
            y = act(y, layer.activation)
        elif op == "AVERAGE_POOL_2D":
            z = values[layer.inputs[0]].permute(0, 3, 1, 2)
            if tuple(z.shape[2:]) == tuple(layer.kernel):
                y = z.mean((2, 3), keepdim=True)
            elif layer.padding == "VALID":
                y = F.avg_pool2d(z, layer.kernel, layer.stride)
            else:
                raise NotImplementedError("SAME-padded average pooling")
            y = act(y.permute(0, 2, 3, 1), layer.activation)
        elif op == "MEAN":
            axes = [int(a) for a in np.asarray(layer.constants[1]).reshape(-1)]
            y = values[layer.inputs[0]].mean(axes, keepdim=layer.params.get("keep_dims", False))
        elif op in ("RESHAPE", "SQUEEZE"):
            inp = values[layer.inputs[0]]
            y = inp.reshape(inp.shape[0], *layer.output_shape[1:])
        elif op == "SOFTMAX":
            y = torch.softmax(values[layer.inputs[0]] * layer.params.get("beta", 1.0), dim=-1)
        elif op == "ADD":
            y = act(operand(layer, 0, values) + operand(layer, 1, values), layer.activation)
        elif op == "MUL":
            y = act(operand(layer, 0, values) * operand(layer, 1, values), layer.activation)
        elif op == "HARD_SWISH":
            y = F.hardswish(values[layer.inputs[0]])
        elif op == "RELU":
            y = F.relu(values[layer.inputs[0]])
        elif op == "RELU6":
            y = F.relu6(values[layer.inputs[0]])
        elif op == "LOGISTIC":
            y = torch.sigmoid(values[layer.inputs[0]])
        elif op == "PAD":
            amounts = np.asarray(layer.constants[1]).reshape(-1, 2)
            flat = [int(v) for pair in amounts[::-1] for v in pair]
            y = F.pad(values[layer.inputs[0]], flat)
        elif op in ("QUANTIZE", "DEQUANTIZE"):
            y = values[layer.inputs[0]]
        else:
            raise NotImplementedError(op)
        values[layer.outputs[0]] = y
    return values[graph.output.index]
