"""Google's TFLite MobileNets: the reader, the port to our models, and the port
checked against the TFLite runtime (ai-edge-litert) on real images.

Needs ../shared/data (the two uint8 files and imagenet-sample/) and the
`tflite` and `ai-edge-litert` packages; skips with the reason otherwise.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import shared_path

pytest.importorskip(
    "tflite", reason='the pure-Python "tflite" reader is not installed (pip install "mobilenet[tflite]")'
)

from mobilenet.weights import WeightsError  # noqa: E402
from mobilenet.weights.tflite import load_tflite, read_tflite, run_float  # noqa: E402

V1 = "mobilenet_v1_0.25_128_quant.tflite"
V2 = "mobilenet_v2_1.0_224_quant.tflite"
FILES = {"v1": V1, "v2": V2}
# minimum top-1 on imagenet-sample of our float port, and agreement with the runtime
# (on the default suite's tenth of the images, V2's bounds allow for the smaller sample)
MIN_TOP1 = {("v1", "all"): 0.40, ("v2", "all"): 0.83, ("v2", "tenth"): 0.80}
MIN_AGREEMENT = {("v1", "all"): 0.92, ("v2", "all"): 0.97, ("v2", "tenth"): 0.95}
# the top-1 that symmetric padding loses at least
SYMMETRIC_DROP = {"v1": 0.15, "v2": 0.03}
SUBSETS = {"all": slice(None), "tenth": slice(None, None, 10)}
BATCH = 100


def litert():
    return pytest.importorskip(
        "ai_edge_litert.interpreter",
        reason='the TFLite runtime ai-edge-litert is not installed (pip install "mobilenet[tflite]")',
    )


@contextlib.contextmanager
def torch_threads(n: int):
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def tflite_file():
    return lambda key: shared_path("tflite", FILES[key])


@pytest.fixture(scope="session")
def ported(tflite_file):
    """key -> (model, info) from load_tflite."""
    return {key: load_tflite(tflite_file(key)) for key in FILES}


@pytest.fixture(scope="session")
def sample(ported):
    """imagenet-sample decoded once, preprocessed the way each file's info says
    and rounded to the uint8 the quantized runtime takes (the port sees the same
    pixels): key -> uint8 [1000, 3, R, R]; plus the labels (sorted wnid + 1)."""
    from mobilenet.images import load_image

    folder = shared_path("imagenet-sample")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".jpeg")
    assert len(files) == 1000, f"{folder} holds {len(files)} JPEGs, expected 1000"
    transforms = {key: info["preprocess"].transform() for key, (_, info) in ported.items()}
    out: dict[str, list[torch.Tensor]] = {key: [] for key in ported}
    with torch_threads(1):  # tiny tensor ops: extra threads only add overhead
        for path in files:
            image = load_image(path)
            for key, transform in transforms.items():
                x = transform(image)  # (x - 128) / 128
                out[key].append(torch.round(x * 128 + 128).clamp_(0, 255).to(torch.uint8))
    return {key: torch.stack(xs) for key, xs in out.items()}, np.arange(1000) + 1


def to_float(u8: torch.Tensor) -> torch.Tensor:
    return (u8.float() - 128.0) / 128.0


def forward_all(model: torch.nn.Module, images: torch.Tensor) -> np.ndarray:
    model = model.eval().to(memory_format=torch.channels_last)
    out = []
    with torch.inference_mode():
        for i in range(0, len(images), BATCH):
            x = to_float(images[i : i + BATCH]).contiguous(memory_format=torch.channels_last)
            out.append(model(x))
    return torch.cat(out).numpy()


def runtime_logits(path: Path, images: torch.Tensor) -> np.ndarray:
    """The runtime's quantized logits (the softmax's input: the uint8 softmax
    output has a step of 1/256 and ties far more often)."""
    interpreter_mod = litert()
    graph = read_tflite(path)
    softmax = [layer for layer in graph.layers if layer.op == "SOFTMAX"][-1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "preserve_all_tensors is for debugging"
        interpreter = interpreter_mod.Interpreter(str(path), num_threads=2, experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    index = interpreter.get_input_details()[0]["index"]
    out = []
    for x in images.permute(0, 2, 3, 1).numpy():
        interpreter.set_tensor(index, x[None])
        interpreter.invoke()
        out.append(interpreter.get_tensor(softmax.inputs[0])[0].astype(np.int32))
    return np.stack(out)


@pytest.fixture(scope="session")
def evaluate(ported, sample, tflite_file):
    """(key, subset) -> our logits (SAME padding), the runtime's logits, the
    labels, and (computed on first use) our logits with symmetric padding."""
    from mobilenet.registry import create_model

    images, labels = sample
    cache: dict[tuple[str, str], dict] = {}

    def run(key: str, subset: str, symmetric: bool = False) -> dict:
        rows = SUBSETS[subset]
        x = images[key][rows]
        model, info = ported[key]
        if (key, subset) not in cache:
            start = time.perf_counter()
            ours = forward_all(model, x)
            mid = time.perf_counter()
            runtime = runtime_logits(tflite_file(key), x)
            seconds = (mid - start, time.perf_counter() - mid)
            cache[key, subset] = dict(ours=ours, runtime=runtime, labels=labels[rows], seconds=seconds)
        r = cache[key, subset]
        if symmetric and "symmetric" not in r:
            other = create_model(info["model_name"], num_classes=info["num_classes"])  # padding="symmetric"
            other.load_state_dict(model.state_dict())
            r["symmetric"] = forward_all(other, x)
        return r

    return run


# --------------------------------------------------------------------------- the reader


def test_reader_walks_the_v1_graph(tflite_file):
    graph = read_tflite(tflite_file("v1"))
    assert graph.ops == ["CONV_2D"] + ["DEPTHWISE_CONV_2D", "CONV_2D"] * 13 + [
        "AVERAGE_POOL_2D",
        "CONV_2D",
        "RESHAPE",
        "SOFTMAX",
    ]
    assert (graph.version, graph.width, graph.resolution, graph.num_classes) == ("v1", 0.25, 128, 1001)
    assert graph.model_name == "mobilenet_v1_025"
    assert graph.input.shape == (1, 128, 128, 3) and graph.input.dtype == "uint8"
    assert graph.input.scale == (0.0078125,) and graph.input.zero_point == (128,)
    stem, dw, pw = graph.weighted[:3]
    assert stem.weight.shape == (8, 3, 3, 3) and stem.stride == (2, 2) and stem.padding == "SAME"
    assert dw.weight.shape == (8, 1, 3, 3) and dw.op == "DEPTHWISE_CONV_2D"
    assert pw.weight.shape == (16, 8, 1, 1)
    assert all(layer.activation == "RELU6" for layer in graph.weighted[:-1])
    classifier = graph.weighted[-1]
    assert classifier.weight.shape == (1001, 256, 1, 1) and classifier.activation == "NONE"
    strides = [layer.stride[0] for layer in graph.weighted if layer.op == "DEPTHWISE_CONV_2D"]
    assert strides == [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1]
    for layer in graph.weighted:
        assert layer.weight.dtype == np.float32 and layer.bias.dtype == np.float32
        assert layer.bias.shape == (layer.weight.shape[0],)


def test_reader_walks_the_v2_graph(tflite_file):
    graph = read_tflite(tflite_file("v2"))
    assert (graph.version, graph.width, graph.resolution, graph.num_classes) == ("v2", 1.0, 224, 1001)
    assert graph.model_name == "mobilenet_v2_100"
    assert graph.ops.count("ADD") == 10  # the residuals of Table 2: 1 + 2 + 3 + 2 + 2
    assert graph.ops.count("DEPTHWISE_CONV_2D") == 17
    # linear bottlenecks: the projections have no activation; stem, 16 expansions, 17 depthwise
    # and the last conv have ReLU6
    # (tensor names are ';'-joined lists of the TF ops fused into them: the first is the op's own)
    projections = [layer for layer in graph.weighted if "/project/" in layer.name.split(";")[0]]
    assert len(projections) == 17 and all(layer.activation == "NONE" for layer in projections)
    others = [layer for layer in graph.weighted[:-1] if layer not in projections]
    assert len(others) == 35 and all(layer.activation == "RELU6" for layer in others)
    assert graph.weighted[-2].weight.shape == (1280, 320, 1, 1)


def test_reader_dequantizes_like_the_runtime(tflite_file):
    """Every weight and bias equals (q - zero_point) * scale of the tensor the
    runtime itself holds, moved to PyTorch's layout."""
    interpreter_mod = litert()
    for key in FILES:
        path = tflite_file(key)
        graph = read_tflite(path)
        interpreter = interpreter_mod.Interpreter(str(path))
        interpreter.allocate_tensors()
        details = {d["index"]: d for d in interpreter.get_tensor_details()}
        for layer in graph.weighted:
            for tensor, ours in zip(layer.inputs[1:3], (layer.weight, layer.bias)):
                q = details[tensor]["quantization_parameters"]
                raw = interpreter.get_tensor(tensor).astype(np.float64)
                scale, zero = q["scales"], q["zero_points"]
                if scale.size > 1:
                    shape = [1] * raw.ndim
                    shape[q["quantized_dimension"]] = -1
                    scale, zero = scale.reshape(shape), zero.reshape(shape)
                expected = (raw - zero) * scale
                if raw.ndim == 4:
                    order = (3, 0, 1, 2) if layer.op == "DEPTHWISE_CONV_2D" else (0, 3, 1, 2)
                    expected = expected.transpose(order)
                np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-7, err_msg=f"{key} {layer}")
            # README: int32 bias scale = input scale * weight scale
            bias_scale = details[layer.inputs[2]]["quantization_parameters"]["scales"]
            in_scale = details[layer.inputs[0]]["quantization_parameters"]["scales"]
            w_scale = details[layer.inputs[1]]["quantization_parameters"]["scales"]
            np.testing.assert_allclose(bias_scale, in_scale * w_scale, rtol=1e-5)


