"""Detector weights: torchvision's SSDLite layout to and from ours, official COCO
checkpoints by tag, and ``create_model(name, pretrained=FILE or tag)``.

torchvision cuts its MobileNetV3 in two at the C4 expansion: ``backbone.features.0``
is the stem, the blocks before C4 and C4's expansion conv; ``backbone.features.1``
is the rest of C4 (``features.1.0``, its keys keep their place in the block), the
blocks after it and the last conv. The table below maps each of our modules to
theirs through our classifier table (:mod:`mobilenet.weights.convert`), so the two
never disagree on a block.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..weights.convert import TORCHVISION_TOP, TORCHVISION_V3_BLOCK
from ..weights.store import WeightsError

SIGNATURES = {"torchvision": "head.classification_head.module_list.0.1.weight", "mobilenet": "head.cls.0.pw.weight"}
EXTRA_TV = {"reduce": "0", "dw": "1", "expand": "2"}
HEAD_TV = {"box": "regression_head", "cls": "classification_head"}
PREDICTOR_TV = {"dw.conv": "0.0", "dw.bn": "0.1", "pw": "1"}


@dataclass(frozen=True)
class DetectionTag:
    model: str
    tag: str
    url: str
    sha256: str  # torch hub's file-name prefix
    licence: str
    box_map: float  # COCO val2017 box AP, percent, as published
    options: tuple[tuple[str, Any], ...] = ()  # what our model needs to compute what these weights computed

    @property
    def name(self) -> str:
        return f"{self.model}.{self.tag}"


TAGS: dict[str, DetectionTag] = {t.name: t for t in (
    DetectionTag("ssdlite320_mobilenet_v3_large", "tv_coco",
                 "https://download.pytorch.org/models/ssdlite320_mobilenet_v3_large_coco-a79551df.pth", "a79551df",
                 "BSD-3-Clause (torchvision; no separate weights licence stated)", 21.3,
                 (("reduced_tail", True),)),
)}


def coco_labels() -> list[str]:
    """torchvision's 91 COCO names by category id (0 = background, unused ids "N/A")."""
    from torchvision.models._meta import _COCO_CATEGORIES

    return list(_COCO_CATEGORIES)


# -- the torchvision layout ------------------------------------------------------------------
def _backbone_table(model: nn.Module) -> dict[str, str]:
    """Our backbone modules -> torchvision's ssdlite names (its V3 backbone only)."""
    backbone, c4 = model.backbone, model.c4
    if type(backbone).__name__ != "MobileNetV3":
        raise ValueError(f"torchvision's SSDLite has a MobileNetV3 backbone only, not {type(backbone).__name__}")
    classifier = {f"stem.{k.split('.')[1]}": v for k, v in TORCHVISION_TOP.items()}
    for i, block in enumerate(backbone.blocks):
        layout = TORCHVISION_V3_BLOCK[(not isinstance(block.expand, nn.Identity), not isinstance(block.se, nn.Identity))]
        classifier.update({f"blocks.{i}.{ours}": f"features.{i + 1}.{theirs}" for ours, theirs in layout.items()})
    last = len(backbone.blocks) + 1
    classifier.update({"last_conv.conv": f"features.{last}.0", "last_conv.bn": f"features.{last}.1"})
    c4_pos = c4 + 1
    table = {}
    for ours, theirs in classifier.items():
        _, n, *rest = theirs.split(".")
        n = int(n)
        if n < c4_pos:
            tv = f"features.0.{n}.{'.'.join(rest)}"
        elif n == c4_pos:  # rest = block.{k}.…: k 0 (expansion) ends features.0, the rest is features.1.0
            k = int(rest[1])
            tv = f"features.0.{n}.{'.'.join(rest[2:])}" if k == 0 else f"features.1.0.{'.'.join(rest[1:])}"
        else:
            tv = f"features.1.{n - c4_pos}.{'.'.join(rest)}"
        table[f"backbone.{ours}"] = f"backbone.{tv}"
    return table


def module_table(model: nn.Module) -> dict[str, str]:
    """Our module names -> torchvision's, for every module holding tensors."""
    table = _backbone_table(model)
    for k in range(len(model.extras)):
        for part, pos in EXTRA_TV.items():
            table.update({f"extras.{k}.{part}.{m}": f"backbone.extra.{k}.{pos}.{i}" for m, i in (("conv", 0), ("bn", 1))})
    for ours, theirs in HEAD_TV.items():
        for i in range(len(getattr(model.head, ours))):
            table.update({f"head.{ours}.{i}.{p}": f"head.{theirs}.module_list.{i}.{q}" for p, q in PREDICTOR_TV.items()})
    return table


def key_table(model: nn.Module, fmt: str = "torchvision") -> dict[str, str]:
    """Our state-dict key -> the key in ``fmt``'s layout, for every tensor."""
    if fmt == "mobilenet":
        return {k: k for k in model.state_dict()}
    from ..weights.convert import keys_from_modules

    return keys_from_modules(model, module_table(model), "the torchvision SSDLite table")


def to_torchvision(model: nn.Module) -> dict[str, torch.Tensor]:
    """A state dict torchvision's ``ssdlite320_mobilenet_v3_large`` loads with strict=True."""
    state = model.state_dict()
    return {theirs: state[ours].detach().clone() for ours, theirs in key_table(model).items()}


