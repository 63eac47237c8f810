"""TorchScript (``torch.jit.trace``), run by ``torch.jit.load``: fp32 only, as
TorchScript has no PT2E int8 path."""

from __future__ import annotations

import contextlib
import io
import json
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .base import Loaded, Runtime, Written
from .common import METADATA_NAME


class TorchScriptRuntime(Runtime):
    name = "torchscript"
    engine = "torchscript"
    suffix = ".ts"
    aliases = (".pt",)
    order = 30
    benchable = False
    description = "TorchScript"

    def unsupported(self, *, int8: bool = False, precision: str = "fp32") -> str | None:
        if int8:
            return ("int8 TorchScript is not supported (TorchScript has no PT2E int8 path); "
                    "use --format onnx, executorch or openvino, or `mobilenet quantize` for a .pt2")
        return super().unsupported(precision=precision)

    def owns(self, path: Path) -> bool:
        # .pt is also what torch.save checkpoints are called: only a TorchScript archive is ours
        suffix = path.suffix.lower()
        return suffix == ".ts" or (suffix == ".pt" and path.is_file() and self.detect(path, b""))

    def detect(self, path: Path, head: bytes) -> bool:
        if not zipfile.is_zipfile(path):
            return False
        names = zipfile.ZipFile(path).namelist()
        return any(n.endswith("constants.pkl") or "/code/" in n for n in names) and not _is_pt2(names)

    def write(self, model: nn.Module, path: Path, *, example: torch.Tensor, meta: dict[str, Any],
              calib: list[torch.Tensor] | None = None, precision: str = "fp32") -> Written:
        with torch.no_grad(), _jit_deprecation_quiet():
            traced = torch.jit.trace(model, example)
            buffer = io.BytesIO()  # torch.jit.save's own file writer aborts the process on a full disk
            torch.jit.save(traced, buffer, _extra_files={f"{METADATA_NAME}.json": json.dumps(meta)})
        path.write_bytes(buffer.getvalue())
        return Written()

    def load(self, path: Path, *, threads: int | None = None, precision: str | None = None,
             compile: bool = False) -> Loaded:
        extra = {f"{METADATA_NAME}.json": ""}
        with _jit_deprecation_quiet():
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
        module.eval()

        def run(x: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return module(x.float())

        return Loaded(run, json.loads(extra[f"{METADATA_NAME}.json"] or "{}"))


@contextlib.contextmanager
def _jit_deprecation_quiet() -> Iterator[None]:
    """torch 2.9+ warns three times per file that torch.jit is deprecated, pointing to
    torch.export: a user who asked for a .ts file can do nothing with that (the other
    formats are torch.export's already), so only those FutureWarnings are dropped."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated", category=FutureWarning)
        yield


def _is_pt2(names: list[str]) -> bool:
    return any(n.endswith("archive_format") or "/models/" in n for n in names)


RUNTIME = TorchScriptRuntime()
