"""The few verbs every runtime has: say what it supports, write a file, load a file.

A runtime is one module in this package holding ``RUNTIME = SomeRuntime()``; the
registry (:mod:`mobilenet.runtimes`) finds it, and export, eval, predict, quantize and
bench reach it only through this interface. Heavy imports (onnxruntime, executorch,
openvino) happen inside the methods, so a missing optional dependency costs nothing
until that runtime is asked for, and then is one line naming the extra.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..files import atomic_path
from ..images import Preprocess
from .common import MissingExtra

Run = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class Written:
    """What :meth:`Runtime.write` made: the graph the file must reproduce (``None``:
    the fp32 model) and notes for the report."""

    reference: Run | None = None
    reference_name: str = "fp32 eager"
    notes: list[str] = field(default_factory=list)


@dataclass
class Loaded:
    """A file loaded in its runtime: ``run`` maps a float NCHW batch to logits."""

    run: Run
    metadata: dict[str, Any]
    precision: str = "fp32"  # what the runtime computes in (int8 files: their float parts)


class Runtime:
    """One runtime. Subclasses set the class attributes and implement
    :meth:`write` and :meth:`load` (and :meth:`write_plain` to benchmark peers)."""

    name: str  # the format name: `mobilenet export --format NAME`
    engine: str  # the runtime name: `mobilenet bench --runtime ENGINE`
    suffix: str  # the usual file suffix
    aliases: tuple[str, ...] = ()  # other suffixes its files go by
    suffix_required: bool = False  # its writer names companion files after the suffix (OpenVINO's .xml + .bin)
    extra: str | None = None  # pip extra that installs `requires`
    requires: tuple[str, ...] = ()  # Python modules it needs
    write_requires: tuple[str, ...] = ()  # and those only writing a file needs (a converter)
    order: int = 100  # where it is listed
    exportable: bool = True  # `mobilenet export --format` writes it
    benchable: bool = True  # `mobilenet bench --runtime` runs it
    int8_backend: str | None = None  # what --int8 uses; None: no int8
    precisions: tuple[str, ...] = ("fp32",)
    layout: str = "NCHW"  # what bench reports as the memory layout
    description: str = ""  # how error messages and help name its files
    plain_exporter: str | None = None  # what write_plain uses, if it exists

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    # -- what it supports ------------------------------------------------------------
    def check_installed(self) -> None:
        """Raise :class:`MissingExtra` naming the extra when a required module is missing."""
        for module in self.requires:
            if importlib.util.find_spec(module.split(".")[0]) is None or (
                    "." in module and importlib.util.find_spec(module) is None):
                raise MissingExtra(self.name, module.split(".")[0], self.extra)

    def installed(self) -> bool:
        try:
            self.check_installed()
        except MissingExtra:
            return False
        return True

    def writable(self) -> bool:
        """Whether this machine can write this runtime's files (runtime and converter installed)."""
        return self.installed() and all(importlib.util.find_spec(m) is not None for m in self.write_requires)

    def unsupported(self, *, int8: bool = False, precision: str = "fp32") -> str | None:
        """Why this runtime cannot honour the request, or ``None`` when it can."""
        if int8 and self.int8_backend is None:
            return f"int8 {self.name} is not supported"
        if precision not in self.precisions:
            return f"{self.name} runs {', '.join(self.precisions)}, not {precision}"
        return None

    def native_precisions(self) -> tuple[str, ...]:
        """The precisions this machine runs natively (reduced precision only where the
        CPU has the instructions)."""
        return ("fp32",)

    def check_path(self, path: Path) -> None:
        """Reject an output name this runtime cannot write (raise ExportError)."""

    # -- files -------------------------------------------------------------------------
    def owns(self, path: Path) -> bool:
        """Whether ``eval``/``predict`` should run ``path`` in this runtime rather than
        read it as weights (by suffix; a runtime whose suffix is shared with files we
        import as weights, such as .tflite, also looks inside)."""
        return path.suffix.lower() in (self.suffix, *self.aliases)

    def detect(self, path: Path, head: bytes) -> bool:
        """Whether ``path`` (its first bytes ``head``) is this runtime's file."""
        raise NotImplementedError

    def companions(self, path: Path) -> list[Path]:
        """Files that belong to ``path`` and travel with it (none for one-file formats)."""
        return []

    @contextlib.contextmanager
    def staging(self, path: Path) -> Iterator[Path]:
        """A temporary name to write and check the file under, renamed to ``path``
        (with any companion files) only when the block succeeds."""
        with atomic_path(path) as tmp:
            yield tmp

    def write(self, model: nn.Module, path: Path, *, example: torch.Tensor, meta: dict[str, Any],
              calib: list[torch.Tensor] | None = None, precision: str = "fp32") -> Written:
        """Write ``model`` (BatchNorm folded) to ``path``: fp32, or int8 calibrated on
        ``calib`` batches. ``example`` is a batch to trace with."""
        raise NotImplementedError

    def load(self, path: Path, *, threads: int | None = None, precision: str | None = None,
             compile: bool = False) -> Loaded:
        """Load ``path`` into a callable with the metadata it carries."""
        raise NotImplementedError

    def write_plain(self, model: nn.Module, example: torch.Tensor, path: Path) -> None:
        """The library's own exporter (``plain_exporter``) with no help from us: the
        peers' models in ``bench``."""
        raise NotImplementedError(f"{self.name} has no plain exporter")


@dataclass
class Artifact:
    """An exported or quantized file loaded in its runtime: call it on a float
    batch [N, C, H, W] to get logits [N, classes] as a torch tensor."""

    path: Path
    format: str  # a runtime's name: "onnx", "executorch", "torchscript", "pt2", "openvino", ...
    metadata: dict[str, Any]
    run: Run
    precision: str = "fp32"  # what the runtime computes in

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
        so code written for our models (``mobilenet eval``) runs it unchanged: a
        detector file takes a list of images and gives their detections, as our detectors."""
        if self.metadata.get("format") == "mobilenet-detector":
            from ..detection.artifact import DetectorFile

            return DetectorFile(self)
        return ArtifactModule(self)


class ArtifactModule(nn.Module):
    """A classifier or segmentation file. A segmentation file written for one image size
    (all but ONNX's, ``dynamic_size``) gets each batch resized to it and its logits resized
    back, so it still answers at the size it was given."""

    def __init__(self, artifact: Artifact) -> None:
        super().__init__()
        self.artifact = artifact
        self.num_classes = artifact.num_classes
        self.pretrained_cfg = {"preprocess": artifact.preprocess.to_dict(), "labels": artifact.labels,
                               "source": str(artifact.path)}
        meta = artifact.metadata
        self.task = "segmentation" if meta.get("arch") == "SegmentationModel" else None
        self.fixed_size = None if meta.get("dynamic_size") or self.task is None else meta.get("resolution")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = tuple(x.shape[-2:])
        if self.fixed_size and size != (self.fixed_size, self.fixed_size):
            x = nn.functional.interpolate(x, size=[self.fixed_size] * 2, mode="bilinear", align_corners=False)
            return nn.functional.interpolate(self.artifact(x.contiguous()), size=list(size), mode="bilinear",
                                             align_corners=False)
        return self.artifact(x.contiguous())  # runtimes take plain NCHW buffers
