"""torchvision's segmentation checkpoints in our layout and back, and
``create_model(name, pretrained=...)`` for segmentation models.

One key table (``key_table``) serves both directions, as for the classifiers
(:mod:`mobilenet.weights.convert`): their ``backbone.{i}`` is the i-th entry of
the MobileNetV3 ``features`` list, their ``classifier`` / ``aux_classifier``
the heads.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..images import Preprocess
from ..weights.convert import TORCHVISION_V3_BLOCK, _has_expand, _has_se
from ..weights.hub import WeightTag, download, read_checkpoint
from ..weights.store import WeightsError
from .heads import DeepLabV3Head, LRASPPHead
from .model import VOC_LABELS, SegmentationModel

_TV = "https://download.pytorch.org/models/"
_TV_LIC = "BSD-3-Clause (torchvision; no separate weights licence stated)"
# torchvision's SemanticSegmentation(resize_size=520): short side to 520, no crop, ImageNet mean/std.
SEG_PREPROCESS = Preprocess(resolution=520, crop_pct=1.0, interpolation="bilinear", crop_mode="resize")

# torchvision 0.29 models/segmentation/{lraspp,deeplabv3}.py, COCO_WITH_VOC_LABELS_V1 (trained on the COCO
# images of the 20 VOC categories; mIoU / pixel acc on COCO val2017 with VOC labels, as published there).
TAGS: dict[str, WeightTag] = {
    t.name: t
    for t in (
        WeightTag("lraspp_mobilenet_v3_large", "tv_coco_voc", "torchvision",
                  _TV + "lraspp_mobilenet_v3_large-d234d4ea.pth", "d234d4ea", _TV_LIC, None, SEG_PREPROCESS,
                  "lraspp_mobilenet_v3_large.COCO_WITH_VOC_LABELS_V1",
                  note="mIoU 57.9, pixel acc 91.2 (COCO val2017, VOC labels); 3,221,538 params"),
        WeightTag("deeplabv3_mobilenet_v3_large", "tv_coco_voc", "torchvision",
                  _TV + "deeplabv3_mobilenet_v3_large-fc3c493d.pth", "fc3c493d", _TV_LIC, None, SEG_PREPROCESS,
                  "deeplabv3_mobilenet_v3_large.COCO_WITH_VOC_LABELS_V1",
                  note="mIoU 60.3, pixel acc 91.2 (COCO val2017, VOC labels); 11,029,328 params with aux head"),
    )
}


def _backbone_table(model: SegmentationModel) -> dict[str, str]:
    backbone = model.backbone
    if type(backbone).__name__ != "MobileNetV3":
        raise ValueError(f"torchvision has no segmentation model on a {type(backbone).__name__} backbone")
    table = {"backbone.stem.conv": "backbone.0.0", "backbone.stem.bn": "backbone.0.1"}
    for i, block in enumerate(backbone.blocks):
        layout = TORCHVISION_V3_BLOCK[(_has_expand(block), _has_se(block))]
        table.update({f"backbone.blocks.{i}.{ours}": f"backbone.{i + 1}.{theirs}" for ours, theirs in layout.items()})
    if not isinstance(backbone.last_conv, nn.Identity):
        last = len(backbone.blocks) + 1
        table.update({"backbone.last_conv.conv": f"backbone.{last}.0", "backbone.last_conv.bn": f"backbone.{last}.1"})
    return table


def _head_table(model: SegmentationModel) -> dict[str, str]:
    head = model.head
    if isinstance(head, LRASPPHead):
        table = {"head.conv.conv": "classifier.cbr.0", "head.conv.bn": "classifier.cbr.1",
                 "head.gate_conv": "classifier.scale.1", "head.low_classifier": "classifier.low_classifier",
                 "head.high_classifier": "classifier.high_classifier"}
    else:
        assert isinstance(head, DeepLabV3Head)
        if isinstance(head.head_conv, nn.Identity):
            raise ValueError("torchvision's DeepLabHead has a 3x3 conv before its classifier: build with "
                             "head_conv=True to convert")
        n = len(head.branches)
        table = {}
        for i in range(n - 1):
            table.update({f"head.branches.{i}.conv": f"classifier.0.convs.{i}.0",
                          f"head.branches.{i}.bn": f"classifier.0.convs.{i}.1"})
        table.update({f"head.branches.{n - 1}.conv.conv": f"classifier.0.convs.{n - 1}.1",
                      f"head.branches.{n - 1}.conv.bn": f"classifier.0.convs.{n - 1}.2",
                      "head.project.conv": "classifier.0.project.0", "head.project.bn": "classifier.0.project.1",
                      "head.head_conv.conv": "classifier.1", "head.head_conv.bn": "classifier.2",
                      "head.classifier": "classifier.4"})
    if model.aux_head is not None:
        table.update({"aux_head.conv.conv": "aux_classifier.0", "aux_head.conv.bn": "aux_classifier.1",
                      "aux_head.classifier": "aux_classifier.4"})
    return table


def key_table(model: SegmentationModel) -> dict[str, str]:
    """Our state-dict key -> torchvision's, for every tensor of ``model``."""
    from ..weights.convert import keys_from_modules

    return keys_from_modules(model, {**_backbone_table(model), **_head_table(model)}, "the torchvision key table")