def test_dequantize_per_tensor_and_per_channel():
    from mobilenet.weights.tflite import TensorSpec, dequantize

    q = np.array([[0, 10], [20, 30], [40, 50]], dtype=np.uint8)
    per_tensor = TensorSpec(0, "w", (3, 2), "uint8", scale=(0.5,), zero_point=(10,))
    np.testing.assert_array_equal(dequantize(q, per_tensor), (q.astype(np.float32) - 10) * 0.5)
    # int8, symmetric, one scale per output channel (axis 0) or per column (axis 1)
    q8 = np.array([[-2, 4], [6, -8], [1, 1]], dtype=np.int8)
    rows = TensorSpec(0, "w", (3, 2), "int8", scale=(1.0, 0.5, 0.25), zero_point=(0, 0, 0), quantized_dimension=0)
    np.testing.assert_array_equal(dequantize(q8, rows), q8 * np.array([[1.0], [0.5], [0.25]], dtype=np.float32))
    cols = TensorSpec(0, "w", (3, 2), "int8", scale=(2.0, 0.5), zero_point=(1, -1), quantized_dimension=1)
    expected = (q8 - np.array([1, -1])) * np.array([2.0, 0.5], dtype=np.float32)
    np.testing.assert_array_equal(dequantize(q8, cols), expected)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "not a TFLite flatbuffer"),
        (b"not a model at all, just text", "not a TFLite flatbuffer"),
    ],
)
def test_reader_refuses_what_is_not_tflite(tmp_path, content, message):
    path = tmp_path / "model.tflite"
    path.write_bytes(content)
    with pytest.raises(WeightsError, match=message) as err:
        read_tflite(path)
    assert str(path) in str(err.value)


