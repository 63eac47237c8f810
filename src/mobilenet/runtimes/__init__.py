"""The runtimes a model can be written for and run in, one module each.

Every module here (other than ``base`` and ``common``) defines ``RUNTIME``, an
instance of :class:`~mobilenet.runtimes.base.Runtime`; this registry finds them, so
adding a runtime is adding a file. Export, eval, predict, quantize and bench ask the
registry, never a runtime by name.
"""

from __future__ import annotations

import functools
import importlib
import os
import pkgutil
from pathlib import Path

from .base import Artifact, ArtifactModule, Loaded, Runtime, Written
from .common import ExportError, MissingExtra, first_line

_NOT_RUNTIMES = {"base", "common"}


@functools.cache
def all_runtimes() -> tuple[Runtime, ...]:
    """Every runtime module's ``RUNTIME``, in their listing order."""
    found = []
    for info in pkgutil.iter_modules(__path__):
        if info.name in _NOT_RUNTIMES or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        runtime = getattr(module, "RUNTIME", None)
        if isinstance(runtime, Runtime):
            found.append(runtime)
    return tuple(sorted(found, key=lambda r: (r.order, r.name)))


def formats() -> tuple[str, ...]:
    """What `mobilenet export --format` writes."""
    return tuple(r.name for r in all_runtimes() if r.exportable)


def engines() -> tuple[str, ...]:
    """The file runtimes `mobilenet bench --runtime` runs."""
    return tuple(r.engine for r in all_runtimes() if r.benchable)


def suffixes() -> tuple[str, ...]:
    return tuple(dict.fromkeys(s for r in all_runtimes() for s in (r.suffix, *r.aliases)))


def owner(path: str | os.PathLike) -> Runtime | None:
    """The runtime that ``eval``/``predict`` should run ``path`` in, or ``None`` for
    weights (see :meth:`Runtime.owns`)."""
    return next((r for r in all_runtimes() if r.owns(Path(path))), None)


def get(name: str) -> Runtime:
    """The runtime that writes format ``name`` (or runs as engine ``name``)."""
    for runtime in all_runtimes():
        if name in (runtime.name, runtime.engine):
            return runtime
    raise ExportError(f"unknown format {name!r}; expected one of {', '.join(formats())}")


def detect(path: Path) -> Runtime:
    """Which runtime a file is for, from its content (names can lie)."""
    with open(path, "rb") as f:
        head = f.read(512)
    for runtime in all_runtimes():
        if runtime.detect(path, head):
            return runtime
    kinds = [r.description or r.name for r in all_runtimes()]
    listed = ", ".join(kinds[:-1]) + f" or {kinds[-1]}" if len(kinds) > 1 else "".join(kinds)
    raise ExportError(f"{path}: not an {listed} file written by mobilenet")


def claims(path: str | os.PathLike) -> bool:
    """Whether a runtime recognises ``path``, by its content, as a file it runs (a
    ``.tflite`` we did not write, such as Google's, is weights to import instead)."""
    try:
        detect(Path(path))
    except (ExportError, OSError):
        return False
    return True


def load_artifact(path: str | os.PathLike, *, threads: int | None = None, compile: bool = False,
                  precision: str | None = None) -> Artifact:
    """Load a file written by ``mobilenet export`` / ``quantize`` in its runtime as a
    callable :class:`Artifact`. ``precision`` overrides what the file asks for (e.g.
    ``"fp32"`` for an OpenVINO file exported for bf16); ``compile`` lowers a ``.pt2``
    with Inductor."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: no such file")
    runtime = detect(path)
    runtime.check_installed()
    try:
        loaded = runtime.load(path, threads=threads, precision=precision, compile=compile)
    except ExportError:
        raise
    except Exception as exc:
        raise ExportError(f"{path}: cannot load as {runtime.name}: {first_line(exc)}") from exc
    return Artifact(path, runtime.name, loaded.metadata, loaded.run, loaded.precision)


__all__ = [
    "Artifact",
    "ArtifactModule",
    "ExportError",
    "Loaded",
    "MissingExtra",
    "Runtime",
    "Written",
    "all_runtimes",
    "claims",
    "detect",
    "engines",
    "formats",
    "get",
    "load_artifact",
    "owner",
    "suffixes",
]