def to_torchvision(model: SegmentationModel) -> dict[str, torch.Tensor]:
    """A state dict torchvision's ``lraspp_mobilenet_v3_large`` / ``deeplabv3_mobilenet_v3_large``
    (``aux_loss=True`` when ours has ``aux``) loads with strict=True."""
    state = model.state_dict()
    return {theirs: state[ours].detach().clone() for ours, theirs in key_table(model).items()}


def from_torchvision_into(model: SegmentationModel, state: Mapping[str, torch.Tensor], source: str) -> None:
    ours = model.state_dict()
    table = key_table(model)
    missing = [t for k, t in table.items() if t not in state and not k.endswith("num_batches_tracked")]
    unexpected = sorted(set(state) - set(table.values()))
    if missing or unexpected:
        raise WeightsError(f"{source}: torchvision state dict does not fit {getattr(model, 'model_name', '')}: "
                           f"missing {missing[:4]}, unexpected {unexpected[:4]}")
    new = {}
    for key, theirs in table.items():
        t = state.get(theirs)
        if t is None:
            new[key] = torch.zeros_like(ours[key])
            continue
        if t.shape != ours[key].shape:
            raise WeightsError(f"{source}: tensor {theirs} has shape {tuple(t.shape)}, our {key} needs "
                               f"{tuple(ours[key].shape)}")
        new[key] = t.to(ours[key].dtype)
    model.load_state_dict(new, strict=True)


def _is_torchvision(state: Mapping[str, torch.Tensor]) -> bool:
    return "backbone.0.0.weight" in state


def _checkpoint_options(state: Mapping[str, torch.Tensor]) -> tuple[int, dict[str, Any]]:
    """Class count and the options a torchvision checkpoint needs."""
    if "classifier.cbr.0.weight" in state:
        return int(state["classifier.low_classifier.weight"].shape[0]), {}
    if "classifier.4.weight" in state:
        return int(state["classifier.4.weight"].shape[0]), {"aux": "aux_classifier.0.weight" in state}
    raise WeightsError("not a torchvision LR-ASPP or DeepLabV3 state dict (no classifier.cbr / classifier.4 keys)")


def _is_path(pretrained: Any) -> bool:
    text = os.fspath(pretrained)
    return isinstance(pretrained, os.PathLike) or "/" in text or os.sep in text or \
        text.endswith((".pth", ".pt", ".bin", ".safetensors")) or Path(text).is_file()


def get_tag(name: str, tag: str | bool) -> WeightTag:
    if tag is True:
        found = [t for t in TAGS.values() if t.model == name]
        if not found:
            raise WeightsError(f"no official weights for {name}; models with official weights: "
                               f"{', '.join(sorted({t.model for t in TAGS.values()}))}. Pass a checkpoint file, "
                               "or pretrained_backbone=... for an ImageNet backbone")
        return found[0]
    full = tag if str(tag).startswith(f"{name}.") else f"{name}.{tag}"
    if full not in TAGS:
        known = ", ".join(t.tag for t in TAGS.values() if t.model == name) or "none"
        raise WeightsError(f"{name} has no weights tagged {tag!r}; its tags: {known}")
    return TAGS[full]