def test_reader_refuses_a_missing_or_truncated_file(tmp_path, tflite_file):
    with pytest.raises(ValueError, match="no such file"):
        read_tflite(tmp_path / "absent.tflite")
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(tflite_file("v1").read_bytes()[:5000])
    with pytest.raises(ValueError, match=str(cut)):
        read_tflite(cut)


def test_reader_refuses_a_graph_that_is_no_mobilenet(tflite_file):
    """A graph whose convolutions match no MobileNet (a block taken out)."""
    from mobilenet.weights import tflite as mod

    graph = read_tflite(tflite_file("v1"))
    graph.layers = graph.layers[:3] + graph.layers[5:]
    with pytest.raises(WeightsError, match=r"not a MobileNet classifier we understand") as err:
        mod._identify(graph)
    assert V1 in str(err.value)


# --------------------------------------------------------------------------- float files


def write_float_copy(source: Path, target: Path) -> None:
    """Rewrite a quantized file as a float32 one, as Google's float releases
    are: the same graph, dequantized weights, float activations, no
    quantization. Built with the flatbuffer builders of the `tflite` package."""
    import flatbuffers
    import tflite

    from mobilenet.weights.tflite import _Reader

    reader = _Reader(source)
    model, graph = reader.model, reader.graph
    b = flatbuffers.Builder(1 << 20)

    def ints(values) -> int:
        return b.CreateNumpyVector(np.asarray(list(values), dtype=np.int32))

    def offsets(start, items) -> int:
        start(b, len(items))
        for item in reversed(items):
            b.PrependUOffsetTRelative(item)
        return b.EndVector()

    def data_vector(payload: bytes) -> int:
        b.StartVector(1, len(payload), 16)
        b.head -= len(payload)
        b.Bytes[b.head : b.head + len(payload)] = payload
        b.vectorNumElems = len(payload)
        return b.EndVector()

    payloads = [b""]  # buffer 0: the empty buffer of activations
    tensors = []
    for i in range(graph.TensorsLength()):
        spec = reader.spec(i)
        value = reader.constant(i)
        buffer = 0
        if value is not None:
            payloads.append(np.ascontiguousarray(value).tobytes())
            buffer = len(payloads) - 1
        is_float = value is None or value.dtype == np.float32
        name = b.CreateString(spec.name)
        shape = ints(spec.shape)
        tflite.TensorStart(b)
        tflite.TensorAddShape(b, shape)
        tflite.TensorAddType(b, tflite.TensorType.FLOAT32 if is_float else tflite.TensorType.INT32)
        tflite.TensorAddBuffer(b, buffer)
        tflite.TensorAddName(b, name)
        tensors.append(tflite.TensorEnd(b))
    buffers = []
    for payload in payloads:
        data = data_vector(payload) if payload else None
        tflite.BufferStart(b)
        if data is not None:
            tflite.BufferAddData(b, data)
        buffers.append(tflite.BufferEnd(b))

    def options(op) -> tuple[int, int]:
        kind = op.BuiltinOptionsType()
        opts = {1: tflite.Conv2DOptions, 2: tflite.DepthwiseConv2DOptions, 5: tflite.Pool2DOptions,
                9: tflite.SoftmaxOptions, 11: tflite.AddOptions, 17: tflite.ReshapeOptions}.get(kind)
        if opts is None:
            return 0, 0
        o = reader.options(op, opts)
        if kind == 17:
            new_shape = ints(o.NewShapeAsNumpy()) if o.NewShapeLength() else None
            tflite.ReshapeOptionsStart(b)
            if new_shape is not None:
                tflite.ReshapeOptionsAddNewShape(b, new_shape)
            return kind, tflite.ReshapeOptionsEnd(b)
        if kind == 1:
            tflite.Conv2DOptionsStart(b)
            tflite.Conv2DOptionsAddPadding(b, o.Padding())
            tflite.Conv2DOptionsAddStrideW(b, o.StrideW())
            tflite.Conv2DOptionsAddStrideH(b, o.StrideH())
            tflite.Conv2DOptionsAddDilationWFactor(b, o.DilationWFactor())
            tflite.Conv2DOptionsAddDilationHFactor(b, o.DilationHFactor())
            tflite.Conv2DOptionsAddFusedActivationFunction(b, o.FusedActivationFunction())
            return kind, tflite.Conv2DOptionsEnd(b)
        if kind == 2:
            tflite.DepthwiseConv2DOptionsStart(b)
            tflite.DepthwiseConv2DOptionsAddPadding(b, o.Padding())
            tflite.DepthwiseConv2DOptionsAddStrideW(b, o.StrideW())
            tflite.DepthwiseConv2DOptionsAddStrideH(b, o.StrideH())
            tflite.DepthwiseConv2DOptionsAddDepthMultiplier(b, o.DepthMultiplier())
            tflite.DepthwiseConv2DOptionsAddDilationWFactor(b, o.DilationWFactor())
            tflite.DepthwiseConv2DOptionsAddDilationHFactor(b, o.DilationHFactor())
            tflite.DepthwiseConv2DOptionsAddFusedActivationFunction(b, o.FusedActivationFunction())
            return kind, tflite.DepthwiseConv2DOptionsEnd(b)
        if kind == 5:
            tflite.Pool2DOptionsStart(b)
            tflite.Pool2DOptionsAddPadding(b, o.Padding())
            tflite.Pool2DOptionsAddStrideW(b, o.StrideW())
            tflite.Pool2DOptionsAddStrideH(b, o.StrideH())
            tflite.Pool2DOptionsAddFilterWidth(b, o.FilterWidth())
            tflite.Pool2DOptionsAddFilterHeight(b, o.FilterHeight())
            tflite.Pool2DOptionsAddFusedActivationFunction(b, o.FusedActivationFunction())
            return kind, tflite.Pool2DOptionsEnd(b)
        if kind == 9:
            tflite.SoftmaxOptionsStart(b)
            tflite.SoftmaxOptionsAddBeta(b, o.Beta())
            return kind, tflite.SoftmaxOptionsEnd(b)
        tflite.AddOptionsStart(b)
        tflite.AddOptionsAddFusedActivationFunction(b, o.FusedActivationFunction())
        return kind, tflite.AddOptionsEnd(b)

    operators = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        kind, opts = options(op)
        inputs, outputs = ints(op.InputsAsNumpy()), ints(op.OutputsAsNumpy())
        tflite.OperatorStart(b)
        tflite.OperatorAddOpcodeIndex(b, op.OpcodeIndex())
        tflite.OperatorAddInputs(b, inputs)
        tflite.OperatorAddOutputs(b, outputs)
        if kind:
            tflite.OperatorAddBuiltinOptionsType(b, kind)
            tflite.OperatorAddBuiltinOptions(b, opts)
        operators.append(tflite.OperatorEnd(b))
    codes = []
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        tflite.OperatorCodeStart(b)
        tflite.OperatorCodeAddDeprecatedBuiltinCode(b, code.DeprecatedBuiltinCode())
        tflite.OperatorCodeAddBuiltinCode(b, code.BuiltinCode())
        tflite.OperatorCodeAddVersion(b, 1)
        codes.append(tflite.OperatorCodeEnd(b))

    tensor_vec = offsets(tflite.SubGraphStartTensorsVector, tensors)
    operator_vec = offsets(tflite.SubGraphStartOperatorsVector, operators)
    inputs, outputs = ints(graph.InputsAsNumpy()), ints(graph.OutputsAsNumpy())
    tflite.SubGraphStart(b)
    tflite.SubGraphAddTensors(b, tensor_vec)
    tflite.SubGraphAddInputs(b, inputs)
    tflite.SubGraphAddOutputs(b, outputs)
    tflite.SubGraphAddOperators(b, operator_vec)
    subgraph = tflite.SubGraphEnd(b)
    subgraphs = offsets(tflite.ModelStartSubgraphsVector, [subgraph])
    code_vec = offsets(tflite.ModelStartOperatorCodesVector, codes)
    buffer_vec = offsets(tflite.ModelStartBuffersVector, buffers)
    description = b.CreateString("float32 copy written by the mobilenet tests")
    tflite.ModelStart(b)
    tflite.ModelAddVersion(b, 3)
    tflite.ModelAddOperatorCodes(b, code_vec)
    tflite.ModelAddSubgraphs(b, subgraphs)
    tflite.ModelAddDescription(b, description)
    tflite.ModelAddBuffers(b, buffer_vec)
    b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
    target.write_bytes(bytes(b.Output()))


