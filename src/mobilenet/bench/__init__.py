"""``mobilenet.bench``: latency and throughput of our models under every runtime,
measured side by side with torchvision's and timm's same architecture."""

from .claims import claims
from .core import BenchReport, Result, add_ratios, benchmark, benchmark_training, parse_list
from .machine import Machine, Peak, describe_machine, theoretical_peak
from .routes import BF16_RUNTIMES, INT8_RUNTIMES, PEER_SOURCES, PEERS, RUNTIMES, RouteUnavailable
from .timing import Schedule, median_ci

__all__ = [
    "BF16_RUNTIMES",
    "INT8_RUNTIMES",
    "PEERS",
    "PEER_SOURCES",
    "RUNTIMES",
    "BenchReport",
    "Machine",
    "Peak",
    "Result",
    "RouteUnavailable",
    "Schedule",
    "add_ratios",
    "benchmark",
    "benchmark_training",
    "claims",
    "describe_machine",
    "median_ci",
    "parse_list",
    "theoretical_peak",
]
