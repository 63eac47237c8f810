"""``mobilenet``: a thin command line over the Python API.

Each command lives in ``mobilenet/commands/<name>.py`` with ``add_parser(subparsers)``
that registers it and sets ``func``; the work itself is done by the library.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__
from .commands import CommandError

# (command, module) in the order `mobilenet --help` lists them.
COMMANDS = [
    ("info", "info"),
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except CommandError as exc:
        print(f"mobilenet {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