@pytest.mark.parametrize("key", list(FILES))
def test_float_file_reads_and_matches_the_runtime(key, tmp_path, tflite_file):
    """A float32 file (no quantization anywhere) reads, ports, and computes what
    the runtime computes on it."""
    interpreter_mod = litert()
    path = tmp_path / FILES[key].replace("_quant", "_float")
    write_float_copy(tflite_file(key), path)
    model, info = load_tflite(path)
    graph = info["graph"]
    assert not info["quantized"] and graph.input.dtype == "float32" and graph.input.scale is None
    assert info["mean"] == (0.5,) * 3 and info["std"] == (0.5,) * 3  # float files: TF-slim's [-1, 1]
    quantized = read_tflite(tflite_file(key))
    assert info["model_name"] == quantized.model_name and graph.ops == quantized.ops
    for ours, theirs in zip(graph.weighted, quantized.weighted):
        np.testing.assert_array_equal(ours.weight, theirs.weight)
        np.testing.assert_array_equal(ours.bias, theirs.bias)

    x = torch.rand(3, 3, info["resolution"], info["resolution"]) * 2 - 1
    interpreter = interpreter_mod.Interpreter(str(path))
    interpreter.allocate_tensors()
    index = interpreter.get_input_details()[0]["index"]
    output = interpreter.get_output_details()[0]["index"]
    expected = []
    for image in x.permute(0, 2, 3, 1).numpy():
        interpreter.set_tensor(index, image[None])
        interpreter.invoke()
        expected.append(interpreter.get_tensor(output)[0])
    with torch.inference_mode():
        probabilities = torch.softmax(model(x), dim=1).numpy()
    np.testing.assert_allclose(probabilities, np.stack(expected), atol=2e-5)
    assert (probabilities.argmax(1) == np.stack(expected).argmax(1)).all()


