"""int8 through torchao's PT2E flow: export the graph, let a backend's quantizer
annotate it, calibrate (or train, for QAT), convert.

Why PT2E and not eager ``torch.ao`` quantization: the eager path needs QuantStub/
DeQuantStub and fused-module surgery per architecture, and is known to load V3 (hard-
swish, hard-sigmoid, squeeze-excite multiplies) at chance accuracy. PT2E quantizes the
exported graph itself, so V1, V2, V3-Large and V3-Small go through one code path.

Backends: ``"x86"`` (torchao's X86InductorQuantizer: uint8 activations, int8
per-channel weights; runs fast once ``torch.compile`` lowers it to oneDNN) and
``"xnnpack"`` (ExecuTorch's XNNPACKQuantizer, int8 per-channel, for ``.pte`` files).
The converted graph holds int8 weights and quantize/dequantize pairs; it is only fast
once lowered (Inductor or ExecuTorch XNNPACK), see :mod:`mobilenet.runtimes`. int8 ONNX
and OpenVINO files come from those runtimes' own quantizers instead (:mod:`mobilenet.runtimes`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import torch
from torch import nn

from .deploy import deploy
from .images import Preprocess
from .runtimes.common import (  # noqa: F401  (part of this module's API since before the runtimes layer)
    DEFAULT_CALIB_IMAGES,
    QuantizeError,
    batch_dim,
    calibration_batches,
    example_batch,
    model_preprocess,
)

BACKENDS = ("x86", "xnnpack")


def quantizer(backend: str, *, qat: bool = False):
    """The PT2E quantizer for ``backend``: int8 per-channel weights, int8/uint8
    per-tensor activations."""
    if backend == "x86":
        from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
            X86InductorQuantizer,
            get_default_x86_inductor_quantization_config,
        )

        return X86InductorQuantizer().set_global(get_default_x86_inductor_quantization_config(is_qat=qat))
    if backend == "xnnpack":
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import get_symmetric_quantization_config

        config = get_symmetric_quantization_config(is_per_channel=True, is_qat=qat)
        return _xnnpack_quantizer(config)
    raise QuantizeError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")


def _xnnpack_quantizer(config):
    """ExecuTorch's XNNPACKQuantizer, plus conv -> ReLU6 as one quantized unit.

    The stock quantizer fuses conv + ReLU but not conv + hardtanh (ReLU6): it puts the
    activation observer on the conv output, before the clamp, and ReLU6 shares it. Every
    V1/V2 activation is then quantized over the unclamped range (up to ~30 where 6 is
    all that survives). Annotating conv + hardtanh like conv + ReLU observes the
    clamped output; XNNPACK fuses the clamp into its int8 conv either way.
    """
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import XNNPACKQuantizer

    class ClampFusingXNNPACKQuantizer(XNNPACKQuantizer):
        def annotate(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
            _annotate_conv_clamp(model, config)
            return super().annotate(model)

    return ClampFusingXNNPACKQuantizer().set_global(config)


def _annotate_conv_clamp(gm: torch.fx.GraphModule, config) -> None:
    """Mark every conv whose only user is a hardtanh (ReLU6) as one partition: int8
    input, weight and bias on the conv, the output observer after the clamp."""
    from torchao.quantization.pt2e.quantizer import (
        QuantizationAnnotation,
        get_bias_qspec,
        get_input_act_qspec,
        get_output_act_qspec,
        get_weight_qspec,
    )
    from torchao.quantization.pt2e.quantizer.quantizer import Q_ANNOTATION_KEY

    clamps = (torch.ops.aten.hardtanh.default,)
    convs = (torch.ops.aten.conv2d.default,)
    for clamp in gm.graph.nodes:
        conv = clamp.args[0] if clamp.op == "call_function" and clamp.target in clamps else None
        if conv is None or not isinstance(conv, torch.fx.Node) or conv.target not in convs or len(conv.users) != 1:
            continue
        if Q_ANNOTATION_KEY in conv.meta or Q_ANNOTATION_KEY in clamp.meta:
            continue
        inputs = {conv.args[0]: get_input_act_qspec(config), conv.args[1]: get_weight_qspec(config)}
        if len(conv.args) > 2 and isinstance(conv.args[2], torch.fx.Node):
            inputs[conv.args[2]] = get_bias_qspec(config)
        conv.meta[Q_ANNOTATION_KEY] = QuantizationAnnotation(input_qspec_map=inputs, _annotated=True)
        clamp.meta[Q_ANNOTATION_KEY] = QuantizationAnnotation(output_qspec=get_output_act_qspec(config),
                                                              _annotated=True)


def _exported_module(model: nn.Module, example: torch.Tensor) -> torch.fx.GraphModule:
    try:
        return torch.export.export(model, (example,), dynamic_shapes=(batch_dim(),)).module()
    except Exception as exc:  # torch.export raises many types; name the model and the cause
        raise QuantizeError(f"torch.export failed for {type(model).__name__}: {str(exc).splitlines()[0]}") from exc


def _drop_unused_attributes(gm: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """convert_pt2e leaves the float weights on the module beside their int8 copies;
    drop every attribute the graph no longer reads so saved files hold int8 only."""
    gm.graph.eliminate_dead_code()
    used = {node.target for node in gm.graph.nodes if node.op == "get_attr"}
    for name, _ in list(gm.named_parameters()) + list(gm.named_buffers()):
        if name not in used:
            owner, _, leaf = name.rpartition(".")
            delattr(gm.get_submodule(owner) if owner else gm, leaf)
    gm.delete_all_unused_submodules()
    gm.recompile()
    return gm


@torch.no_grad()
def quantize_ptq(
    model: nn.Module,
    calib: str | os.PathLike | Iterable[torch.Tensor],
    *,
    backend: str = "x86",
    limit: int = DEFAULT_CALIB_IMAGES,
) -> torch.fx.GraphModule:
    """Post-training int8: BatchNorm folded (:func:`mobilenet.deploy`), graph
    exported with a dynamic batch, annotated by ``backend``'s quantizer, observed on
    the calibration images, converted. Returns the converted graph module (int8
    weights, q/dq activations), callable on a batch."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    check_quantizable(model)
    q = quantizer(backend)
    batches = calibration_batches(calib, model_preprocess(model), limit=limit)
    fused = deploy(model)
    example = example_batch(model, batches[0].shape[-1])
    from . import progress

    progress.step(f"exporting the graph and preparing it for {backend} int8")
    prepared = prepare_pt2e(_exported_module(fused, example), q)
    progress.step(f"calibrating on {sum(len(b) for b in batches)} images")
    advance = progress.counter(sum(len(b) for b in batches), "calibrated images")
    for batch in batches:
        prepared(batch)
        advance(len(batch))
    progress.step("converting to int8")
    converted = _drop_unused_attributes(convert_pt2e(prepared))
    converted.quant_backend = backend
    _carry_model_attributes(model, converted)
    _allow_train_eval(converted)
    return converted


