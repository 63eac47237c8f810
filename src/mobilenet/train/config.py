"""The training configuration: one frozen dataclass, the recipes that fill it, and
the order in which values win (defaults < recipe < config file < command line).
``TrainConfig(recipe=..., lr=...)`` applies the same order to its keyword arguments.

Every field carries its help text, so the command line, the saved
``config.yaml`` and this file cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..limits import MAX_RESOLUTION, MAX_THREADS, MAX_WORKERS


def _f(default: Any, help: str, **kw: Any) -> Any:
    """A field with its help text and, where it has one, its valid range:
    ``min``/``max`` inclusive, ``above``/``below`` exclusive."""
    return field(default=default, metadata={"help": help, **kw})


class ConfigError(ValueError):
    """An invalid value; ``field`` names the option (the CLI shows it as ``--flag``)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field} {problem}")
        self.field, self.problem = field, problem



OPTIMIZERS = ("sgd", "rmsprop", "adamw")
SCHEDULES = ("cosine", "step", "constant")
AMP = ("auto", "bf16", "fp16", "none")
AUTO_AUGMENT = ("imagenet", "cifar10", "svhn")
TASKS = ("classification", "detection", "segmentation")


@dataclass(frozen=True, init=False)
class TrainConfig:
    """Everything a run needs; saved as ``config.yaml`` in the run folder.

    Keyword arguments only. A field not given takes the value of ``recipe`` (for this task
    and model) where the recipe sets it, else its default below: ``TrainConfig(recipe="paper",
    model=m, epochs=3)`` is ``mobilenet train --recipe paper --model m --epochs 3``.
    """

    # -- what to train on --------------------------------------------------------
    task: str = _f("classification", "classification, detection (COCO-JSON data) or segmentation (images + "
                   "class-index masks); see docs/dense.md", choices=TASKS)
    model: str = _f("mobilenet_v3_small_050", "registered model name (mobilenet info lists them; detection: "
                    "ssdlite320_mobilenet_v3_small, segmentation: lraspp_mobilenet_v3_small by default)")
    backbone: str | None = _f(None, "dense models: the backbone of a generic head (--model lraspp or deeplabv3), "
                              "e.g. mobilenet_v2_100")
    pretrained_backbone: str | None = _f(None, "dense models: ImageNet classifier weights for the backbone (a tag, "
                                         "our .safetensors or a .tflite); the head starts fresh")
    masks: str | None = _f(None, "segmentation: the masks folder inside --data (default masks/, else masks_voc/, "
                           "else the only masks_*/)")
    data: str = _f("digits", "digits (scikit-learn, built in), cifar10, cifar100, or an image folder")
    data_root: str | None = _f(None, "where cifar10/cifar100 are (down)loaded (default ~/.cache/mobilenet/data)")
    val_split: float = _f(0.2, "held-out fraction when the data has no val/ split (seeded)", above=0.0, below=1.0)
    resolution: int | None = _f(None, "input size (default: the model's, the weights', or 32 for digits/cifar)",
                                min=16, max=MAX_RESOLUTION)
    crop_pct: float | None = _f(None, "eval centre-crop fraction (default 0.875; 1.0 for digits/cifar)",
                                above=0.0, max=1.0)
    pretrained: str | None = _f(None, "weights to fine-tune: a tag, our .safetensors, a .tflite or a checkpoint")
    strict: bool = _f(False, "unreadable or placeholder images are an error instead of skipped")
    # -- recipe ------------------------------------------------------------------------
    recipe: str = _f("quick", "preset: quick, paper, torchvision, finetune (see docs/training.md)")
    epochs: int = _f(12, "epochs", min=1)
    batch_size: int = _f(64, "global batch size (split across processes under torchrun)", min=1)
    optimizer: str = _f("adamw", "sgd, rmsprop or adamw", choices=OPTIMIZERS)
    lr: float = _f(0.005, "peak learning rate (at lr_batch images per step when lr_batch is set)", above=0.0)
    lr_batch: int | None = _f(None, "batch size lr is given for; lr scales linearly with batch_size", min=1)
    momentum: float = _f(0.9, "SGD/RMSProp momentum", min=0.0, below=1.0)
    rmsprop_decay: float = _f(0.9, "RMSProp gradient-square decay (torch's alpha)", min=0.0, below=1.0)
    rmsprop_eps: float = _f(0.0316, "RMSProp epsilon (outside the sqrt, as torchvision's reference)", above=0.0)
    weight_decay: float = _f(0.01, "L2 / decoupled weight decay", min=0.0)
    decay_depthwise: bool = _f(False, "also decay depthwise conv weights (V1 paper: little or none)")
    decay_norm: bool = _f(False, "also decay BatchNorm weights and biases")
    schedule: str = _f("cosine", "cosine, step or constant, after warm-up", choices=SCHEDULES)
    step_epochs: float = _f(1.0, "step schedule: multiply lr by step_gamma every this many epochs", above=0.0)
    step_gamma: float = _f(0.98, "step schedule factor", above=0.0)
    warmup_epochs: float = _f(0.0, "linear warm-up from 0", min=0.0)
    min_lr_ratio: float = _f(0.0, "cosine floor as a fraction of the peak lr", min=0.0, max=1.0)
    label_smoothing: float = _f(0.0, "label smoothing", min=0.0, below=1.0)
    dropout: float | None = _f(None, "classifier dropout (default: the model's)", min=0.0, below=1.0)
    bn_momentum: float | None = _f(None, "BatchNorm momentum (unset: the model's)", min=0.0, max=1.0)
    freeze_bn: bool = _f(False, "keep BatchNorm statistics fixed (fine-tuning on small data)")
    head_only: bool = _f(False, "train only the classifier (a linear probe of pretrained features)")
    freeze_backbone: int = _f(0, "dense models: the backbone's weights stay fixed for this many first epochs "
                              "(its BatchNorm still normalises with batch statistics); steps are faster", min=0)
    ema_decay: float = _f(0.0, "EMA of the weights with this decay per step; 0 turns it off", min=0.0, below=1.0)
    clip_grad: float = _f(0.0, "clip the gradient norm to this; 0 turns it off", min=0.0)
    # -- augmentation ----------------------------------------------------------------
    hflip: float = _f(0.5, "horizontal-flip probability (digits are never flipped: config.yaml records 0)",
                      min=0.0, max=1.0)
    crop_scale: tuple[float, float] = _f((0.08, 1.0), "RandomResizedCrop area range")
    auto_augment: str | None = _f(None, "AutoAugment policy: imagenet, cifar10 or svhn", choices=AUTO_AUGMENT)
    random_erase: float = _f(0.0, "RandomErasing probability", min=0.0, max=1.0)
    # -- machinery ----------------------------------------------------------------------
    device: str = _f("auto", "auto, cpu, cuda or cuda:N")
    amp: str = _f("auto", "autocast: bf16, fp16 (CUDA) or none; auto = bf16 on CUDA, none on CPU", choices=AMP)
    channels_last: bool = _f(True, "channels-last memory layout (much faster convolutions on CPU)")
    compile: bool = _f(False, "torch.compile the model")
    qat: bool = _f(False, "quantization-aware training (PT2E fake-quant, int8 x86); writes int8.pt2, not fp32 weights")
    sync_bn: bool = _f(False, "SyncBatchNorm under torchrun")
    seed: int = _f(0, "seed for initialisation, split, data order and augmentation")
    threads: int = _f(0, "CPU threads (0: the cores idle at start, at least 1; see docs/training.md)", min=0,
                     max=MAX_THREADS)
    workers: int = _f(0, "data-loading processes (0: in the training process)", min=0, max=MAX_WORKERS)
    output: str = _f("runs", "folder that holds run folders")
    name: str | None = _f(None, "run folder name inside --output (default: <model>-<data>-<time>, never an "
                          "existing one)")
    save_every: int = _f(0, "also save resumable state every N steps (0: off)", min=0)
    save_minutes: float = _f(5.0, "also save resumable state every this many minutes of training (0: off); "
                             "state is always saved after each epoch and on Ctrl-C", min=0.0)

    def __init__(self, **given: Any) -> None:
        for name, value in {**{f.name: f.default for f in fields(self)}, **with_recipe(given)}.items():
            object.__setattr__(self, name, value)
        self.__post_init__()

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            _check_field(f, value)
            if str(f.type).startswith("int") and isinstance(value, float):
                object.__setattr__(self, f.name, int(value))  # 5.0 from a config file
        if self.recipe not in RECIPES:
            raise ConfigError("recipe", f"must be one of {', '.join(RECIPES)}, got {self.recipe!r}")
        lo, hi = self.crop_scale
        if not 0.0 < lo <= hi <= 1.0:
            raise ConfigError("crop_scale", f"must be two numbers 0 < min <= max <= 1, got {self.crop_scale}")
        if self.name is not None:
            check_name(self.name)
        if self.task == "classification":
            for dense_only in ("backbone", "pretrained_backbone", "masks"):
                if getattr(self, dense_only) is not None:
                    raise ConfigError(dense_only, "is an option of --task detection or segmentation")
            if self.freeze_backbone:
                raise ConfigError("freeze_backbone", "is an option of --task detection or segmentation")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["crop_scale"] = list(self.crop_scale)
        return d

    def peak_lr(self) -> float:
        """The learning rate at this run's batch size (linear scaling rule, Goyal et al. 2017)."""
        return self.lr * self.batch_size / self.lr_batch if self.lr_batch else self.lr


