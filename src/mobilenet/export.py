"""Export to every runtime in :mod:`mobilenet.runtimes`, and prove every file works.

Each export starts from :func:`mobilenet.deploy` (BatchNorm folded), writes to a
temporary name, loads that file back in its own runtime, runs a batch of a different
size than the one traced (so a batch size baked in by mistake fails) and compares
with eager PyTorch (or, for int8, with the unfused int8 graph the runtime's kernels
implement). Only a file that passes is renamed into place: a failed export leaves
nothing behind.

Every file carries our metadata (model, preprocessing, labels, int8 backend), so
:func:`load_artifact` gives ``mobilenet eval`` and ``mobilenet bench`` a callable that
knows how to feed itself. What each runtime does lives in its own module under
:mod:`mobilenet.runtimes`; this module only orchestrates and checks.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import progress, runtimes
from .deploy import deploy
from .runtimes import Artifact, ArtifactModule, Runtime, Written, load_artifact
from .runtimes.common import (
    ARTIFACT_FORMAT,
    METADATA_NAME,
    ExportError,
    QuantizeError,
    artifact_metadata,
    calibration_batches,
    example_batch,
    first_line,
    model_preprocess,
)
from .runtimes.pt2 import save_program

FORMATS = runtimes.formats()
SUFFIXES = {r.name: r.suffix for r in runtimes.all_runtimes()}
# The quantizer each runtime runs best (see each module in mobilenet.runtimes).
INT8_BACKEND = {r.name: r.int8_backend for r in runtimes.all_runtimes()}
FP32_TOLERANCE = 1e-4  # x the largest |logit| of the eager model
# int8 runtimes round requantization differently from the reference graph, and in a
# deep, narrow net (V1-0.25) one-step differences compound: the runtime may differ from
# the reference by 0.1 x the logit scale, or by as much as the reference itself differs
# from fp32, whichever is larger. A broken lowering is far off both.
INT8_TOLERANCE = 0.1
# bf16 keeps 8 bits of mantissa: about 0.4% per rounding, compounding over the depth; a
# bf16 file is checked against the eager model in bf16, with the int8 rule's slack.
BF16_TOLERANCE = 0.1
DEFAULT_MAX_BATCH = 128  # ExecuTorch plans memory for the largest batch it accepts

__all__ = [
    "ARTIFACT_FORMAT",
    "FORMATS",
    "METADATA_NAME",
    "Artifact",
    "ArtifactModule",
    "ExportError",
    "ExportReport",
    "artifact_metadata",
    "check_request",
    "detect_format",
    "export_model",
    "load_artifact",
    "save_program",
]


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
    precision: str = "fp32"  # what the runtime computed in when checked (int8 files: their float parts)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def detect_format(path: Path) -> str:
    """Which runtime a file is for, from its content (names can lie)."""
    return runtimes.detect(Path(path)).name


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
    precision: str = "fp32",
) -> ExportReport:
    """Write ``model`` as ``format`` to ``path`` and check the written file.

    ``example`` is the batch the check runs (real images are best; default: random at
    the model's resolution). ``int8`` quantizes with the quantizer each runtime runs
    best, calibrated on ``calib`` (a folder of images or a list of batches).
    ``precision`` (``"bf16"`` where the runtime and CPU have it) is what the file is
    compiled for when loaded. Raises :class:`ExportError` on a bad request or a failed
    check; ``path`` is then untouched.
    """
    runtime = check_request(format, int8=int8, max_batch=max_batch, precision=precision)
    if not isinstance(model, nn.Module):
        raise ExportError(f"expected an nn.Module, got {type(model).__name__}")
    if getattr(model, "features_only", False):
        raise ExportError("features_only=True models return feature maps, not logits; export the classifier "
                          "model (features_only=False)")
    if int8 and calib is None:
        raise ExportError("int8 needs calibration images: pass calib (a folder of images, --calib DIR)")
    path = Path(path)
    if runtime.suffix_required and path.suffix.lower() not in (runtime.suffix, *runtime.aliases):
        raise ExportError(f"{path}: a {format} file is named NAME{runtime.suffix} (its companions are named after "
                          f"it); give a path ending in {runtime.suffix}")
    runtime.check_path(path)
    runtime.check_installed()
    pre = model_preprocess(model)
    resolution = resolution or (example.shape[-1] if example is not None else pre.resolution)
    fp32 = deploy(model)
    trace_input = example_batch(model, resolution)
    verify = example if example is not None else example_batch(model, resolution, batch=3)
    backend = runtime.int8_backend if int8 else None
    start = time.perf_counter()
    try:  # calibration images at the resolution the file is exported for
        batches = calibration_batches(calib, replace(pre, resolution=resolution), limit=calib_limit) if int8 else None
    except QuantizeError as exc:
        raise ExportError(str(exc)) from None
    meta = artifact_metadata(model, fmt=format, int8=int8, backend=backend, resolution=resolution,
                             max_batch=max_batch, precision=precision)
    name = getattr(model, "model_name", None) or type(model).__name__
    progress.step(f"writing the {format}{' int8' if int8 else ''} file")
    with runtime.staging(path) as tmp:
        try:
            written = runtime.write(fp32, tmp, example=trace_input, meta=meta, calib=batches, precision=precision)
        except (ExportError, QuantizeError) as exc:
            raise ExportError(str(exc)) from None
        except Exception as exc:
            raise ExportError(f"{format} export of {name} failed: {first_line(exc)}") from exc
        export_s = time.perf_counter() - start
        progress.step(f"checking the file in its runtime against eager PyTorch on {len(verify)} images")
        report = _verify(tmp, runtime, fp32, written, verify, int8=int8, backend=backend)
        report.path, report.export_s, report.model = str(path), export_s, getattr(model, "model_name", None)
        report.resolution = resolution
        if not report.passed:
            raise ExportError(
                f"{format} file failed its check: max |diff| {report.max_abs_diff:.3g} from {report.reference} "
                f"exceeds {report.tolerance:.3g}; nothing was written to {path}")
    return report


def check_request(format: str, *, int8: bool = False, max_batch: int = DEFAULT_MAX_BATCH,
                  precision: str = "fp32") -> Runtime:
    """Reject a format/option combination before any work starts; the runtime otherwise."""
    if format not in runtimes.formats():
        raise ExportError(f"unknown format {format!r}; expected one of {', '.join(runtimes.formats())}")
    runtime = runtimes.get(format)
    reason = runtime.unsupported(int8=int8, precision=precision)
    if reason:
        raise ExportError(reason)
    if int8 and precision != "fp32":
        raise ExportError(f"--int8 and --precision {precision} are exclusive (an int8 file runs its float parts in f32)")
    if not isinstance(max_batch, int) or isinstance(max_batch, bool) or max_batch < 4:
        raise ExportError(f"max_batch must be an integer >= 4, got {max_batch!r}")
    return runtime


@torch.no_grad()
def _verify(path: Path, runtime: Runtime, fp32: nn.Module, written: Written, batch: torch.Tensor, *,
            int8: bool, backend: str | None) -> ExportReport:
    start = time.perf_counter()
    artifact = load_artifact(path)
    got = artifact(batch)  # warm-up, and the output we check
    t0 = time.perf_counter()
    artifact(batch)
    runtime_ms = (time.perf_counter() - t0) * 1e3
    verify_s = time.perf_counter() - start
    want_fp32 = fp32(batch)
    reference: Callable[[torch.Tensor], torch.Tensor] | None = written.reference
    reference_name = written.reference_name
    if reference is None and artifact.precision == "bf16":
        reference, reference_name = _bf16_eager(fp32), "bf16 eager (PyTorch, every op rounded to bf16)"
    want = reference(batch) if reference is not None else want_fp32
    scale = float(want.abs().max())
    relative = INT8_TOLERANCE if int8 else BF16_TOLERANCE if artifact.precision == "bf16" else FP32_TOLERANCE
    tolerance = relative * max(scale, 1e-12)
    if reference is not None and want.shape == want_fp32.shape:
        tolerance = max(tolerance, float((want - want_fp32).abs().max()))
    diff = float((got - want).abs().max()) if got.shape == want.shape else float("inf")
    notes = list(written.notes)
    if "batch_capacity" in artifact.metadata:
        notes.append(f"ExecuTorch input buffer holds {artifact.metadata['batch_capacity']} images; larger batches "
                     "run in chunks")
    same = got.shape == want_fp32.shape
    return ExportReport(
        format=runtime.name, path=str(path), bytes=sum(p.stat().st_size for p in runtime_files(runtime, path)),
        int8=int8, backend=backend, model=None, resolution=batch.shape[-1], verify_batch=len(batch),
        reference=reference_name if reference is not None else "fp32 eager",
        max_abs_diff=diff, logit_scale=scale, tolerance=tolerance,
        max_abs_diff_fp32=float((got - want_fp32).abs().max()) if same else float("inf"),
        top1_agree_fp32=float((got.argmax(1) == want_fp32.argmax(1)).float().mean()) if same else 0.0,
        export_s=0.0, verify_s=verify_s, runtime_ms=runtime_ms, passed=diff <= tolerance, notes=notes,
        precision=artifact.precision,
    )


def _bf16_eager(fp32: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """The model in bf16, every op's output rounded: a bf16 runtime (which accumulates
    in f32) should be at least this close to fp32."""
    import copy

    model = copy.deepcopy(fp32).to(torch.bfloat16)
    return lambda x: model(x.to(torch.bfloat16)).float()


def runtime_files(runtime: Runtime, path: Path) -> list[Path]:
    """The file and its companions (an OpenVINO .xml has its .bin)."""
    return [path, *runtime.companions(path)]
