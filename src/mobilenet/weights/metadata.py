"""The metadata of a weights file, checked like user input before anything is built
from it: its JSON, the types and ranges of the architecture's arguments, its
preprocessing and labels, and the size of what it would make us allocate (the
model is first built on the ``meta`` device, which allocates nothing, and its
tensors must match the ones the file holds)."""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..images import Preprocess
from .store import WeightsError

# The zoo's largest model has 6 M parameters; a file may not make us build more than this.
MAX_PARAMETERS = 100_000_000
MAX_LABELS = 100_000


@dataclass(frozen=True)
class Rule:
    """What one architecture argument may be: a type and a range, or a set of choices."""

    kind: type
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # low itself is not allowed
    choices: tuple = ()

    def check(self, name: str, value: Any) -> None:
        if self.kind is bool:
            ok = isinstance(value, bool)
        elif self.kind is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif self.kind is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        else:
            ok = isinstance(value, self.kind)
        if ok and self.choices:
            ok = value in self.choices
        if ok and self.low is not None:
            ok = value > self.low if self.low_open else value >= self.low
        if ok and self.high is not None:
            ok = value <= self.high
        if not ok:
            raise ValueError(f"arch_args.{name}={value!r}: expected {self.describe()}")

    def describe(self) -> str:
        if self.choices:
            return "one of " + ", ".join(map(repr, self.choices))
        what = {bool: "true or false", int: "an integer", float: "a number"}.get(self.kind, self.kind.__name__)
        if self.low is not None:
            what += f" in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}]"
        return what


ARCH_ARGS: dict[str, Rule] = {
    "n_classes": Rule(int, 0, MAX_LABELS),
    "input_channel": Rule(int, 1, 64),
    "depth_multiplier": Rule(float, 0, 4, low_open=True),
    "width": Rule(float, 0, 4, low_open=True),
    "use_relu6": Rule(bool),
    "minimal": Rule(bool),
    "dropout": Rule(float, 0, 1),
    "padding": Rule(str, choices=("symmetric", "same")),
    "config": Rule(str),  # the class checks its own choices
    "bn_eps": Rule(float, 0, 1, low_open=True),
    "bn_momentum": Rule(float, 0, 1),
    "output_stride": Rule(int, choices=(8, 16, 32)),
    "reduced_tail": Rule(bool),
    "head_width": Rule(int, 1, 4096),  # segmentation heads (mobilenet.segmentation)
    "head_conv": Rule(bool),
    "aux": Rule(bool),
}
# Arguments that are short lists, each item checked by the rule (a DeepLabV3 head's atrous rates).
LIST_ARGS: dict[str, Rule] = {"aspp_rates": Rule(int, 1, 256)}


def parse(raw: str, source: str) -> dict[str, Any]:
    """Our metadata JSON, or a WeightsError naming ``source``."""
    try:
        meta = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # RecursionError: arrays nested thousands deep
        raise WeightsError(f"{source}: its mobilenet metadata is not valid JSON ({str(exc)[:120]})") from None
    if not isinstance(meta, dict):
        raise WeightsError(f"{source}: its mobilenet metadata is a JSON {type(meta).__name__}, not an object")
    return meta


def check_arch_args(cls: type, args: Any) -> dict[str, Any]:
    """``args`` as keyword arguments of ``cls``: known names, JSON scalars, in range."""
    if not isinstance(args, Mapping):
        raise ValueError(f"arch_args is a {type(args).__name__}, not an object of arguments")
    params = inspect.signature(cls.__init__).parameters
    for name, value in args.items():
        if name not in params or name == "self":
            raise ValueError(f"arch_args.{name}: {cls.__name__} has no such argument")
        if value is None and params[name].default is None:
            continue  # the argument's own "not given"
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"arch_args.{name}={value}: expected a finite number")
        if not _small_json(value):
            raise ValueError(f"arch_args.{name}: a {type(value).__name__}, not a number, string, boolean "
                             f"or a short list of them")
        if name in ARCH_ARGS:
            ARCH_ARGS[name].check(name, value)
        if name in LIST_ARGS:
            if not isinstance(value, list):
                raise ValueError(f"arch_args.{name}: expected a list, got {value!r}")
            for item in value:
                LIST_ARGS[name].check(name, item)
    return dict(args)


def _small_json(value: Any, depth: int = 0) -> bool:
    """A JSON scalar, or (one level down) a list or string-keyed object of at most 64 of them."""
    if value is None or isinstance(value, (bool, int, str)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if depth == 0 and isinstance(value, list):
        return len(value) <= 64 and all(_small_json(v, 1) for v in value)
    if depth == 0 and isinstance(value, dict):
        return len(value) <= 64 and all(isinstance(k, str) and _small_json(v, 1) for k, v in value.items())
    return False


def check_labels(labels: Any) -> list[str] | None:
    if labels is None:
        return None
    if not isinstance(labels, list) or len(labels) > MAX_LABELS or not all(isinstance(x, str) for x in labels):
        raise ValueError(f"labels must be a list of at most {MAX_LABELS:,} strings")
    return labels


def validate(meta: dict[str, Any], source: str, architectures: Mapping[str, type]) -> dict[str, Any]:
    """``meta`` with every field we use checked; a WeightsError naming ``source`` otherwise."""
    try:
        arch = meta.get("arch")
        if arch not in architectures:
            raise ValueError(f"unknown architecture {arch!r}; expected one of {', '.join(architectures)}")
        out = dict(meta)
        out["arch_args"] = check_arch_args(architectures[arch], meta.get("arch_args") or {})
        if meta.get("preprocess") is not None:
            out["preprocess"] = Preprocess.from_dict(meta["preprocess"]).to_dict()
        out["labels"] = check_labels(meta.get("labels"))
        if meta.get("model_name") is not None and not isinstance(meta["model_name"], str):
            raise ValueError(f"model_name {meta['model_name']!r} is not a string")
    except ValueError as exc:
        raise WeightsError(f"{source}: bad metadata: {exc}") from None
    return out


def build_checked(cls: type, args: dict[str, Any], shapes: Mapping[str, tuple[int, ...]], source: str):
    """``cls(**args)``, after building it on the meta device (no memory) and checking
    its size and that its tensors are exactly the ``shapes`` the file holds."""
    import torch

    try:
        with torch.device("meta"):
            ghost = cls(**args)
    except Exception as exc:  # whatever the constructor raises for arguments it cannot take
        raise WeightsError(f"{source}: bad metadata: {cls.__name__}({_short(args)}) fails: {exc}") from None
    wanted = {k: tuple(v.shape) for k, v in ghost.state_dict().items()}
    count = sum(math.prod(s) for s in wanted.values())
    if count > MAX_PARAMETERS:
        raise WeightsError(f"{source}: its metadata describes a model of {count:,} values, over the "
                           f"{MAX_PARAMETERS:,} a weights file may ask for; refused")
    missing = sorted(set(wanted) - set(shapes))
    extra = sorted(set(shapes) - set(wanted))
    wrong = [k for k in wanted if k in shapes and tuple(shapes[k]) != wanted[k]]
    if missing or extra or wrong:
        detail = (f"{wrong[0]} is {list(shapes[wrong[0]])} in the file, {list(wanted[wrong[0]])} by its metadata"
                  if wrong else f"missing {missing[:3]}" if missing else f"unexpected {extra[:3]}")
        raise WeightsError(f"{source}: tensors do not fit its own metadata ({detail})")
    return cls(**args)


def _short(args: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in args.items())
