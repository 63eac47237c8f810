"""``mobilenet train``: every TrainConfig field as a flag; defaults < --recipe <
--config file < explicit flags. Run it under torchrun for DistributedDataParallel."""

from __future__ import annotations

import argparse
import sys
import types
import typing
from pathlib import Path

from . import CommandError, print_json


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _base_type(annotation):
    if isinstance(annotation, str):
        annotation = eval(annotation, {"typing": typing})  # noqa: S307 - our own dataclass annotations
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return _base_type(args[0])
    return annotation


def _shown(value) -> str:
    return " ".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..train.config import FIELDS, RECIPES, TrainConfig

    recipe = TrainConfig.recipe
    preset = RECIPES[recipe](TrainConfig.model)  # what a run with no flags uses

    p = sub.add_parser(
        "train",
        help="train or fine-tune a MobileNet (no arguments: digits, about a minute on a CPU)",
        description="Train a MobileNet. With no arguments it trains mobilenet_v3_small_050 on scikit-learn's "
        "handwritten digits at 32 px and writes runs/<name>/. Values come from the defaults, then --recipe, "
        f"then --config, then explicit flags. The defaults shown are what runs with no flags (those marked "
        f"'from --recipe {recipe}' come from that recipe; another --recipe sets its own, see docs/training.md). "
        "Under torchrun it runs DistributedDataParallel.",
    )
    p.add_argument("--config", metavar="FILE", help="TOML or YAML file of options (saved with the run)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR where it stopped (with its own "
                   "config; only --epochs, --workers, --device, --threads, --save-every, --save-minutes may change)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run already in --output/--name (without it an existing run is refused)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    for name, f in FIELDS.items():
        kind = _base_type(f.type)
        default = preset.get(name, f.default)
        origin = f", from --recipe {recipe}" if name in preset else ""
        shown = f" (default {_shown(default)}{origin})" if default is not None else ""
        kwargs = {"default": None, "help": f.metadata["help"].replace("%", "%%") + shown}
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

    from ..train.config import FIELDS, RESUME_OVERRIDES, TrainConfig, read_config_file, resolve_config

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
    from ..train import DataError, Diverged, Trainer
    from ..train.config import ConfigError
    from ..weights.store import WeightsError

    if args.resume and args.overwrite:
        raise CommandError("give --resume (continue a run) or --overwrite (replace it), not both")
    try:
        cfg, explicit_model = resolve(args)
        trainer = Trainer(cfg, resume=args.resume, explicit_model=explicit_model, progress=not args.quiet,
                          overwrite=args.overwrite,
                          log=lambda m: print(m, file=sys.stderr if args.json else sys.stdout, flush=True))
        summary = trainer.run()
    except ConfigError as exc:  # name the flag, or the file the value came from
        given = getattr(args, exc.field, None) is not None
        where = (_flag(exc.field) if given or not (args.config or args.resume) else
                 f"--config {args.config}: {exc.field}" if args.config else
                 f"--resume {args.resume}: config.yaml: {exc.field}")
        raise CommandError(f"{where} {exc.problem}") from None
    except (DataError, WeightsError, PermissionError, FileNotFoundError, ValueError, TypeError, Diverged) as exc:
        raise CommandError(str(exc)) from None
    if trainer.ctx.main:
        if args.json:
            print_json({k: v for k, v in summary.items() if k != "lines"})
        else:
            print("\n".join(summary["lines"]))
    return 130 if summary["interrupted"] else 0
