"""One answer to "which weight files do we take": every command and
``create_model(name, pretrained=FILE)`` read the same files through here.

- a run folder (its ``weights.safetensors``) and our ``.safetensors``;
- torchvision's and timm's checkpoints (``.pth``, ``.pt``, ``.bin``, ``.safetensors``),
  the model found from their shapes when not named;
- Google's TFLite classifiers (``.tflite``);
- files written by ``mobilenet export`` / ``quantize`` (``.onnx``, ``.pte``, ``.pt2``,
  TorchScript, OpenVINO ``.xml``...: :mod:`mobilenet.runtimes`): these run in their own runtime, so commands that only run a model
  (``eval``, ``predict``) take them; those that need PyTorch weights (``export``,
  ``quantize``, ``train --pretrained``, ``create_model``) say so in one line.

Nothing here unpickles: checkpoints go through ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Literal

from torch import nn

from .store import WeightsError

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".tflite")
WEIGHTS_FILE = "weights.safetensors"  # in a run folder

Kind = Literal["ours", "checkpoint", "tflite", "runtime"]


def resolve(source: str | os.PathLike) -> Path:
    """The file ``source`` names: itself, or a run folder's weights."""
    path = Path(source)
    if path.is_dir():
        if not (path / WEIGHTS_FILE).is_file():
            raise WeightsError(f"{path}: a folder without {WEIGHTS_FILE}; is it a finished run folder?")
        path = path / WEIGHTS_FILE
    if not path.is_file():
        raise WeightsError(f"{path}: no such weights file")
    return path


def kind_of(path: Path) -> Kind:
    """What ``path`` holds, from its first bytes where they tell (not its name alone)."""
    with open(path, "rb") as f:
        head = f.read(9)
    suffix = path.suffix.lower()
    from ..runtimes import owner

    if owner(path) is not None:  # a file `mobilenet export` wrote (a .tflite only if it carries our metadata)
        return "runtime"
    if head[4:8] == b"TFL3" or suffix == ".tflite":
        return "tflite"
    if head[4:6] == b"ET" and head[6:8].isdigit():  # ExecuTorch's "ET12" under another name
        return "runtime"
    if head[:4] == b"PK\x03\x04" and _is_torchscript_or_program(path):
        return "runtime"  # a TorchScript or torch.export archive named .pt
    if len(head) == 9 and head[8:9] == b"{" and suffix == ".safetensors":
        from .store import read_metadata

        return "ours" if (read_metadata(path) or {}).get("format") else "checkpoint"
    return "checkpoint"


def _is_torchscript_or_program(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    # as the runtimes tell their archives apart from a torch.save checkpoint
    return any(n.endswith(("archive_format", "constants.pkl")) or "/code/" in n or "/models/" in n for n in names)


def runtime_only(path: Path) -> WeightsError:
    return WeightsError(
        f"{path}: a file exported for its runtime ({path.suffix or 'TorchScript'}), not PyTorch weights: "
        "`mobilenet eval` and `predict` run it; to export, quantize or fine-tune, give the .safetensors "
        "it was made from")


def load_weights_file(source: str | os.PathLike, model_name: str | None = None, *,
                      runtime: bool = False) -> nn.Module:
    """The model in ``source`` (any file listed above), in eval mode, with
    ``pretrained_cfg`` (preprocessing, labels). ``model_name`` picks the
    architecture of a foreign checkpoint (found from its shapes otherwise); our
    files and TFLite files say their own. ``runtime=True`` also takes exported
    files, as a callable module."""
    path = resolve(source)
    kind = kind_of(path)
    if kind == "runtime":
        if not runtime:
            raise runtime_only(path)
        from ..runtimes import ExportError, load_artifact

        try:
            return load_artifact(path).as_module()
        except ExportError as exc:
            raise WeightsError(str(exc) if str(path) in str(exc) else f"{path}: {exc}") from None
    if kind == "tflite":
        from .store import check_finite
        from .tflite import load_tflite

        model = load_tflite(path)[0]
        check_finite(model.state_dict(), path)
        return model
    if kind == "ours":
        from .store import load_weights

        return load_weights(path)
    from ..registry import create_model
    from .convert import detect_format, infer_model_name
    from .hub import read_checkpoint

    if model_name is None:
        state, _ = read_checkpoint(path)
        try:
            model_name = infer_model_name(state, detect_format(state))
        except WeightsError as exc:
            raise WeightsError(f"{path}: {str(exc).split(';')[0]}; it is not a checkpoint of a registered "
                               "MobileNet (`mobilenet info` lists them)") from None
    return create_model(model_name, pretrained=path).eval()