def detect_format(state: Mapping[str, torch.Tensor], source: str = "the checkpoint") -> str:
    found = [fmt for fmt, key in SIGNATURES.items() if key in state]
    if len(found) != 1:
        raise WeightsError(f"{source}: not an SSDLite state dict (ours or torchvision's): "
                           f"it has neither {' nor '.join(SIGNATURES.values())}")
    return found[0]


def load_into(model: nn.Module, state: Mapping[str, torch.Tensor], fmt: str, source: str = "") -> nn.Module:
    """Copy ``state`` into ``model``: every key and shape checked, nothing left over."""
    ours = model.state_dict()
    table = key_table(model, fmt)
    missing = [t for k, t in table.items() if t not in state and not k.endswith("num_batches_tracked")]
    unexpected = sorted(set(state) - set(table.values()))
    if missing or unexpected:
        raise WeightsError(f"{source}: {fmt} state dict does not fit {getattr(model, 'model_name', 'this SSDLite')}: "
                           f"missing {missing[:3]}{'...' if len(missing) > 3 else ''}, "
                           f"unexpected {unexpected[:3]}{'...' if len(unexpected) > 3 else ''}")
    new = {}
    for key, theirs in table.items():
        if theirs not in state:
            new[key] = torch.zeros_like(ours[key])
        elif state[theirs].shape != ours[key].shape:
            raise WeightsError(f"{source}: {theirs} has shape {tuple(state[theirs].shape)}, "
                               f"our {key} needs {tuple(ours[key].shape)}")
        else:
            new[key] = state[theirs].to(ours[key].dtype)
    model.load_state_dict(new, strict=True)
    return model


def _classes(state: Mapping[str, torch.Tensor], fmt: str) -> int:
    box, cls = ((state["head.regression_head.module_list.0.1.weight"], state[SIGNATURES["torchvision"]])
                if fmt == "torchvision" else (state["head.box.0.pw.weight"], state[SIGNATURES["mobilenet"]]))
    anchors = box.shape[0] // 4
    return int(cls.shape[0] // anchors)


def _fits(model: nn.Module, state: Mapping[str, torch.Tensor], fmt: str) -> bool:
    ours = model.state_dict()
    try:
        table = key_table(model, fmt)
    except ValueError:
        return False
    return set(table.values()) >= set(state) and all(
        t in state and state[t].shape == ours[k].shape for k, t in table.items() if not k.endswith("num_batches_tracked"))


def _is_path(pretrained: Any) -> bool:
    text = os.fspath(pretrained)
    return isinstance(pretrained, os.PathLike) or "/" in text or os.sep in text or \
        text.endswith((".pth", ".pt", ".bin", ".safetensors")) or Path(text).is_file()


def get_tag(name: str, tag: str | bool) -> DetectionTag:
    own = [t for t in TAGS.values() if t.model == name]
    if tag is True and own:
        return own[0]
    key = str(tag) if str(tag).startswith(f"{name}.") else f"{name}.{tag}"
    if key not in TAGS:
        raise WeightsError(f"{name} has no weights tagged {tag!r}; its tags: {', '.join(t.tag for t in own) or 'none'}"
                           " (pass a checkpoint file instead: pretrained=PATH)")
    return TAGS[key]


def load_pretrained(name: str, pretrained: bool | str | os.PathLike, *, num_classes: int | None = None,
                    in_chans: int = 3, progress: bool = False, **options: Any) -> nn.Module:
    """``create_model(name, pretrained=...)`` for a detector: a tag or a checkpoint file in
    torchvision's or our layout. The architecture options the file needs (the V3
    reduced tail) are found from its shapes unless given."""
    from ..registry import create_model, model_options
    from ..weights.hub import download, read_checkpoint

    meta = None
    if pretrained is not True and _is_path(pretrained):
        state, meta = read_checkpoint(Path(pretrained))
        cfg: dict[str, Any] = {"source": str(pretrained), "labels": (meta or {}).get("labels")}
    else:
        tag = get_tag(name, pretrained)
        path = download(tag.url, tag.sha256, progress=progress)
        state, _ = read_checkpoint(path)
        options = {**dict(tag.options), **options}
        cfg = {"source": tag.name, "url": tag.url, "licence": tag.licence, "box_map": tag.box_map,
               "labels": coco_labels()}
    source = str(cfg["source"])
    fmt = detect_format(state, source)
    classes = _classes(state, fmt)
    if meta and meta.get("arch_args"):
        allowed = set(model_options(name))
        saved = {k: v for k, v in meta["arch_args"].items() if k in allowed}
        options = {**saved, **options}
    candidates = [options] if "reduced_tail" in options else [{**options, "reduced_tail": r} for r in (False, True)]
    model = None
    for opts in candidates:
        try:
            with torch.device("meta"):
                trial = create_model(name, num_classes=classes, in_chans=in_chans, **opts)
        except TypeError:
            continue  # a backbone without that option
        if _fits(trial, state, fmt):
            model = create_model(name, num_classes=classes, in_chans=in_chans, **opts)
            break
    if model is None:
        model = create_model(name, num_classes=classes, in_chans=in_chans, **candidates[0])  # for the error message
    model.model_name = name
    load_into(model, state, fmt, source)
    if fmt == "torchvision" and cfg["labels"] is None and classes == 91:
        cfg["labels"] = coco_labels()
    if num_classes is not None and num_classes != classes:
        model.reset_classifier(num_classes)
        cfg["labels"] = None
    model.pretrained_cfg = cfg
    return model.eval()