def load_pretrained(name: str, pretrained: Any, *, num_classes: int | None = None, in_chans: int = 3,
                    progress: bool = False, **options: Any) -> SegmentationModel:
    """``create_model(name, pretrained=...)`` for a segmentation model: ``True`` or a
    tag (torchvision's COCO-with-VOC-labels weights), or a checkpoint file in
    torchvision's layout or ours (:func:`mobilenet.weights.save_weights`)."""
    from ..registry import create_model, get_spec

    if pretrained is not True and _is_path(pretrained):
        path = Path(pretrained)
        state, meta = read_checkpoint(path)
        source = str(path)
        cfg = {"preprocess": SEG_PREPROCESS.to_dict(), "labels": None, "source": source}
    else:
        tag = get_tag(name, pretrained)
        path = download(tag.url, tag.sha256, tag.filename, progress=progress)
        state, meta = read_checkpoint(path)
        source = tag.name
        cfg = {"preprocess": tag.preprocess.to_dict(), "labels": None, "source": tag.name, "url": tag.url,
               "licence": tag.licence}
    if meta:  # our own file: its metadata rebuilds the model
        if meta.get("arch") != "SegmentationModel":
            raise WeightsError(f"{source}: holds a {meta.get('arch')}, not a segmentation model")
        fixed = set(get_spec(name).kwargs)
        args = {k: v for k, v in meta["arch_args"].items() if k not in fixed | {"n_classes", "input_channel"}}
        if "aspp_rates" in args:
            args["aspp_rates"] = tuple(args["aspp_rates"])
        classes = int(meta["arch_args"]["n_classes"])
        model = create_model(name, num_classes=classes, in_chans=in_chans, **{**args, **options})
        model.load_state_dict(state, strict=True)
        cfg.update(preprocess=meta.get("preprocess") or cfg["preprocess"], labels=meta.get("labels"))
    else:
        if not _is_torchvision(state):
            raise WeightsError(f"{source}: not a segmentation checkpoint in torchvision's layout or ours "
                               f"(keys {', '.join(list(state)[:3])}, ...)")
        classes, implied = _checkpoint_options(state)
        model = create_model(name, num_classes=classes, in_chans=in_chans, **{**implied, **options})
        from_torchvision_into(model, state, source)
        cfg["labels"] = list(VOC_LABELS) if classes == len(VOC_LABELS) else None
    if num_classes is not None and num_classes != model.num_classes:
        model.reset_classifier(num_classes)
        cfg["labels"] = None
    model.model_name = name
    model.pretrained_cfg = cfg
    return model.eval()


# -- an ImageNet classifier as the backbone of a new dense model --------------------------
def load_backbone_classifier(backbone: str, pretrained: Any) -> nn.Module:
    """The classifier ``pretrained`` names (a tag, ``True`` or a file; ``.tflite`` files
    through :func:`mobilenet.weights.load_tflite`), checked to be ``backbone``."""
    from ..registry import create_model

    if not isinstance(pretrained, (bool, str, os.PathLike)) or pretrained == "":
        raise TypeError(f"pretrained_backbone must be True, a tag or a file path, got {pretrained!r}")
    if pretrained is not True and str(pretrained).endswith(".tflite"):
        from ..weights import load_tflite

        classifier, info = load_tflite(pretrained)
        found = info.get("model_name")
        if found != backbone:
            raise WeightsError(f"{pretrained}: holds {found or 'a MobileNet with no registered name'}, not {backbone}; "
                               f"pass backbone={found!r} (e.g. create_model('lraspp', backbone={found!r}, ...))")
        return classifier
    try:
        return create_model(backbone, pretrained=pretrained)
    except WeightsError as exc:
        raise WeightsError(f"pretrained_backbone for {backbone}: {exc}") from None


def copy_backbone(model: SegmentationModel, classifier: nn.Module) -> None:
    """Every backbone tensor from ``classifier`` (the head's layers are left fresh)."""
    theirs = classifier.state_dict()
    ours = model.backbone.state_dict()
    missing = [k for k in ours if k not in theirs]
    wrong = [k for k in ours if k in theirs and theirs[k].shape != ours[k].shape]
    if missing or wrong:
        raise WeightsError(f"the pretrained backbone does not fit this model's backbone: missing {missing[:3]}, "
                           f"other shapes {wrong[:3]} (reduced_tail=True changes the last stage: it cannot "
                           "take ImageNet weights there)")
    model.backbone.load_state_dict({k: theirs[k] for k in ours}, strict=True)
    cfg = getattr(classifier, "pretrained_cfg", None) or {}
    pre = Preprocess.from_dict(cfg["preprocess"]) if cfg.get("preprocess") else Preprocess()
    model.pretrained_cfg = {
        "preprocess": Preprocess(resolution=SEG_PREPROCESS.resolution, crop_pct=1.0, interpolation=pre.interpolation,
                                 mean=pre.mean, std=pre.std, crop_mode="resize").to_dict(),
        "labels": None,
        "source": f"backbone: {cfg.get('source', 'pretrained classifier')}",
    }
