"""Params and MACs of registry models, fast: :func:`model_counts` counts a model once with
:func:`mobilenet.profile.profile` (a real forward pass) and keeps the figures in a small
cache file, keyed by name, resolution and options, for as long as the package's code and
torch's version are unchanged. `mobilenet info` for the whole zoo then reads a file
instead of building and running every model (tests hold the cached figures against the
counter for every model).

The cache lives in ``$MOBILENET_CACHE_DIR``, else ``$XDG_CACHE_HOME/mobilenet``, else
``~/.cache/mobilenet``; ``MOBILENET_CACHE_DIR=`` (empty) turns it off. A cache that cannot
be read or written is ignored: the figures are counted again.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

FILE = "counts.json"


def cache_dir() -> Path | None:
    if "MOBILENET_CACHE_DIR" in os.environ:
        value = os.environ["MOBILENET_CACHE_DIR"]
        return Path(value) if value else None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mobilenet"


def code_fingerprint() -> str:
    """Changes whenever any module of the package (where every architecture is defined) or
    torch changes: a stale figure is never served."""
    from importlib.metadata import PackageNotFoundError, version

    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        st = path.stat()
        h.update(f"{path.relative_to(root)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    try:
        h.update(version("torch").encode())
    except PackageNotFoundError:
        pass
    return h.hexdigest()[:16]


def cache_key(name: str, resolution: int, options: dict[str, Any] | None = None) -> str:
    return json.dumps([name, resolution, options or {}], sort_keys=True, default=str)


def _read(path: Path, fingerprint: str) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("fingerprint") != fingerprint or not isinstance(data.get("counts"), dict):
        return {}
    return data


def _write(path: Path, data: dict) -> None:
    from .files import atomic_write_bytes

    try:
        atomic_write_bytes(path, json.dumps(data, indent=0).encode())
    except OSError:
        pass  # a read-only or full cache folder only costs the next run its speed


def cached_registry() -> dict[str, int] | None:
    """``{name: resolution of its published figures}`` of every registered model, as cached
    by the last counting run of this code, without importing torch; None if not cached."""
    folder = cache_dir()
    if folder is None:
        return None
    listing = _read(folder / FILE, code_fingerprint()).get("registry")
    return listing if isinstance(listing, dict) and listing else None


def model_counts(requests: list[tuple[str, int]], options: dict[str, Any] | None = None,
                 on_count=None) -> list[dict[str, int]]:
    """The fields of :class:`mobilenet.profile.Profile` (params, macs, bn_params,
    tf_slim_params, tf_slim_macs, resolution) for each ``(name, resolution)``: from the
    cache where it has them (no torch import), else counted by a real forward pass
    (``on_count(name, resolution)`` is called before each)."""
    folder = cache_dir()
    fingerprint = code_fingerprint() if folder else ""
    data = _read(folder / FILE, fingerprint) if folder else {}
    cached = data.get("counts", {})
    missing = [r for r in dict.fromkeys(requests) if cache_key(*r, options) not in cached]
    if missing:
        import torch

        from .profile import profile
        from .registry import MODELS, create_model
        from .train.distributed import cpu_threads

        threads = torch.get_num_threads()
        torch.set_num_threads(cpu_threads(0))  # threads beyond the idle cores slow a busy machine to a crawl
        try:
            for name, resolution in missing:
                if on_count:
                    on_count(name, resolution)
                cached[cache_key(name, resolution, options)] = asdict(
                    profile(create_model(name, **(options or {})), resolution))
        finally:
            torch.set_num_threads(threads)
        if folder:
            _write(folder / FILE, {"fingerprint": fingerprint, "counts": cached,
                                   "registry": {n: spec.resolution for n, spec in MODELS.items()}})
    return [dict(cached[cache_key(n, r, options)]) for n, r in requests]
