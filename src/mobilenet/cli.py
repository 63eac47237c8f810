"""``mobilenet``: a thin command line over the Python API.

Each command lives in ``mobilenet/commands/<name>.py`` with ``add_parser(subparsers)``
that registers it and sets ``func``; the work itself is done by the library.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
import time

from . import __version__
from .commands import CommandError

# (command, module) in the order `mobilenet --help` lists them.
COMMANDS = [
    ("info", "info"),
    ("train", "train"),
    ("eval", "eval"),
    ("bench", "bench"),
    ("predict", "predict"),
    ("import-tflite", "import_tflite"),
    ("export", "export"),
    ("quantize", "quantize"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mobilenet", description="Paper-exact MobileNets: inspect, train, evaluate, export."
    )
    parser.add_argument("--version", action="version", version=f"mobilenet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for _, module in COMMANDS:
        importlib.import_module(f".commands.{module}", __package__).add_parser(sub)
    return parser


# glibc's malloc maps and unmaps every activation above its mmap threshold on every
# step, which dominates large CPU batches (4x slower training). Raising the thresholds
# must happen before the process starts, so the CLI re-executes itself once.
MALLOC_TUNABLES = "glibc.malloc.mmap_threshold=2147483647:glibc.malloc.trim_threshold=4294967295"


def _reexec_with_malloc_tunables(argv: list[str]) -> None:
    if not sys.platform.startswith("linux") or "GLIBC_TUNABLES" in os.environ:
        return
    if os.environ.get("MOBILENET_NO_REEXEC") or "LD_PRELOAD" in os.environ:  # e.g. tcmalloc already
        return
    env = dict(os.environ, GLIBC_TUNABLES=MALLOC_TUNABLES)
    try:
        os.execve(sys.executable, [sys.executable, "-m", "mobilenet", *argv], env)
    except OSError:
        pass  # keep running with the default allocator


def allocator() -> str:
    """Which allocator set-up this process runs with (throughput figures name it)."""
    if "tcmalloc" in os.environ.get("LD_PRELOAD", "") or "jemalloc" in os.environ.get("LD_PRELOAD", ""):
        return os.environ["LD_PRELOAD"].rsplit("/", 1)[-1]
    if "mmap_threshold" in os.environ.get("GLIBC_TUNABLES", ""):
        return "glibc (mmap/trim thresholds raised)"
    return "glibc (default)"


# OSErrors the user can act on (free space, write elsewhere), printed as one line.
WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()  # a report's "seconds" is the command's whole wall time
    reexec = argv is None  # run as a program (not called from Python): may re-execute
    argv = sys.argv[1:] if argv is None else argv
    # Parsing imports no torch, and --help, --version or a bad argument exit here: they
    # neither re-execute nor load torch (a second).
    args = build_parser().parse_args(argv)
    args.started = started
    if reexec:
        _reexec_with_malloc_tunables(argv)
    from .quiet import dependency_noise

    dependency_noise()  # known dependency warnings a user cannot act on (mobilenet.quiet)
    try:
        return args.func(args) or 0
    except CommandError as exc:
        print(f"mobilenet {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk or a read-only/forbidden file: one line, no traceback
        from .files import WriteError

        known = isinstance(exc, WriteError) or (exc.errno in WRITE_ERRNOS and exc.filename)
        if not known:
            raise
        message = str(exc) if isinstance(exc, WriteError) else f"{exc.filename}: {exc.strerror.lower()}"
        print(f"mobilenet {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
