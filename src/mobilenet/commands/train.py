"""``mobilenet train``: every TrainConfig field as a flag; defaults < --recipe <
--config file < explicit flags. Run it under torchrun for DistributedDataParallel."""

from __future__ import annotations

import argparse
import sys
import types
import typing
from pathlib import Path

from . import CommandError, print_json

# Fields that may change when resuming: they do not alter what is computed.
RESUME_OVERRIDES = ("epochs", "workers", "device", "save_every")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _base_type(annotation):
    if isinstance(annotation, str):
        annotation = eval(annotation, {"typing": typing})  # noqa: S307 - our own dataclass annotations
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return _base_type(args[0])
    return annotation


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..train.config import FIELDS

    p = sub.add_parser(
        "train",
        help="train or fine-tune a MobileNet (no arguments: digits, about a minute on a CPU)",
        description="Train a MobileNet. With no arguments it trains mobilenet_v3_small_050 on scikit-learn's "
        "handwritten digits at 32 px and writes runs/<name>/. Values come from the defaults, then --recipe, "
        "then --config, then explicit flags. Under torchrun it runs DistributedDataParallel.",
    )
    p.add_argument("--config", metavar="FILE", help="TOML or YAML file of options (saved with the run)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR where it stopped")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    for name, f in FIELDS.items():
        kind = _base_type(f.type)
        kwargs = {"default": None, "help": f.metadata["help"] + (f" (default {f.default})" if f.default is not None else "")}
        if kind is bool:
            p.add_argument(_flag(name), action=argparse.BooleanOptionalAction, **kwargs)
        elif kind is tuple or typing.get_origin(kind) is tuple:
            p.add_argument(_flag(name), type=float, nargs=2, metavar=("MIN", "MAX"), **kwargs)
        else:
            p.add_argument(_flag(name), type=kind, choices=f.metadata.get("choices"), **kwargs)
    p.set_defaults(func=run)


def resolve(args: argparse.Namespace):
    """The TrainConfig these arguments ask for, and whether the model was named."""
    import dataclasses

    from ..train.config import FIELDS, TrainConfig, read_config_file, resolve_config

    cli = {name: getattr(args, name) for name in FIELDS if getattr(args, name) is not None}
    if args.resume:
        saved = Path(args.resume) / "config.yaml"
        if not saved.is_file():
            raise CommandError(f"--resume {args.resume}: no config.yaml there; is it a run folder?")
        changed = [k for k in cli if k not in RESUME_OVERRIDES]
        if changed or args.config:
            bad = ", ".join(_flag(k) for k in changed) or "--config"
            raise CommandError(f"--resume keeps the run's own settings; drop {bad} "
                               f"(only {', '.join(map(_flag, RESUME_OVERRIDES))} may change)")
        values = read_config_file(saved)
        return dataclasses.replace(TrainConfig(**values), **cli), True
    file = read_config_file(args.config) if args.config else {}
    return resolve_config(cli, file), ("model" in cli or "model" in file)


def run(args: argparse.Namespace) -> int:
    from ..train import DataError, Trainer
    from ..weights.store import WeightsError

    try:
        cfg, explicit_model = resolve(args)
        trainer = Trainer(cfg, resume=args.resume, explicit_model=explicit_model, progress=not args.quiet,
                          log=lambda m: print(m, file=sys.stderr if args.json else sys.stdout, flush=True))
        summary = trainer.run()
    except (DataError, WeightsError, PermissionError, FileNotFoundError, ValueError, TypeError) as exc:
        raise CommandError(str(exc)) from None
    if trainer.ctx.main:
        if args.json:
            print_json({k: v for k, v in summary.items() if k != "lines"})
        else:
            print("\n".join(summary["lines"]))
    return 130 if summary["interrupted"] else 0