FIELDS = {f.name: f for f in fields(TrainConfig)}
# Fields that may change when resuming: they do not alter what is computed.
RESUME_OVERRIDES = ("epochs", "workers", "device", "threads", "save_every", "save_minutes")


def _check_field(f: dataclasses.Field, value: Any) -> None:
    """Type, choices and range of one field, from its annotation and metadata."""
    if value is None:
        return
    kind = str(f.type).split(" |")[0]
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "int" and not (number and float(value).is_integer()):
        raise ConfigError(f.name, f"must be a whole number, got {value!r}")
    if kind == "float":
        if not number:
            raise ConfigError(f.name, f"must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f.name, f"must be a finite number, got {value!r}")
    if kind == "str" and not isinstance(value, str):
        raise ConfigError(f.name, f"must be text, got {value!r}")
    if kind == "bool" and not isinstance(value, bool):
        raise ConfigError(f.name, f"must be true or false, got {value!r}")
    m = f.metadata
    choices = m.get("choices")
    if choices and value not in choices:
        raise ConfigError(f.name, f"must be one of {', '.join(choices)}, got {value!r}")
    lo = ("[", m["min"]) if "min" in m else ("(", m["above"]) if "above" in m else None
    hi = ("]", m["max"]) if "max" in m else (")", m["below"]) if "below" in m else None
    low_ok = lo is None or (value >= lo[1] if lo[0] == "[" else value > lo[1])
    high_ok = hi is None or (value <= hi[1] if hi[0] == "]" else value < hi[1])
    if not (low_ok and high_ok):
        if hi is None:
            need = f"{lo[1]} or more" if lo[0] == "[" else f"more than {lo[1]}"
        elif lo is None:
            need = f"at most {hi[1]}" if hi[0] == "]" else f"less than {hi[1]}"
        else:
            need = f"in {lo[0]}{lo[1]}, {hi[1]}{hi[0]}"
        raise ConfigError(f.name, f"must be {need}, got {value!r}")


def check_name(name: str) -> str:
    """A run name is one plain folder name: it cannot lead outside ``output``."""
    seps = {"/", "\\", os.sep, os.altsep or "/"}
    if not isinstance(name, str) or name in ("", ".", "..") or "\0" in name or any(s in name for s in seps):
        raise ConfigError("name", f"must be one folder name inside --output (no '/', '\\' or '..'), got {name!r}")
    return name


def version_of(model: str) -> str:
    """"v1", "v2", "v3" or "v4" from a registered name (recipes differ per paper)."""
    for v in ("v1", "v2", "v3", "v4"):
        if model.startswith(f"mobilenet_{v}"):
            return v
    raise ValueError(f"cannot tell the MobileNet version of {model!r}")


# -- recipes -------------------------------------------------------------------------------
# Each returns the fields it sets for a model; its docstring is the source it follows.


def _quick(model: str) -> dict[str, Any]:
    """Ours: small data from scratch in minutes. AdamW, cosine with a short warm-up, BatchNorm
    momentum 0.1 (V3's paper momentum 0.01 is too slow for a few hundred steps)."""
    return dict(optimizer="adamw", lr=0.005, lr_batch=None, weight_decay=0.01, schedule="cosine",
                warmup_epochs=0.5, epochs=12, label_smoothing=0.1, bn_momentum=0.1, ema_decay=0.0,
                crop_scale=(0.5, 1.0))


def _paper(model: str) -> dict[str, Any]:
    """V1: Howard et al. 2017 (arXiv 1704.04861) Sec. 4: RMSProp as Inception V3, little or no
    weight decay on the depthwise filters; lr and decay as V2's (TF-slim's train script).
    V2: Sandler et al. 2018 (arXiv 1801.04381) Sec. 6.1: RMSProp decay 0.9 momentum 0.9,
    lr 0.045 x0.98 per epoch, weight decay 4e-5, batch 96.
    V3: Howard et al. 2019 (arXiv 1905.02244) Sec. 6.1: RMSProp momentum 0.9, lr 0.1 at batch
    4096 (scaled linearly), x0.01 every 3 epochs, weight decay 1e-5, dropout 0.2, EMA 0.9999,
    BatchNorm decay 0.99 (momentum 0.01). Label smoothing 0.1 from Inception V3 (Szegedy et al.
    2016), which the V1 paper follows."""
    v = version_of(model)
    if v == "v4":
        return _paper_v4(model)
    common = dict(optimizer="rmsprop", rmsprop_decay=0.9, momentum=0.9, schedule="step", warmup_epochs=0.0,
                  ema_decay=0.0, bn_momentum=None, auto_augment=None, random_erase=0.0)
    if v == "v3":
        return {**common, "lr": 0.1, "lr_batch": 4096, "step_epochs": 3.0, "step_gamma": 0.01,
                "weight_decay": 1e-5, "dropout": 0.2, "ema_decay": 0.9999, "bn_momentum": 0.01,
                "label_smoothing": 0.0}
    return {**common, "lr": 0.045, "lr_batch": 96, "step_epochs": 1.0, "step_gamma": 0.98, "weight_decay": 4e-5,
            "label_smoothing": 0.1 if v == "v1" else 0.0}


# V4 (arXiv 2404.10518): the paper points to TF Model Garden for its models and training
# (footnote 1); these are its ImageNet configs, official/vision/configs/experiments/
# image_classification/imagenet_mobilenetv4_<model>_tpu.yaml: (lr, at batch, weight decay,
# dropout, epochs). conv_small's 9600 epochs are 3,002,368 steps of 4096 images.
_V4_PAPER = {
    "conv_small": (0.002, 4096, 0.01, 0.3, 9600),
    "conv_medium": (0.004, 4096, 0.1, 0.2, 500),
    "conv_large": (0.004, 16384, 0.2, 0.2, 500),
    "hybrid_medium": (0.016, 16384, 0.1, 0.2, 500),
    "hybrid_large": (0.01, 16384, 0.2, 0.2, 500),
}


def _paper_v4(model: str) -> dict[str, Any]:
    """V4: Qin et al. 2024 (arXiv 2404.10518) train with TF Model Garden's configs
    (imagenet_mobilenetv4_*_tpu.yaml): AdamW with decoupled weight decay (not on
    BatchNorm), linear warm-up for 1560 steps (5 epochs at batch 4096, 20 at 16384)
    then cosine to 0, label smoothing 0.1, dropout 0.3 (S) / 0.2, EMA 0.9999 (S),
    the lr and decay per model below, at batch 4096 or 16384 (scaled linearly here).
    Not reproduced by our trainer, and so left out: RandAugment (magnitude 9-15),
    mixup/cutmix (L models), stochastic depth (0.075-0.35), AdamW beta1 0.6 (S).
    Reduced widths (timm's, not the paper's) take their parent model's recipe."""
    config = next(c for c in sorted(_V4_PAPER, key=len, reverse=True) if c in model)
    lr, batch, decay, dropout, epochs = _V4_PAPER[config]
    return dict(optimizer="adamw", lr=lr, lr_batch=batch, weight_decay=decay, decay_depthwise=True,
                decay_norm=False, schedule="cosine", min_lr_ratio=0.0,
                warmup_epochs=1560 * batch / 1_281_167, epochs=epochs, label_smoothing=0.1, dropout=dropout,
                ema_decay=0.9999 if config == "conv_small" else 0.0, bn_momentum=None, auto_augment=None,
                random_erase=0.0)


def _torchvision(model: str) -> dict[str, Any]:
    """torchvision's published reference commands (github.com/pytorch/vision,
    references/classification/README.md; 8 GPUs).
    V2 (and V1, which torchvision lacks): SGD momentum 0.9, lr 0.045 at batch 8x32, wd 4e-5,
    x0.98 every epoch, 300 epochs.
    V3: RMSProp (alpha 0.9, eps 0.0316) momentum 0.9, lr 0.064 at batch 8x128, wd 1e-5,
    x0.973 every 2 epochs, 600 epochs, AutoAugment imagenet, RandomErasing 0.2."""
    if version_of(model) == "v3":
        return dict(optimizer="rmsprop", rmsprop_decay=0.9, rmsprop_eps=0.0316, momentum=0.9, lr=0.064,
                    lr_batch=1024, weight_decay=1e-5, schedule="step", step_epochs=2.0,
                    step_gamma=0.973, epochs=600, auto_augment="imagenet", random_erase=0.2, warmup_epochs=0.0,
                    label_smoothing=0.0, ema_decay=0.0, bn_momentum=None)
    return dict(optimizer="sgd", momentum=0.9, lr=0.045, lr_batch=256, weight_decay=4e-5,
                schedule="step", step_epochs=1.0, step_gamma=0.98, epochs=300, warmup_epochs=0.0,
                label_smoothing=0.0, ema_decay=0.0, bn_momentum=None)


def _finetune(model: str) -> dict[str, Any]:
    """Ours, after the usual transfer-learning practice (Kornblith et al. 2019; Kumar et al.
    2022 on linear probing): AdamW lr 1e-3 at batch 32, wd 0.01, 1 warm-up epoch then cosine,
    6 epochs, label smoothing 0.1, crops 25-100 %, BatchNorm statistics frozen (small batches;
    folded TFLite weights), only the new classifier trained (``--no-head-only --lr 1e-4``
    fine-tunes every layer)."""
    return dict(optimizer="adamw", lr=1e-3, lr_batch=32, batch_size=32, weight_decay=0.01, schedule="cosine",
                warmup_epochs=1.0, epochs=6, label_smoothing=0.1, freeze_bn=True, head_only=True,
                crop_scale=(0.25, 1.0), ema_decay=0.0, bn_momentum=None)


# The model a dense task trains when --model is not given.
DENSE_MODELS = {"detection": "ssdlite320_mobilenet_v3_small", "segmentation": "lraspp_mobilenet_v3_small"}

RECIPES = {"quick": _quick, "paper": _paper, "torchvision": _torchvision, "finetune": _finetune}


# -- resolution of values -----------------------------------------------------------------


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """A TOML or YAML file of TrainConfig fields (dashes or underscores)."""
    from ..files import read_text_file

    path = Path(path)
    text = read_text_file(path, "--config")
    try:
        if path.suffix.lower() == ".toml":
            import tomllib

            values = tomllib.loads(text)
        else:
            import yaml

            values = yaml.safe_load(text) or {}
    except Exception as exc:  # tomllib/yaml raise their own error types
        mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        reason = " ".join(str(problem or exc).split())  # yaml's own text spans lines, with a caret
        raise ValueError(f"--config {path}: not valid {path.suffix.lstrip('.') or 'YAML'}: {reason}{where}") from None
    if not isinstance(values, dict):
        raise ValueError(f"--config {path}: expected a mapping of option: value")
    return check_keys({k.replace("-", "_"): v for k, v in values.items()}, str(path))


def check_keys(values: dict[str, Any], where: str) -> dict[str, Any]:
    for key in values:
        if key not in FIELDS:
            close = difflib.get_close_matches(key, FIELDS, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ValueError(f"{where}: unknown option {key!r}{hint}")
    if "crop_scale" in values and values["crop_scale"] is not None:
        values["crop_scale"] = tuple(float(v) for v in values["crop_scale"])
    return values


def with_recipe(given: dict[str, Any]) -> dict[str, Any]:
    """``given`` over its recipe's values (for its task and model): what TrainConfig holds.
    A dense task's model defaults to DENSE_MODELS'. An explicit ``lr`` without an explicit
    ``lr_batch`` is taken as it stands (no scaling)."""
    given = check_keys(dict(given), "TrainConfig")
    recipe = given.get("recipe", TrainConfig.recipe)
    task = given.get("task", TrainConfig.task)
    _check_field(FIELDS["recipe"], recipe)
    _check_field(FIELDS["task"], task)
    if task in DENSE_MODELS:
        from .recipes_dense import dense_recipe

        given.setdefault("model", DENSE_MODELS[task])
        values = {**dense_recipe(task, recipe), **given}
    else:
        if recipe not in RECIPES:
            raise ConfigError("recipe", f"must be one of {', '.join(RECIPES)}, got {recipe!r}")
        values = {**RECIPES[recipe](given.get("model", TrainConfig.model)), **given}
    if "lr" in given and "lr_batch" not in given:
        values["lr_batch"] = None
    return values


def resolve_config(cli: dict[str, Any] | None = None, file: dict[str, Any] | None = None) -> TrainConfig:
    """defaults < recipe < config file < explicit command-line values (None: not given)."""
    cli = check_keys({k: v for k, v in (cli or {}).items() if v is not None}, "command line")
    file = check_keys(dict(file or {}), "config file")
    return TrainConfig(**{**file, **cli})