# --------------------------------------------------------------------------- the port


@pytest.mark.parametrize("key", list(FILES))
def test_port_equals_the_records(key, ported):
    """Our model with the copied weights computes what the file's own operators
    compute in float (run_float executes the records, not our classes)."""
    model, info = ported[key]
    graph = info["graph"]
    x = torch.rand(2, 3, info["resolution"], info["resolution"]) * 2 - 1
    with torch.inference_mode():
        ours = torch.softmax(model(x), dim=1)
        reference = run_float(graph, x)
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-4)


def test_port_info_and_state(ported):
    model, info = ported["v1"]
    assert info["model_name"] == "mobilenet_v1_025" and info["version"] == "v1" and info["width"] == 0.25
    assert info["resolution"] == 128 and info["num_classes"] == 1001 and info["quantized"]
    assert info["crop_pct"] == 0.875 and info["interpolation"] == "bilinear"
    assert info["mean"] == (128 / 255,) * 3 and info["std"] == (128 / 255,) * 3
    assert info["preprocess"].crop_mode == "crop_resize"
    labels = info["labels"]
    assert labels is not None and len(labels) == 1001 and labels[0] == "background"
    assert model.pretrained_cfg["labels"] == labels
    assert model.classifier.out_features == 1001 and not model.training
    state = model.state_dict()
    assert set(k for k in state if k.startswith("stem.")) >= {"stem.conv.weight", "stem.bn.running_var"}
    bn = model.blocks[0].pw.bn
    assert torch.all(bn.weight == 1) and torch.all(bn.running_mean == 0)
    torch.testing.assert_close(bn.running_var + bn.eps, torch.ones_like(bn.running_var))
    v2, v2_info = ported["v2"]
    assert v2_info["model_name"] == "mobilenet_v2_100" and v2_info["resolution"] == 224
    assert type(v2.blocks[0].expand).__name__ == "Identity"  # t=1: no expansion conv


