"""OpenVINO IR (``.xml`` graph + ``.bin`` weights), run by OpenVINO's CPU plugin.

int8 comes from NNCF post-training quantization of the IR (FakeQuantize on
activations, int8 weights), which the CPU plugin runs as oneDNN int8 kernels,
V3's hard-swish included: on x86 with VNNI the fastest int8 route measured here
(docs/deployment.md). Two things to know:

* On a CPU with native bf16 the CPU plugin runs an fp32 model in bf16 unless told
  otherwise, so every load names its precision: ``f32`` for fp32 files (that is what
  fp32 means here), ``bf16`` only for a file exported with ``precision="bf16"`` (or
  when the caller asks), and only where the CPU has bf16 instructions.
* Our metadata rides in the IR's ``rt_info`` (``<rt_info><mobilenet value=.../>``);
  the ``.bin`` beside the ``.xml`` is written with it, both or neither.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..files import _fsync_dir
from .base import Loaded, Run, Runtime, Written
from .common import METADATA_NAME, ExportError

OV_PRECISION = {"fp32": "f32", "bf16": "bf16"}


@dataclass(frozen=True)
class NNCFOptions:
    """How NNCF quantizes. The defaults are the measured best on the TFLite V2 and
    the CIFAR V3-Small (docs/deployment.md, "OpenVINO int8: NNCF options")."""

    preset: str = "performance"  # "performance": symmetric activations; "mixed": asymmetric where signed
    fast_bias_correction: bool = True  # False: NNCF's full bias correction (slower to quantize)
    ignore_se: bool = False  # keep squeeze-excite convs in float
    ignore_classifier: bool = False  # keep the last linear layer in float
    batch_images: int = 1  # images per calibration call (NNCF computes statistics per call)

    def __post_init__(self) -> None:
        if self.preset not in ("performance", "mixed"):
            raise ValueError(f"preset must be 'performance' or 'mixed', got {self.preset!r}")


DEFAULT_NNCF = NNCFOptions()


class OpenVINORuntime(Runtime):
    name = "openvino"
    engine = "openvino"
    suffix = ".xml"
    suffix_required = True
    extra = "openvino"
    requires = ("openvino", "nncf")
    order = 40
    int8_backend = "nncf"
    precisions = ("fp32", "bf16")
    layout = "NCHW in (oneDNN blocked layout inside)"
    plain_exporter = "openvino.convert_model"
    description = "OpenVINO IR (.xml)"

    nncf_options = DEFAULT_NNCF

    def native_precisions(self) -> tuple[str, ...]:
        return _cpu_precisions()

    def check_path(self, path: Path) -> None:
        if path.suffix.lower() == ".bin":
            raise ExportError(f"{path}: an OpenVINO IR's graph is the .xml file (its weights go to the .bin beside "
                              "it); name the output *.xml")

    def companions(self, path: Path) -> list[Path]:
        return [path.with_suffix(".bin")]

    def detect(self, path: Path, head: bytes) -> bool:
        return head.lstrip().startswith(b"<?xml") and b"<net " in head

    @contextlib.contextmanager
    def staging(self, path: Path) -> Iterator[Path]:
        """Both files are written and checked in a temporary folder beside ``path``,
        then renamed into place (.bin first, then the .xml that names the model)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        try:
            staged = folder / f"{path.stem}.xml"  # OpenVINO writes only *.xml; the name it gets is the user's
            yield staged
            for src, dst in ((staged.with_suffix(".bin"), path.with_suffix(".bin")), (staged, path)):
                with open(src, "rb") as f:
                    os.fsync(f.fileno())
                os.chmod(src, 0o644)
                os.replace(src, dst)
            _fsync_dir(path.parent)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def write(self, model: nn.Module, path: Path, *, example: torch.Tensor, meta: dict[str, Any],
              calib: list[torch.Tensor] | None = None, precision: str = "fp32") -> Written:
        import openvino as ov

        ov_model = _convert(model, example)
        written = Written()
        if calib is not None:
            ov_model, notes = quantize(ov_model, calib, self.nncf_options)
            written = Written(_fakequantize_reference(ov_model),
                              "int8 FakeQuantize graph, decomposed to f32 arithmetic (OpenVINO)", notes)
        ov_model.set_rt_info(json.dumps(meta), [METADATA_NAME])
        ov.save_model(ov_model, str(path), compress_to_fp16=False)
        return written

    def load(self, path: Path, *, threads: int | None = None, precision: str | None = None,
             compile: bool = False) -> Loaded:
        import openvino as ov

        core = ov.Core()
        ov_model = core.read_model(str(path), str(path.with_suffix(".bin")))
        meta = json.loads(ov_model.get_rt_info([METADATA_NAME]).astype(str)) if ov_model.has_rt_info(
            [METADATA_NAME]) else {}
        precision = precision or meta.get("precision") or "fp32"
        if precision not in self.precisions:
            raise ExportError(f"{path}: OpenVINO runs fp32 or bf16, not {precision}")
        if precision not in self.native_precisions():
            raise ExportError(f"{path}: this CPU has no native {precision} instructions (OpenVINO would emulate it); "
                              "load it with precision='fp32'")
        run, ran = _compiled(core, ov_model, precision, threads)
        return Loaded(run, meta, ran)

    def write_plain(self, model: nn.Module, example: torch.Tensor, path: Path) -> None:
        import openvino as ov

        ov.save_model(_convert(model, example), str(path), compress_to_fp16=False)


