"""Interleaved timing: every candidate of a group runs in turn, round after round.

On a shared CPU the speed changes from second to second (other jobs, clocks,
caches). Timing A for a minute and then B for a minute measures the machine as
much as the models; alternating short bursts of A, B, C... makes slow moments hit
all of them alike, so their ratios hold even when the absolute numbers drift.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Schedule:
    """When to stop: every candidate has ``min_runs`` timed runs, about ``min_time``
    seconds of them, and a median known to within ``rel_ci`` (95% confidence);
    or ``max_time`` seconds each have passed, or ``max_runs`` runs each."""

    min_runs: int = 5
    min_time: float = 1.0
    max_time: float = 10.0
    max_runs: int = 2000
    rel_ci: float = 0.02
    warmup_runs: int = 2
    warmup_time: float = 0.2
    burst_time: float = 0.05  # seconds of back-to-back runs per candidate per round

    def __post_init__(self) -> None:
        if self.min_runs < 1 or self.max_runs < self.min_runs:
            raise ValueError(f"need 1 <= min_runs <= max_runs, got {self.min_runs} and {self.max_runs}")
        if self.min_time < 0 or self.max_time < self.min_time:
            raise ValueError(f"need 0 <= min_time <= max_time, got {self.min_time} and {self.max_time}")


@dataclass
class Timed:
    """One candidate: a zero-argument call and the seconds each timed run took."""

    run: Callable[[], object]
    times: list[float] = field(default_factory=list)
    error: str | None = None
    burst: int = 1


def median_ci(times: Sequence[float]) -> float:
    """Half-width of the 95% confidence interval of the median, relative to it
    (order statistics n/2 +- 0.98 sqrt(n); no assumption about the distribution)."""
    n = len(times)
    if n < 3:
        return math.inf
    s = sorted(times)
    lo = max(0, math.floor(n / 2 - 0.98 * math.sqrt(n)))
    hi = min(n - 1, math.ceil(n / 2 + 0.98 * math.sqrt(n)))
    med = statistics.median(s)
    return (s[hi] - s[lo]) / 2 / med if med > 0 else math.inf


def summarize(times: Sequence[float]) -> dict[str, float]:
    """Median and quartiles in milliseconds."""
    ms = sorted(t * 1000 for t in times)
    if len(ms) == 1:
        q1 = med = q3 = ms[0]
    else:
        q1, med, q3 = statistics.quantiles(ms, n=4, method="inclusive")
    return {"median_ms": med, "q1_ms": q1, "q3_ms": q3, "iqr_ms": q3 - q1, "ci_pct": 100 * median_ci(ms)}


def _call(c: Timed) -> float | None:
    try:
        start = time.perf_counter()
        c.run()
        return time.perf_counter() - start
    except Exception as exc:  # a runtime failing mid-run is reported, not fatal
        c.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        return None


def _warm_up(c: Timed, schedule: Schedule) -> None:
    start, seen = time.perf_counter(), []
    while c.error is None and (len(seen) < schedule.warmup_runs or time.perf_counter() - start < schedule.warmup_time):
        t = _call(c)
        if t is not None:
            seen.append(t)
        if len(seen) >= 50:
            break
    if seen:
        c.burst = max(1, min(50, round(schedule.burst_time / statistics.median(seen))))


def interleave(candidates: Sequence[Timed], schedule: Schedule, tick: Callable[[], None] | None = None) -> None:
    """Warm every candidate up, then time them round-robin until ``schedule`` is met,
    every other round in reverse order: what a run leaves behind (a runtime's threads
    still spinning, its memory in the caches) then falls on each candidate alike."""
    for c in candidates:
        _warm_up(c, schedule)
    start, rounds = time.perf_counter(), 0
    while True:
        alive = [c for c in candidates if c.error is None]
        if not alive:
            return
        rounds += 1
        for c in alive if rounds % 2 else alive[::-1]:  # no candidate always follows the same one
            for _ in range(min(c.burst, schedule.max_runs - len(c.times))):
                t = _call(c)
                if t is None:
                    break
                c.times.append(t)
            time.sleep(0.002)  # let the last runtime's spinning worker threads park
        if tick is not None:
            tick()
        alive = [c for c in alive if c.error is None]
        elapsed = (time.perf_counter() - start) / max(1, len(alive))
        if all(len(c.times) >= schedule.max_runs for c in alive) or elapsed >= schedule.max_time:
            return
        if (
            elapsed >= schedule.min_time
            and all(len(c.times) >= schedule.min_runs for c in alive)
            and all(median_ci(c.times) <= schedule.rel_ci for c in alive)
        ):
            return
