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
