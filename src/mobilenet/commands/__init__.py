"""Command-line commands; shared output helpers."""

from __future__ import annotations

import json
import math
import numbers
import sys
from collections.abc import Sequence
from typing import Any


class CommandError(Exception):
    """A user error: printed as one line, exit status 2, no traceback."""


class LazyChoices:
    """argparse ``choices`` read from ``module.NAME`` (a sequence, or a function returning one) only when an argument is checked or its
    help shown, so that building the parser (``mobilenet --help``) imports no torch. Give the
    argument a ``metavar``: argparse lists the choices in the metavar when it has none."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def _values(self) -> tuple:
        import importlib

        value = getattr(importlib.import_module(self.module), self.name)
        return tuple(value() if callable(value) else value)

    def __contains__(self, value: object) -> bool:
        return value in self._values()

    def __iter__(self):
        return iter(self._values())

    def __len__(self) -> int:
        return len(self._values())


def print_json(obj: Any) -> None:
    """Strict JSON: NaN and infinities (which JSON cannot hold) are written as null."""
    json.dump(_finite(obj), sys.stdout, indent=2, default=str, allow_nan=False)
    sys.stdout.write("\n")


def _finite(obj: Any) -> Any:
    if isinstance(obj, numbers.Real) and not isinstance(obj, numbers.Integral):  # float, numpy floats
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, numbers.Integral) and not isinstance(obj, bool):  # int, numpy ints
        return int(obj)
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str], titles: dict[str, str] | None = None) -> str:
    """A plain aligned text table: numbers right-aligned, text left-aligned."""
    titles = titles or {}
    head = [titles.get(c, c) for c in columns]
    cells = [["" if r.get(c) is None else _fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(head)]
    numeric = [all(isinstance(r.get(c), (int, float)) or r.get(c) is None for r in rows) for c in columns]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    out = [line(head), line(["-" * w for w in widths])]
    out += [line(row) for row in cells]
    return "\n".join(out)


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)
