"""State dicts in torchvision's and timm's layouts, to and from ours.

One explicit table per foreign format says which of their submodules holds each
of ours; tensor names inside a submodule (``weight``, ``running_var``...) are the
same on both sides. The same table serves both directions, and every one of our
keys must be covered, so a layout the table does not know fails loudly instead
of loading half a network.

Numerics to respect: torchvision's V2 and timm's non-``tf_`` models use
BatchNorm eps 1e-5, torchvision's V3 and timm's ``tf_`` ports 1e-3; the
``tf_`` ports also need TensorFlow's SAME padding (``padding="same"``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch
from torch import nn

from ..blocks_v4 import FusedInvertedBottleneck, MobileMQA, UniversalInvertedBottleneck
from ..layers import DepthwiseSeparable, InvertedResidual
from .store import WeightsError

Format = Literal["mobilenet", "torchvision", "timm"]
StateDict = Mapping[str, torch.Tensor]

# -- torchvision --------------------------------------------------------------
# Their ``features`` is one flat list: stem, the blocks, the last 1x1 conv.
TORCHVISION_TOP = {
    "stem.conv": "features.0.0",
    "stem.bn": "features.0.1",
    # "blocks.{i}" -> "features.{i + 1}", "last_conv" -> "features.{n_blocks + 1}"
}
TORCHVISION_HEAD = {
    "MobileNetV2": {"classifier": "classifier.1"},  # classifier = [Dropout, Linear]
    "MobileNetV3": {"head_fc": "classifier.0", "classifier": "classifier.3"},  # [Linear, act, Dropout, Linear]
}
# Inside one block, keyed by (has expansion conv, has squeeze-excite).
# V2's InvertedResidual.conv: [expand ConvBNReLU], dw ConvBNReLU, project Conv2d, BatchNorm.
TORCHVISION_V2_BLOCK = {
    (True, False): {
        "expand.conv": "conv.0.0", "expand.bn": "conv.0.1",
        "dw.conv": "conv.1.0", "dw.bn": "conv.1.1",
        "project.conv": "conv.2", "project.bn": "conv.3",
    },
    (False, False): {
        "dw.conv": "conv.0.0", "dw.bn": "conv.0.1",
        "project.conv": "conv.1", "project.bn": "conv.2",
    },
}
# V3's InvertedResidual.block: [expand], dw, [SqueezeExcitation(fc1, fc2)], project; each a Conv-BN(-act).
TORCHVISION_V3_BLOCK = {
    (True, True): {
        "expand.conv": "block.0.0", "expand.bn": "block.0.1",
        "dw.conv": "block.1.0", "dw.bn": "block.1.1",
        "se.fc1": "block.2.fc1", "se.fc2": "block.2.fc2",
        "project.conv": "block.3.0", "project.bn": "block.3.1",
    },
    (True, False): {
        "expand.conv": "block.0.0", "expand.bn": "block.0.1",
        "dw.conv": "block.1.0", "dw.bn": "block.1.1",
        "project.conv": "block.2.0", "project.bn": "block.2.1",
    },
    (False, True): {
        "dw.conv": "block.0.0", "dw.bn": "block.0.1",
        "se.fc1": "block.1.fc1", "se.fc2": "block.1.fc2",
        "project.conv": "block.2.0", "project.bn": "block.2.1",
    },
    (False, False): {
        "dw.conv": "block.0.0", "dw.bn": "block.0.1",
        "project.conv": "block.1.0", "project.bn": "block.1.1",
    },
}

# -- timm -------------------------------------------------------------------------
TIMM_TOP = {"stem.conv": "conv_stem", "stem.bn": "bn1", "classifier": "classifier"}
TIMM_HEAD = {
    "MobileNetV1": {},  # no last conv: the last block feeds the pool
    "MobileNetV2": {"last_conv.conv": "conv_head", "last_conv.bn": "bn2"},
    # V3: the last 1x1 conv is a stage of its own ("cn" block); head_fc is their conv_head (1x1 conv, bias).
    "MobileNetV3": {"last_conv.conv": "blocks.{last}.0.conv", "last_conv.bn": "blocks.{last}.0.bn1",
                    "head_fc": "conv_head"},
    # V4: as V3, and the head conv has a BatchNorm (+ act) instead of a bias.
    "MobileNetV4": {"last_conv.conv": "blocks.{last}.0.conv", "last_conv.bn": "blocks.{last}.0.bn1",
                    "head_fc": "conv_head", "head_norm": "norm_head"},
}
# timm groups blocks in stages, "blocks.{stage}.{index}" (its arch_def rows); the
# stage lengths are the runs of equal output width in each paper table.
TIMM_STAGES = {
    "MobileNetV1": (1, 2, 2, 6, 2),
    "MobileNetV2": (1, 2, 3, 4, 3, 3, 1),
    "large": (1, 2, 3, 4, 2, 3),
    "small": (1, 2, 3, 2, 3),
}
# timm's DepthwiseSeparableConv (V1 units, and V2/V3 blocks without expansion): conv_dw, bn1, [se], conv_pw, bn2.
TIMM_DS_V1 = {"dw.conv": "conv_dw", "dw.bn": "bn1", "pw.conv": "conv_pw", "pw.bn": "bn2"}
TIMM_DS = {"dw.conv": "conv_dw", "dw.bn": "bn1", "se.fc1": "se.conv_reduce", "se.fc2": "se.conv_expand",
           "project.conv": "conv_pw", "project.bn": "bn2"}
# timm's InvertedResidual: conv_pw, bn1, conv_dw, bn2, [se], conv_pwl, bn3.
TIMM_IR = {"expand.conv": "conv_pw", "expand.bn": "bn1", "dw.conv": "conv_dw", "dw.bn": "bn2",
           "se.fc1": "se.conv_reduce", "se.fc2": "se.conv_expand", "project.conv": "conv_pwl", "project.bn": "bn3"}

# V4 (timm's mobilenetv4_*: a new stage at each stride-2 row, the 1x1 conv to 960 a stage of its
# own). Conv rows are timm's ConvBnAct (conv, bn1); the rest, by block:
TIMM_V4_CONV = {"conv": "conv", "bn": "bn1"}
TIMM_V4_FUSED = {"expand.conv": "conv_exp", "expand.bn": "bn1", "project.conv": "conv_pwl", "project.bn": "bn2"}
TIMM_V4_UIB = {"start_dw.conv": "dw_start.conv", "start_dw.bn": "dw_start.bn", "expand.conv": "pw_exp.conv",
               "expand.bn": "pw_exp.bn", "mid_dw.conv": "dw_mid.conv", "mid_dw.bn": "dw_mid.bn",
               "project.conv": "pw_proj.conv", "project.bn": "pw_proj.bn", "layer_scale": "layer_scale"}
TIMM_V4_MQA = {"norm": "norm", "query": "attn.query.proj", "key_down.conv": "attn.key.down_conv",
               "key_down.bn": "attn.key.norm", "key": "attn.key.proj", "value_down.conv": "attn.value.down_conv",
               "value_down.bn": "attn.value.norm", "value": "attn.value.proj", "output": "attn.output.proj",
               "layer_scale": "layer_scale"}
TIMM_V4_BLOCKS: dict[type, dict[str, str]] = {FusedInvertedBottleneck: TIMM_V4_FUSED,
                                              UniversalInvertedBottleneck: TIMM_V4_UIB, MobileMQA: TIMM_V4_MQA}

# Format detection: a key only that layout has.
SIGNATURES: dict[str, str] = {"mobilenet": "stem.conv.weight", "torchvision": "features.0.0.weight",
                              "timm": "conv_stem.weight"}


def _has_expand(block: InvertedResidual) -> bool:
    return not isinstance(block.expand, nn.Identity)


def _has_se(block: InvertedResidual) -> bool:
    return not isinstance(block.se, nn.Identity)


def _arch(model: nn.Module) -> str:
    name = type(model).__name__
    if name not in TORCHVISION_HEAD and name not in TIMM_HEAD:
        raise TypeError(f"{name} is not a mobilenet model")
    if getattr(model, "features_only", False):
        raise ValueError("convert a full model, not a features_only one (it has no head)")
    return name


def _module_table_torchvision(model: nn.Module) -> dict[str, str]:
    arch = _arch(model)
    if arch == "MobileNetV1":
        raise ValueError("torchvision has no MobileNetV1; use to_timm / from_timm")
    if arch == "MobileNetV4":
        raise ValueError("torchvision has no MobileNetV4 (pytorch/vision#8437); use to_timm / from_timm")
    inner = TORCHVISION_V2_BLOCK if arch == "MobileNetV2" else TORCHVISION_V3_BLOCK
    table = dict(TORCHVISION_TOP)
    for i, block in enumerate(model.blocks):
        layout = inner.get((_has_expand(block), _has_se(block)))
        if layout is None:
            raise ValueError(f"torchvision's {arch} has no block with this layout (blocks.{i})")
        table.update({f"blocks.{i}.{ours}": f"features.{i + 1}.{theirs}" for ours, theirs in layout.items()})
    last = len(model.blocks) + 1
    table.update({"last_conv.conv": f"features.{last}.0", "last_conv.bn": f"features.{last}.1"})
    table.update(TORCHVISION_HEAD[arch])
    return table


def _timm_positions(model: nn.Module) -> list[tuple[int, int]]:
    arch = _arch(model)
    stages = TIMM_STAGES[model.config if arch == "MobileNetV3" else arch]
    positions = [(s, j) for s, n in enumerate(stages) for j in range(n)]
    if len(positions) != len(model.blocks):
        raise ValueError(f"timm's {arch} has {len(positions)} blocks, this model {len(model.blocks)}")
    return positions


def _timm_v4_positions(model: nn.Module) -> list[tuple[int, int]]:
    positions, stage, index = [], -1, 0
    for block in model.blocks:
        if block.stride > 1 or stage < 0:
            stage, index = stage + 1, 0
        positions.append((stage, index))
        index += 1
    return positions


def _module_table_timm(model: nn.Module) -> dict[str, str]:
    arch = _arch(model)
    if arch == "MobileNetV4":
        positions = _timm_v4_positions(model)
        table = dict(TIMM_TOP)
        for i, (block, (s, j)) in enumerate(zip(model.blocks, positions)):
            layout = TIMM_V4_BLOCKS.get(type(block), TIMM_V4_CONV)
            table.update({f"blocks.{i}.{ours}": f"blocks.{s}.{j}.{theirs}" for ours, theirs in layout.items()})
        table.update({k: v.format(last=positions[-1][0] + 1) for k, v in TIMM_HEAD[arch].items()})
        return table
    positions = _timm_positions(model)
    table = dict(TIMM_TOP)
    for i, (block, (s, j)) in enumerate(zip(model.blocks, positions)):
        if isinstance(block, DepthwiseSeparable):
            layout = TIMM_DS_V1
        else:
            layout = TIMM_IR if _has_expand(block) else TIMM_DS
            if not _has_se(block):
                layout = {k: v for k, v in layout.items() if not k.startswith("se.")}
        table.update({f"blocks.{i}.{ours}": f"blocks.{s}.{j}.{theirs}" for ours, theirs in layout.items()})
    last_stage = positions[-1][0] + 1
    table.update({k: v.format(last=last_stage) for k, v in TIMM_HEAD[arch].items()})
    return table


def key_table(model: nn.Module, fmt: Format) -> dict[str, str]:
    """Our state-dict key -> the key in ``fmt``'s layout, for every tensor of ``model``."""
    if fmt == "mobilenet":
        return {k: k for k in model.state_dict()}
    modules = {"torchvision": _module_table_torchvision, "timm": _module_table_timm}
    if fmt not in modules:
        raise ValueError(f"unknown format {fmt!r}; expected one of {sorted(SIGNATURES)}")
    return keys_from_modules(model, modules[fmt](model), f"the {fmt} key table")