def _allow_train_eval(graph: torch.fx.GraphModule) -> None:
    """``.eval()`` on an exported graph raises unless allowed; code written for models
    (``evaluate``, ``mobilenet eval``) calls it, and the int8 graph has nothing to switch."""
    from torchao.quantization.pt2e import allow_exported_model_train_eval

    allow_exported_model_train_eval(graph)


MODEL_ATTRIBUTES = ("arch", "arch_args", "model_name", "pretrained_cfg", "num_classes")


def _carry_model_attributes(source: nn.Module, graph: torch.fx.GraphModule) -> None:
    """What our code reads off a model (classes, preprocessing, labels, architecture),
    kept on the graph module that replaces it, so ``evaluate`` and ``save_program``
    treat the int8 graph as the model it came from."""
    if not hasattr(source, "arch") and hasattr(source, "arch_args"):
        graph.arch = type(source).__name__
    for attr in MODEL_ATTRIBUTES:
        if hasattr(source, attr) and not isinstance(getattr(source, attr), nn.Module):
            setattr(graph, attr, getattr(source, attr))


def check_quantizable(model: nn.Module) -> None:
    if not isinstance(model, nn.Module):
        raise QuantizeError(f"expected an nn.Module, got {type(model).__name__}")
    if getattr(model, "features_only", False):
        raise QuantizeError("a features_only model returns feature maps, not logits: quantize the classifier model")


def prepare_qat(model: nn.Module, *, backend: str = "x86", example: torch.Tensor | None = None) -> torch.fx.GraphModule:
    """Quantization-aware training: the model's graph with fake-quantize on weights
    and activations, trainable with the usual loop (``.train()``/``.eval()`` work).
    BatchNorm stays in the graph while training (PT2E folds it into the fake-quantized
    conv); :func:`convert` gives the int8 graph afterwards."""
    from torchao.quantization.pt2e import allow_exported_model_train_eval
    from torchao.quantization.pt2e.quantize_pt2e import prepare_qat_pt2e

    check_quantizable(model)
    example = example if example is not None else example_batch(model)
    was_training = model.training
    model.train()
    try:
        gm = _exported_module(model, example)
    finally:
        model.train(was_training)
    prepared = prepare_qat_pt2e(gm, quantizer(backend, qat=True))
    allow_exported_model_train_eval(prepared)
    prepared.quant_backend = backend
    _carry_model_attributes(model, prepared)
    return prepared


def convert(prepared: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """The int8 graph of a QAT-prepared model (observers frozen, eval mode)."""
    from torchao.quantization.pt2e import move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    backend = getattr(prepared, "quant_backend", "x86")
    meta = {a: getattr(prepared, a) for a in MODEL_ATTRIBUTES if hasattr(prepared, a)}
    move_exported_model_to_eval(prepared)
    converted = _drop_unused_attributes(convert_pt2e(prepared))
    converted.quant_backend = backend
    for attr, value in meta.items():
        setattr(converted, attr, value)
    _allow_train_eval(converted)
    return converted


def register_quantized_ops() -> None:
    """Loading a saved int8 program needs the ``quantized_decomposed`` ops registered."""
    import torchao.quantization.pt2e  # noqa: F401


def save_qat(prepared: nn.Module, path: str | os.PathLike, *, preprocess: Preprocess, labels: list[str] | None = None):
    """The end of ``mobilenet train --qat``: convert a copy of the trained QAT graph
    to int8 and write it as a ``.pt2`` that :func:`mobilenet.runtimes.load_artifact` reads."""
    import copy

    from .runtimes.pt2 import save_program

    int8 = convert(copy.deepcopy(prepared))
    int8.pretrained_cfg = {"preprocess": preprocess.to_dict(), "labels": labels}
    example = torch.randn(2, 3, preprocess.resolution, preprocess.resolution)
    return save_program(int8, path, example=example)
