"""The machine a benchmark ran on, and the most it could do.

A latency means little without the CPU, thread count, allocator and library
versions beside it, and "achieved GMAC/s" means little without the ceiling: the
CPU's theoretical peak, worked out from its instruction-set flags and clock.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path

# Libraries whose versions change the numbers.
LIBRARIES = ("torch", "torchvision", "timm", "onnxruntime", "onnx", "executorch", "mobilenet")


@dataclass(frozen=True)
class Peak:
    """Theoretical multiply-accumulates per second for ``cores`` cores.

    fp32: one fused multiply-add is one MAC per SIMD lane, ``fma_units`` per
    cycle. int8 with VNNI: ``vpdpbusd`` does four u8 x s8 MACs per 32-bit lane,
    so 4x the fp32 figure on the same units. Clocks drop under heavy AVX-512 load,
    so the true ceiling is somewhat lower.
    """

    cores: int
    clock_ghz: float
    simd_bits: int
    fma_units: int
    fp32_gmacs: float
    int8_gmacs: float | None
    basis: str


@dataclass(frozen=True)
class Machine:
    cpu: str
    logical_cpus: int
    threads: int
    flags: list[str]
    peak: Peak
    allocator: str
    python: str
    versions: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


# Flags that decide the peak, in the order a reader looks for them.
_KEY_FLAGS = ("fma", "avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16",
              "amx_tile", "amx_int8", "amx_bf16")


def _cpuinfo() -> tuple[str, set[str], float | None]:
    name, flags, mhz = platform.processor() or platform.machine(), set(), None
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return name, flags, mhz
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "model name" and value:
            name = value
        elif key == "flags" and not flags:
            flags = set(value.split())
        elif key == "cpu MHz" and mhz is None:
            try:
                mhz = float(value)
            except ValueError:
                pass
    return name, flags, mhz


def _max_clock_mhz() -> float | None:
    """The rated maximum where the kernel exposes it (absent under most hypervisors)."""
    try:
        return int(Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").read_text()) / 1000
    except (OSError, ValueError):
        return None


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def theoretical_peak(flags: set[str], clock_mhz: float, cores: int) -> Peak:
    if "avx512f" in flags:
        # Xeon server cores (Skylake-SP onwards) have two 512-bit FMA units; some
        # client and low-end parts have one, which the flags cannot tell apart.
        bits, units, why = 512, 2, "AVX-512: 16 fp32 lanes x 2 FMA units (assumed, as on Xeon server cores)"
    elif "fma" in flags and "avx2" in flags:
        bits, units, why = 256, 2, "AVX2+FMA: 8 fp32 lanes x 2 FMA units"
    else:
        bits, units, why = 128, 1, "SSE: 4 fp32 lanes, no FMA (mul+add counted as one MAC)"
    lanes = bits // 32
    fp32 = cores * units * lanes * clock_mhz / 1000
    int8 = None
    if "avx512_vnni" in flags and bits == 512:
        int8, why = fp32 * 4, why + "; int8 AVX-512 VNNI: 4 MACs per 32-bit lane"
    elif "avx_vnni" in flags or "avx512_vnni" in flags:
        int8, why = fp32 * 4, why + "; int8 VNNI: 4 MACs per 32-bit lane"
    if "amx_int8" in flags:
        why += "; AMX present (int8 tiles, 1024 MACs/cycle/core) not counted"
    return Peak(cores, round(clock_mhz / 1000, 3), bits, units, round(fp32, 1),
                None if int8 is None else round(int8, 1), why + f"; clock {clock_mhz:.0f} MHz x {cores} cores")


def library_versions() -> dict[str, str]:
    versions = {}
    for lib in LIBRARIES:
        try:
            versions[lib] = importlib.metadata.version(lib)
        except importlib.metadata.PackageNotFoundError:
            versions[lib] = "not installed"
    return versions


def describe_machine(threads: int) -> Machine:
    """The header of every benchmark: CPU, flags, peak for ``threads`` cores,
    allocator set-up and library versions."""
    from ..cli import allocator

    name, flags, mhz = _cpuinfo()
    clock = _max_clock_mhz() or mhz or 0.0
    cores = min(threads, available_cpus())
    return Machine(
        cpu=name,
        logical_cpus=available_cpus(),
        threads=threads,
        flags=[f for f in _KEY_FLAGS if f in flags],
        peak=theoretical_peak(flags, clock, cores),
        allocator=allocator(),
        python=platform.python_version(),
        versions=library_versions(),
    )