def keys_from_modules(model: nn.Module, table: dict[str, str], what: str) -> dict[str, str]:
    """Every state-dict key of ``model`` renamed through ``table`` (our module -> theirs);
    ``what`` names the table in the error for a module it lacks."""
    keys: dict[str, str] = {}
    for key in model.state_dict():
        module, leaf = key.rsplit(".", 1)
        if module not in table:
            raise ValueError(f"{what} has no entry for our {module!r}")
        keys[key] = f"{table[module]}.{leaf}"
    return keys


# timm's conv_head is a 1x1 conv; our head_fc is the same weights as a Linear.
def _to_peer_tensor(fmt: str, our_key: str, t: torch.Tensor) -> torch.Tensor:
    if fmt == "timm" and our_key == "head_fc.weight":
        return t.reshape(*t.shape, 1, 1)
    return t


def _from_peer_tensor(fmt: str, our_key: str, t: torch.Tensor) -> torch.Tensor:
    if fmt == "timm" and our_key == "head_fc.weight" and t.dim() == 4:
        return t.reshape(t.shape[0], t.shape[1])
    return t


def export_state_dict(model: nn.Module, fmt: Format) -> dict[str, torch.Tensor]:
    """``model``'s weights under ``fmt``'s key names."""
    state = model.state_dict()
    return {theirs: _to_peer_tensor(fmt, ours, state[ours].detach().clone())
            for ours, theirs in key_table(model, fmt).items()}