def _convert(model: nn.Module, example: torch.Tensor) -> Any:
    """The torch model as an OpenVINO model with a dynamic batch. Through TorchScript
    tracing rather than torch.export: 3x faster here, and the node names keep the
    module names (``__module.blocks.0.se.fc1/...``) that ignored scopes match."""
    import warnings

    import openvino as ov

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.trace is deprecated in favour of torch.export
        return ov.convert_model(model, example_input=example, input=[(-1, *example.shape[1:])])


@functools.cache
def _cpu_precisions() -> tuple[str, ...]:
    """fp32, and bf16 where the CPU plugin reports native bf16 (AVX512-BF16 or AMX)."""
    import openvino as ov

    caps = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    return ("fp32", "bf16") if "BF16" in caps else ("fp32",)


def _compiled(core: Any, ov_model: Any, precision: str, threads: int | None) -> tuple[Run, str]:
    # No CPU pinning: OpenVINO pins its threads to cores by default, and on a machine other
    # jobs share, a pinned thread waits for its busy core. Measured interleaved at load
    # average 17 on 2 cores, V3-Small batch 1, 2 threads: 55.8 ms pinned, 3.4 ms not.
    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": OV_PRECISION[precision], "PERFORMANCE_HINT": "LATENCY",
                              "NUM_STREAMS": 1, "ENABLE_CPU_PINNING": False}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    compiled = core.compile_model(ov_model, "CPU", config)
    hint = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()  # what the plugin settled on
    ran = {"f32": "fp32", "bf16": "bf16"}.get(hint, hint)
    request = compiled.create_infer_request()

    def run(x: torch.Tensor) -> torch.Tensor:
        out = request.infer({0: np.ascontiguousarray(x.detach().float().numpy())}, share_inputs=True)
        return torch.from_numpy(np.array(out[0]))

    return run, ran


def quantize(ov_model: Any, batches: list[torch.Tensor], options: NNCFOptions = DEFAULT_NNCF) -> tuple[Any, list[str]]:
    """NNCF post-training int8 of an OpenVINO model, calibrated on ``batches``."""
    import nncf

    images = torch.cat(batches)
    step = max(1, options.batch_images)
    items = [np.ascontiguousarray(images[i : i + step].float().numpy()) for i in range(0, len(images), step)]
    patterns = []
    if options.ignore_se:
        patterns.append(r".*\.se\..*")
    if options.ignore_classifier:
        patterns.append(r".*classifier.*")
    ignored = nncf.IgnoredScope(patterns=patterns, validate=False) if patterns else None
    preset = nncf.QuantizationPreset.MIXED if options.preset == "mixed" else nncf.QuantizationPreset.PERFORMANCE
    with _quiet_nncf():
        quantized = nncf.quantize(ov_model, nncf.Dataset(items), preset=preset, subset_size=len(items),
                                  fast_bias_correction=options.fast_bias_correction, ignored_scope=ignored)
    notes = [f"NNCF post-training int8 ({options.preset} preset, "
             f"{'fast ' if options.fast_bias_correction else ''}bias correction"
             + (", squeeze-excite in float" if options.ignore_se else "")
             + (", classifier in float" if options.ignore_classifier else "")
             + f") calibrated on {len(images)} images"]
    return quantized, notes


@contextlib.contextmanager
def _quiet_nncf() -> Iterator[None]:
    """NNCF logs its progress bars and statistics to stdout/stderr: a report or a
    benchmark table is not interleaved with them."""
    import io
    import logging

    logger = logging.getLogger("nncf")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


def _fakequantize_reference(ov_model: Any) -> Run:
    """The int8 model with every FakeQuantize written out as the f32 arithmetic its
    specification defines (clamp, scale, round, rescale), compiled in f32: the
    textbook meaning of the file, against which the CPU plugin's int8 kernels are
    checked (as ONNX files are checked against their unfused QDQ graph)."""
    import openvino as ov
    import openvino.opset13 as ops

    model = ov_model.clone()
    for node in model.get_ordered_ops():
        if node.get_type_name() != "FakeQuantize":
            continue
        x, low, high, out_low, out_high = (node.input_value(i) for i in range(5))
        steps = ops.constant(np.float32(node.get_attributes()["levels"] - 1))
        clamped = ops.minimum(ops.maximum(x, low), high)
        unit = ops.divide(ops.subtract(clamped, low), ops.subtract(high, low))
        level = ops.round(ops.multiply(unit, steps), "half_to_even")
        value = ops.add(ops.multiply(ops.divide(level, steps), ops.subtract(out_high, out_low)), out_low)
        for target in list(node.output(0).get_target_inputs()):
            target.replace_source_output(value.output(0))
    model.validate_nodes_and_infer_types()
    run, _ = _compiled(ov.Core(), model, "fp32", None)
    return run


RUNTIME = OpenVINORuntime()
