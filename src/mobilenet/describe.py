"""A live model printed as its paper's architecture table: one row per stem, block,
last conv and head layer, with the input size each sees (``mobilenet info --layers``).

Rows come from the modules themselves (each block's ``describe()``) and input sizes
from a real forward pass, so the table shows what is built, not a second copy of
the configs.
"""

from __future__ import annotations

import torch
from torch import nn

COLUMNS = ("input", "operator", "start_dw", "mid_dw", "exp", "out", "se", "act", "stride", "module")


def _size(shape: torch.Size) -> str:
    return f"{shape[-2]}x{shape[-1]}x{shape[1]}" if len(shape) == 4 else f"1x1x{shape[-1]}"


def layer_rows(model: nn.Module, resolution: int) -> list[dict]:
    """One dict per row (keys: COLUMNS; absent values None) for ``model`` at ``resolution``."""
    if getattr(model, "features_only", False):
        raise ValueError("describe a full model, not a features_only one")
    named = model._feature_modules()
    pooled = [("pool", model.pool)]
    head = [(n, getattr(model, n)) for n in ("head_fc", "classifier") if not isinstance(getattr(model, n), nn.Identity)]
    inputs: dict[str, torch.Size] = {}
    hooks = [m.register_forward_pre_hook(lambda mod, args, n=n: inputs.__setitem__(n, args[0].shape))
             for n, m in named + pooled + head]
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, model.stem.conv.in_channels, resolution, resolution))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    rows = []
    for name, module in named:
        rows.append({**dict.fromkeys(COLUMNS), **module.describe(), "input": _size(inputs[name]), "module": name})
    rows.append({**dict.fromkeys(COLUMNS), "input": _size(inputs["pool"]), "operator": "avgpool",
                 "module": "pool"})
    for name, layer in head:
        op = "classifier (fc)" if name == "classifier" else (
            "conv2d 1x1, BN" if not isinstance(getattr(model, "head_norm", nn.Identity()), nn.Identity)
            else "conv2d 1x1, NBN")
        act = None
        if name == "head_fc":
            from .layers import act_name

            act = act_name(model.head_act) if not isinstance(model.head_act, nn.Identity) else None
        rows.append({**dict.fromkeys(COLUMNS), "input": _size(inputs[name]), "operator": op,
                     "out": layer.out_features, "act": act, "stride": 1, "module": name})
    return rows
