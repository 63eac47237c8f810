"""Progress lines on stderr for long commands.

Library code calls :func:`step` (one line per phase: "calibrating on 200 images") and
:func:`counter` (a count towards a known total, e.g. images evaluated); both do nothing
unless a command turned reporting on with :func:`reporting`, which the CLI does on a
terminal (or with ``MOBILENET_PROGRESS=1``) except under ``--json``/``--quiet``. So the library stays silent when used from Python, and a
module that reports progress needs no extra argument to pass it along.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

_state: dict = {"on": False, "start": 0.0, "stream": None}


def wanted(stream: TextIO | None = None) -> bool:
    """Progress is for a person watching: on when stderr is a terminal, or when
    ``MOBILENET_PROGRESS=1`` asks for it (logs of long jobs); ``MOBILENET_PROGRESS=0`` never."""
    forced = os.environ.get("MOBILENET_PROGRESS", "")
    if forced in ("0", "1"):
        return forced == "1"
    try:
        return (stream or sys.stderr).isatty()
    except (AttributeError, ValueError):
        return False


@contextmanager
def reporting(enabled: bool = True, stream: TextIO | None = None) -> Iterator[None]:
    """Turn progress lines on for the duration of a command (where :func:`wanted`); times
    count from here. Commands pass ``enabled=False`` under ``--json``/``--quiet``."""
    saved = dict(_state)
    _state.update(on=enabled and wanted(stream), start=time.perf_counter(), stream=stream)
    try:
        yield
    finally:
        _state.update(saved)


def enabled() -> bool:
    return bool(_state["on"])


def _write(text: str) -> None:
    stream = _state["stream"] or sys.stderr
    stream.write(text)
    stream.flush()


def step(message: str) -> None:
    """One line: the time since the command started, then ``message``."""
    if _state["on"]:
        _write(f"[{time.perf_counter() - _state['start']:6.1f} s] {message}\n")


def counter(total: int, what: str, every: float = 5.0) -> Callable[[int], None]:
    """``advance(n)``: ``n`` more of ``total`` done. A line at most every ``every`` seconds
    (and at the end), with the rate and an estimate of the time left."""
    if not _state["on"] or total <= 0:
        return lambda n=1: None
    done = [0]
    began = time.perf_counter()
    last = [began]

    def advance(n: int = 1) -> None:
        done[0] += n
        now = time.perf_counter()
        if now - last[0] < every and done[0] < total:
            return
        last[0] = now
        rate = done[0] / max(now - began, 1e-9)
        left = f", about {(total - done[0]) / rate:.0f} s left" if done[0] < total and rate > 0 else ""
        step(f"{what}: {done[0]:,}/{total:,} ({100 * done[0] / total:.0f}%, {rate:,.1f}/s{left})")

    return advance
