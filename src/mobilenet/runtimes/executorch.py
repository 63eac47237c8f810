"""ExecuTorch ``.pte`` programs lowered to XNNPACK (the runtime of PyTorch's mobile
stack). int8: PT2E with XNNPACK's quantizer (:mod:`mobilenet.quantize`)."""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .base import Loaded, Runtime, Written
from .common import ExportError, batch_dim


class ExecuTorchRuntime(Runtime):
    name = "executorch"
    engine = "executorch"
    suffix = ".pte"
    extra = "export"
    requires = ("executorch", "torchao")
    order = 20
    int8_backend = "xnnpack"
    layout = "NCHW in (XNNPACK NHWC inside)"
    plain_exporter = "torch.export + XNNPACK partitioner"
    description = "ExecuTorch (.pte)"

    def detect(self, path: Path, head: bytes) -> bool:
        return head[4:6] == b"ET"

    def write(self, model: nn.Module, path: Path, *, example: torch.Tensor, meta: dict[str, Any],
              calib: list[torch.Tensor] | None = None, precision: str = "fp32") -> Written:
        written = Written()
        if calib is not None:
            from ..quantize import quantize_ptq

            model = quantize_ptq(model, calib, backend="xnnpack")
            written = Written(model, "int8 PT2E graph (eager)")
        program = torch.export.export(model, (example,), dynamic_shapes=(batch_dim(meta["max_batch"]),))
        # The metadata rides along as a byte tensor, which no tool shows as text anyway:
        # zlib keeps a thousand labels from weighing 5% of a small int8 model.
        blob = torch.tensor(list(zlib.compress(json.dumps(meta).encode(), 9)), dtype=torch.uint8)
        path.write_bytes(_lower(program, {"mobilenet_metadata": blob}))
        return written

    def load(self, path: Path, *, threads: int | None = None, precision: str | None = None,
             compile: bool = False) -> Loaded:
        from executorch.runtime import Runtime as ETRuntime

        if threads:
            from executorch.extension.pybindings import portable_lib

            portable_lib._unsafe_reset_threadpool(threads)
        program = ETRuntime.get().load_program(path)
        meta = {}
        if "mobilenet_metadata" in program.method_names:
            blob = program.load_method("mobilenet_metadata").execute([])[0]
            raw = bytes(blob.tolist())
            meta = json.loads((raw if raw[:1] == b"{" else zlib.decompress(raw)).decode())
        from ..quiet import native_stderr_filtered

        with native_stderr_filtered():  # ExecuTorch's threadpool prints ARM-only CPU probes on x86
            method = program.load_method("forward")
        # The planned input buffer bounds the batch. ExecuTorch 1.5's lowering narrows
        # the exported range (batch <= 15 for these graphs): larger batches run in chunks.
        sizes = tuple(int(s) for s in program.metadata("forward").input_tensor_meta(0).sizes())
        capacity = sizes[0]
        max_batch = min(int(meta.get("max_batch") or capacity), capacity)
        meta = {**meta, "batch_capacity": capacity}

        def run(x: torch.Tensor) -> torch.Tensor:
            if tuple(x.shape[1:]) != sizes[1:]:  # static shapes: ExecuTorch would fail with a bare error code
                raise ExportError(f"{path}: takes images of {'x'.join(map(str, sizes[1:]))} (C x H x W), "
                                  f"got {'x'.join(map(str, x.shape[1:]))}; preprocess to {sizes[-1]} px "
                                  "or export again with --resolution")
            x = x.detach().float().contiguous()
            outs = [method.execute([chunk.contiguous()])[0].clone() for chunk in x.split(max_batch)]
            return torch.cat(outs)

        return Loaded(run, meta)

    def write_plain(self, model: nn.Module, example: torch.Tensor, path: Path) -> None:
        program = torch.export.export(model, (example,), dynamic_shapes=(batch_dim(128),))
        path.write_bytes(_lower(program))


def _lower(program: Any, constant_methods: dict | None = None) -> bytes:
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    edge = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()], constant_methods=constant_methods)
    return edge.to_executorch().buffer


RUNTIME = ExecuTorchRuntime()