def to_torchvision(model: nn.Module) -> dict[str, torch.Tensor]:
    """A state dict torchvision's ``mobilenet_v2`` / ``mobilenet_v3_*`` loads with strict=True."""
    return export_state_dict(model, "torchvision")


def to_timm(model: nn.Module) -> dict[str, torch.Tensor]:
    """A state dict timm's ``mobilenetv1_*`` / ``mobilenetv2_*`` / ``mobilenetv3_*`` loads with strict=True."""
    return export_state_dict(model, "timm")


def unwrap(state: Any) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint: a plain state dict, or one saved under
    ``state_dict`` / ``model`` as training scripts do."""
    if isinstance(state, Mapping):
        for key in ("state_dict", "model", "state_dict_ema"):
            if key in state and isinstance(state[key], Mapping):
                state = state[key]
                break
        tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
        if tensors:
            prefix = "module."  # saved from DataParallel / DDP
            if all(k.startswith(prefix) for k in tensors):
                tensors = {k[len(prefix):]: v for k, v in tensors.items()}
            return tensors
    raise WeightsError("the checkpoint holds no tensors (expected a state dict)")


def detect_format(state: StateDict) -> Format:
    """Which layout a state dict is in, told apart by keys only that layout has."""
    found = [fmt for fmt, key in SIGNATURES.items() if key in state]
    if len(found) != 1:
        sample = ", ".join(list(state)[:3])
        raise WeightsError(
            f"not a MobileNet state dict in a known layout (ours, torchvision or timm): "
            f"none of {', '.join(SIGNATURES.values())} among its keys ({sample}, ...)"
        )
    return found[0]  # type: ignore[return-value]


def load_into(model: nn.Module, state: StateDict, fmt: Format | None = None) -> nn.Module:
    """Copy ``state`` (in ``fmt``'s layout, detected if None) into ``model``, all
    keys and shapes checked; a missing ``num_batches_tracked`` (old checkpoints) is
    the only tolerated gap."""
    fmt = fmt or detect_format(state)
    ours = model.state_dict()
    table = key_table(model, fmt)
    missing = [theirs for k, theirs in table.items() if theirs not in state and not k.endswith("num_batches_tracked")]
    unexpected = sorted(set(state) - set(table.values()))
    if missing or unexpected:
        raise WeightsError(
            f"{fmt} state dict does not fit {getattr(model, 'model_name', type(model).__name__)}: "
            f"missing {missing[:4]}{'...' if len(missing) > 4 else ''}, "
            f"unexpected {unexpected[:4]}{'...' if len(unexpected) > 4 else ''}"
        )
    new = {}
    for key, theirs in table.items():
        if theirs not in state:
            new[key] = torch.zeros_like(ours[key])
            continue
        t = _from_peer_tensor(fmt, key, state[theirs])
        if t.shape != ours[key].shape:
            raise WeightsError(f"{fmt} tensor {theirs} has shape {tuple(t.shape)}, "
                               f"our {key} needs {tuple(ours[key].shape)}")
        new[key] = t.to(ours[key].dtype)
    model.load_state_dict(new, strict=True)
    return model


# -- building our model for a foreign state dict --------------------------------------
def _family(state: StateDict, fmt: Format) -> str:
    """The registry-name prefix of the architecture a state dict holds."""
    if fmt == "torchvision":
        return "mobilenet_v3_" if "classifier.3.weight" in state else "mobilenet_v2_"
    if fmt == "timm":
        if "norm_head.weight" in state:
            return "mobilenet_v4_"
        if "conv_head.bias" in state:
            return "mobilenet_v3_"
        return "mobilenet_v2_" if "conv_head.weight" in state else "mobilenet_v1_"
    return "mobilenet_"


def _classes_and_channels(state: StateDict, fmt: Format) -> tuple[int, int]:
    stem = {"mobilenet": "stem.conv.weight", "torchvision": "features.0.0.weight", "timm": "conv_stem.weight"}[fmt]
    head = {"mobilenet": "classifier.weight", "timm": "classifier.weight"}.get(fmt)
    if fmt == "torchvision":
        head = "classifier.3.weight" if "classifier.3.weight" in state else "classifier.1.weight"
    classes = state[head].shape[0] if head in state else 0
    return int(classes), int(state[stem].shape[1])


def _fits(model: nn.Module, state: StateDict, fmt: Format) -> bool:
    try:
        table = key_table(model, fmt)
    except ValueError:
        return False
    ours = model.state_dict()
    if set(state) - set(table.values()):
        return False
    for key, theirs in table.items():
        if theirs not in state:
            if key.endswith("num_batches_tracked"):
                continue
            return False
        if _from_peer_tensor(fmt, key, state[theirs]).shape != ours[key].shape:
            return False
    return True


def infer_model_name(state: StateDict, fmt: Format | None = None, **options: Any) -> str:
    """The registered model whose every tensor shape matches ``state``."""
    from ..registry import create_model, list_models

    fmt = fmt or detect_format(state)
    classes, channels = _classes_and_channels(state, fmt)
    for name in list_models(_family(state, fmt) + "*"):
        with torch.device("meta"):
            candidate = create_model(name, num_classes=classes, in_chans=channels, **options)
        if _fits(candidate, state, fmt):
            return name
    raise WeightsError(f"no registered model has the shapes of this {fmt} state dict "
                       f"({classes} classes); pass the model name")


def from_state_dict(state: StateDict, name: str | None = None, fmt: Format | None = None,
                    **options: Any) -> nn.Module:
    """Our model holding ``state`` (any known layout); ``name`` is inferred from
    the shapes when not given; ``options`` go to ``create_model``."""
    from ..registry import create_model

    state = unwrap(state)
    fmt = fmt or detect_format(state)
    name = name or infer_model_name(state, fmt, **options)
    classes, channels = _classes_and_channels(state, fmt)
    model = create_model(name, num_classes=classes, in_chans=channels, **options)
    return load_into(model, state, fmt).eval()


def from_torchvision(state: StateDict, name: str | None = None, **options: Any) -> nn.Module:
    """Our model from a torchvision MobileNetV2/V3 state dict (BN eps as torchvision's:
    1e-5 for V2, 1e-3 for V3, which are our defaults)."""
    return from_state_dict(state, name, "torchvision", **options)


def from_timm(state: StateDict, name: str | None = None, *, tf_ported: bool = False, **options: Any) -> nn.Module:
    """Our model from a timm MobileNet state dict. ``tf_ported=True`` for timm's
    ``tf_*`` ports of Google's checkpoints: TensorFlow SAME padding and BN eps 1e-3;
    otherwise timm's BN eps 1e-5."""
    options.setdefault("bn_eps", 1e-3 if tf_ported else 1e-5)
    if tf_ported:
        options.setdefault("padding", "same")
    return from_state_dict(state, name, "timm", **options)