def test_port_reads_labels_beside_the_file_only(tmp_path, tflite_file):
    copy = tmp_path / V1
    copy.write_bytes(tflite_file("v1").read_bytes())
    _, info = load_tflite(copy)
    assert info["labels"] is None and info["model_name"] == "mobilenet_v1_025"


# --------------------------------------------------------------------------- against the runtime


def top1(logits: np.ndarray) -> np.ndarray:
    return logits.argmax(1)


def agreement(ours: np.ndarray, runtime: np.ndarray) -> float:
    """Our top-1 is the runtime's top-1, or ties with it in its uint8 logits."""
    return float((runtime[np.arange(len(ours)), top1(ours)] == runtime.max(1)).mean())


# V2 at 224 costs about a minute per pass over the 1000 images on a 2-core CPU:
# the default suite checks it on one class in ten, the slow suite on all.
CASES = [
    pytest.param("v1", "all", id="v1-all"),
    pytest.param("v2", "tenth", id="v2-tenth"),
    pytest.param("v2", "all", id="v2-all", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("key, subset", CASES)
def test_port_accuracy_and_agreement_on_imagenet_sample(key, subset, evaluate):
    r = evaluate(key, subset)
    labels, ours, runtime = r["labels"], r["ours"], r["runtime"]
    accuracy = float((top1(ours) == labels).mean())
    agree = agreement(ours, runtime)
    print(
        f"\n{FILES[key]} on {len(labels)} images: port top-1 {accuracy:.3f}, "
        f"runtime top-1 {float((top1(runtime) == labels).mean()):.3f}, agreement {agree:.3f} "
        f"(strict {float((top1(ours) == top1(runtime)).mean()):.3f}); "
        f"port {r['seconds'][0]:.1f}s, runtime {r['seconds'][1]:.1f}s"
    )
    assert accuracy >= MIN_TOP1[key, subset], f"port top-1 {accuracy:.3f} < {MIN_TOP1[key, subset]}"
    assert agree >= MIN_AGREEMENT[key, subset], f"port agrees with the runtime on {agree:.3f}"


@pytest.mark.parametrize(
    "key, subset",
    [pytest.param("v1", "all", id="v1-all"), pytest.param("v2", "all", id="v2-all", marks=pytest.mark.slow)],
)
def test_symmetric_padding_scores_clearly_lower(key, subset, evaluate):
    """The same weights in a model with PyTorch's symmetric padding: every
    stride-2 convolution looks one pixel off, accuracy drops and the runtime
    no longer agrees."""
    r = evaluate(key, subset, symmetric=True)
    labels = r["labels"]
    same = float((top1(r["ours"]) == labels).mean())
    symmetric = float((top1(r["symmetric"]) == labels).mean())
    same_agree, symmetric_agree = agreement(r["ours"], r["runtime"]), agreement(r["symmetric"], r["runtime"])
    print(
        f"\n{FILES[key]} on {len(labels)} images: top-1 SAME {same:.3f}, symmetric {symmetric:.3f}; "
        f"agreement SAME {same_agree:.3f}, symmetric {symmetric_agree:.3f}"
    )
    assert symmetric < same - SYMMETRIC_DROP[key]
    assert symmetric_agree < same_agree - 0.05
