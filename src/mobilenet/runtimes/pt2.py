"""``.pt2`` ExportedPrograms: the int8 PT2E graphs ``mobilenet quantize`` and
``train --qat`` write, run eagerly or lowered by Inductor (``compile=True``, what
makes x86 int8 fast)."""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..files import atomic_write_bytes
from .base import Loaded, Runtime, Written
from .common import METADATA_NAME, artifact_metadata, batch_dim, example_batch


class PT2Runtime(Runtime):
    name = "pt2"
    engine = "pt2"
    suffix = ".pt2"
    extra = "export"
    requires = ("torchao",)
    order = 90
    exportable = False  # written by `mobilenet quantize` / `train --qat`
    benchable = False  # bench runs the same graph as its "compile" int8 route
    description = ".pt2"

    def detect(self, path: Path, head: bytes) -> bool:
        if not zipfile.is_zipfile(path):
            return False
        names = zipfile.ZipFile(path).namelist()
        return any(n.endswith("archive_format") or "/models/" in n for n in names)

    def write(self, model: nn.Module, path: Path, *, example: torch.Tensor, meta: dict[str, Any],
              calib: list[torch.Tensor] | None = None, precision: str = "fp32") -> Written:
        path.write_bytes(_program_bytes(model, example, meta))
        return Written()

    def load(self, path: Path, *, threads: int | None = None, precision: str | None = None,
             compile: bool = False) -> Loaded:
        import torchao.quantization.pt2e  # noqa: F401  (registers the quantized_decomposed ops)

        extra = {f"{METADATA_NAME}.json": ""}
        module = torch.export.load(str(path), extra_files=extra).module()
        if compile:
            import torch._inductor.config as inductor_config

            inductor_config.freezing = True  # constant-folds weights so int8 kernels are chosen
            module = torch.compile(module)

        def run(x: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return module(x.float())

        return Loaded(run, json.loads(extra[f"{METADATA_NAME}.json"] or "{}"))


def _program_bytes(model: nn.Module, example: torch.Tensor, meta: dict) -> bytes:
    if example.shape[0] < 2:  # torch.export specialises a batch of 1 and refuses the dynamic batch
        example = torch.cat([example[:1], example[:1]])
    program = torch.export.export(model, (example,), dynamic_shapes=(batch_dim(),))
    program._example_inputs = None  # not the weights: a random batch would only add size
    buffer = io.BytesIO()  # torch.export.save wants a .pt2 name or a buffer, not our temporary name
    torch.export.save(program, buffer, extra_files={f"{METADATA_NAME}.json": json.dumps(meta)})
    return buffer.getvalue()


def save_program(model: nn.Module, path: str | os.PathLike, *, example: torch.Tensor | None = None,
                 metadata: dict | None = None) -> Path:
    """Save a (typically int8 PT2E) graph as a ``.pt2`` ExportedProgram with our
    metadata, atomically; :func:`mobilenet.runtimes.load_artifact` reads it back."""
    example = example if example is not None else example_batch(model)
    meta = metadata or artifact_metadata(model, fmt="pt2", int8=hasattr(model, "quant_backend"),
                                         backend=getattr(model, "quant_backend", None),
                                         resolution=example.shape[-1], max_batch=1024)
    path = Path(path)
    atomic_write_bytes(path, _program_bytes(model, example, meta))
    return path


RUNTIME = PT2Runtime()
