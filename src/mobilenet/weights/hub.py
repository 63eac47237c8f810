"""Official checkpoints by tag, downloaded into the torch hub cache, and any
local checkpoint file, made into our models by the same code path.

A tag is ``<our model name>.<tag>``, e.g. ``mobilenet_v2_100.tv2_in1k``. Its
URL, digest, top-1 and preprocessing come from :mod:`mobilenet.published`.
A download is streamed into a temporary file beside its place in the cache,
checked (length, sha256, readable as a checkpoint) and only then renamed into
place, so a failed or truncated download leaves nothing behind. ``file://``
URLs and plain paths go through the same code, which is how the tests serve
their own files.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..files import atomic_path
from ..images import Preprocess, imagenet_labels
from ..published import WEIGHT_SOURCES, WeightSource
from .store import METADATA_KEY, WeightsError, check_finite

_HEX = re.compile(r"[0-9a-f]+")
_LEGACY_HASH = re.compile(r"-([0-9a-f]{8,})\.pth$")
CHUNK = 1 << 20


@dataclass(frozen=True)
class WeightTag:
    """One official checkpoint, as ``create_model(model, pretrained=tag)`` uses it."""

    model: str  # our registry name
    tag: str  # e.g. "tv2_in1k", "ra_in1k", "tf_in1k"
    source: str  # "torchvision" | "timm"
    url: str
    sha256: str  # full digest, or a prefix of it (torch hub's -xxxxxxxx), or "" when none is published
    licence: str
    top1: float | None
    preprocess: Preprocess
    original_name: str  # the name in its own library, e.g. "tf_mobilenetv3_large_100.in1k"
    tf_ported: bool = False  # Google's TF weights: needs padding="same" and BN eps 1e-3
    extra_data: bool = False  # trained on more than ImageNet-1k
    note: str = ""

    @property
    def name(self) -> str:
        return f"{self.model}.{self.tag}"

    @property
    def filename(self) -> str:
        """The file's name in the cache: torchvision's own (so its downloads are
        shared), else one unique per tag."""
        base = self.url.rsplit("/", 1)[-1]
        if base == "model.safetensors":
            return f"{self.original_name}.safetensors"
        return base

    @property
    def verified(self) -> str:
        if len(self.sha256) == 64:
            return "sha256"
        return f"sha256 prefix {self.sha256}" if self.sha256 else "none published"

    def arch_options(self) -> dict[str, Any]:
        """The options our model needs to compute what these weights computed."""
        if self.tf_ported:
            return {"padding": "same", "bn_eps": 1e-3}
        return {"bn_eps": 1e-5} if self.source == "timm" else {}


def _tag_of(ws: WeightSource) -> WeightTag:
    tf_ported = ws.original_name.startswith("tf_")
    if ws.source == "torchvision":
        tag = {"IMAGENET1K_V1": "tv_in1k", "IMAGENET1K_V2": "tv2_in1k"}[ws.tag]
        url, sha = ws.url, ws.sha256_or_prefix
    else:
        tag = f"tf_{ws.tag}" if tf_ported else ws.tag
        legacy = _LEGACY_HASH.search(ws.legacy_url or "")
        if len(ws.sha256_or_prefix) == 64 or not legacy:
            url, sha = ws.url, ws.sha256_or_prefix  # the hub's safetensors
        else:
            url, sha = ws.legacy_url, legacy.group(1)  # timm's release file, named by its sha256 prefix
    preprocess = Preprocess(resolution=ws.crop, crop_pct=ws.crop / ws.resize, interpolation=ws.interpolation,
                            mean=tuple(ws.mean), std=tuple(ws.std))
    return WeightTag(ws.model, tag, ws.source, url, sha, ws.licence, ws.top1, preprocess, ws.original_name
                     if "." in ws.original_name else f"{ws.original_name}.{ws.tag}",
                     tf_ported, "in21k" in ws.tag or "in12k" in ws.tag, ws.note)


TAGS: dict[str, WeightTag] = {t.name: t for t in map(_tag_of, WEIGHT_SOURCES)}


def tags_for(model: str) -> list[WeightTag]:
    return [t for t in TAGS.values() if t.model == model]


def default_tag(model: str) -> WeightTag:
    """``pretrained=True``: the best published top-1 trained on ImageNet-1k alone,
    preferring a checkpoint whose digest we can check."""
    candidates = [t for t in tags_for(model) if not t.extra_data]
    if not candidates:
        with_weights = sorted({t.model for t in TAGS.values()})
        raise WeightsError(
            f"no official weights for {model}; models with official weights: {', '.join(with_weights)}. "
            "Pass a local checkpoint instead (pretrained=PATH), or import a TFLite file (mobilenet import-tflite)"
        )
    return max(candidates, key=lambda t: (bool(t.sha256), t.top1 or 0.0))


def get_tag(model: str, tag: str | bool) -> WeightTag:
    if tag is True:
        return default_tag(model)
    name = tag if str(tag).startswith(f"{model}.") else f"{model}.{tag}"
    if name not in TAGS:
        known = ", ".join(t.tag for t in tags_for(model)) or "none"
        raise WeightsError(f"{model} has no weights tagged {tag!r}; its tags: {known} "
                           "(`mobilenet info --weights` lists every tag)")
    return TAGS[name]


# -- downloading ---------------------------------------------------------------------
def cache_dir() -> Path:
    """Where checkpoints are kept: torch hub's ``checkpoints`` folder, as torchvision uses."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def sha256_of(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _check_digest(digest: str, expected: str, what: str) -> None:
    expected = expected.lower()
    if expected and not digest.startswith(expected):
        raise WeightsError(f"{what} has sha256 {digest}, expected {expected}{'...' if len(expected) < 64 else ''}: "
                           "corrupted or not the published file")


def _as_url(url_or_path: str) -> str:
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", url_or_path):
        return url_or_path
    return Path(url_or_path).resolve().as_uri()


def download(url: str, sha256: str = "", filename: str | None = None, *, folder: str | os.PathLike | None = None,
             progress: bool = False) -> Path:
    """The file at ``url`` (http(s), ``file://`` or a local path) in the cache
    ``folder``, downloaded unless already there; its sha256 must start with
    ``sha256`` ("" skips the check, with a warning). Raises :class:`WeightsError`
    saying what to download and where to put it when that cannot be done."""
    folder = Path(folder) if folder is not None else cache_dir()
    dest = folder / (filename or url.rsplit("/", 1)[-1])
    expected = sha256.lower()
    if expected and not _HEX.fullmatch(expected):
        raise ValueError(f"sha256 must be hex digits, got {sha256!r}")
    by_hand = (f"Download {url} by hand and save it as {dest}"
               + (f" (its sha256 starts with {expected})" if expected else ""))
    if dest.is_file():
        _check_digest(sha256_of(dest), expected, f"cached file {dest}")
        return dest
    try:
        response = urllib.request.urlopen(_as_url(url), timeout=60)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise WeightsError(f"cannot download {url} ({reason}). {by_hand}") from None
    with response, atomic_path(dest) as tmp:
        length = response.headers.get("Content-Length")
        h = hashlib.sha256()
        size = 0
        bar = _progress(int(length) if length else None, dest.name) if progress else None
        try:
            with open(tmp, "wb") as out:
                for chunk in iter(lambda: response.read(CHUNK), b""):
                    out.write(chunk)
                    h.update(chunk)
                    size += len(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
        except (OSError, http.client.HTTPException) as exc:
            raise WeightsError(f"download of {url} failed after {size} bytes ({exc}). {by_hand}") from None
        finally:
            if bar is not None:
                bar.close()
        if length is not None and size != int(length):
            raise WeightsError(f"download of {url} is truncated: {size} of {length} bytes. {by_hand}")
        _check_digest(h.hexdigest(), expected, f"download of {url}")
        read_checkpoint(tmp, name=url)  # must be a readable checkpoint before it enters the cache
        if not expected:
            warnings.warn(f"{url}: no published sha256 to check it against; its sha256 is {h.hexdigest()}",
                          stacklevel=2)
    return dest


def _progress(total: int | None, name: str):
    from tqdm import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, desc=name, leave=False)


# -- reading checkpoint files --------------------------------------------------------------
def torch_load(path: str | os.PathLike, name: str | None = None) -> Any:
    """``torch.load(weights_only=True)``, its refusals in our words: torch's own
    message advises turning weights_only off, which we never do (it runs the file's code)."""
    import pickle

    name = name or str(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if found:
            raise WeightsError(
                f"{name}: refused to unpickle it: it refers to {found.group(1)}, not only tensors, and loading it "
                "could run code. Save the state dict alone (torch.save(model.state_dict(), FILE)) or as "
                ".safetensors") from None
        raise WeightsError(f"{name}: not a checkpoint we read (.safetensors, or a .pth/.pt/.bin state dict "
                           "saved with torch.save)") from None
    except Exception as exc:  # torch.load raises many types for a file that is not its own
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "weights_only" in first or "pickle" in first.lower():
            first = type(exc).__name__
        raise WeightsError(f"{name}: not a readable checkpoint (.safetensors, .pth or .bin): {first}") from None


def read_checkpoint(path: str | os.PathLike, name: str | None = None) -> tuple[dict[str, torch.Tensor], dict | None]:
    """``(tensors, our metadata or None)`` from a .safetensors, .pth or .bin file.
    Pickles are read with ``torch.load(weights_only=True)`` only."""
    from .convert import unwrap

    path = Path(path)
    name = name or str(path)
    if not path.is_file():
        raise WeightsError(f"{name}: no such checkpoint file")
    with open(path, "rb") as f:
        head = f.read(9)
    # safetensors: an 8-byte header length, then the JSON header. Anything else is
    # handed to torch.load (a zip from torch.save, or a legacy pickle).
    if not (len(head) == 9 and head[8:9] == b"{"):
        state = unwrap(torch_load(path, name))
        check_finite(state, name)
        return state, None
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = (f.metadata() or {}).get(METADATA_KEY)
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises its own error types for bad headers or short files
        raise WeightsError(f"{name}: not a readable checkpoint (.safetensors, .pth or .bin): {exc}") from None
    state = unwrap(state)
    check_finite(state, name)
    if not meta:
        return state, None
    from .metadata import parse, validate
    from .store import architectures

    return state, validate(parse(meta, name), name, architectures())


# -- create_model(name, pretrained=...) -------------------------------------------------------
_HEAD_OPTIONS = ("features_only", "out_indices")


def _is_path(pretrained: str | os.PathLike) -> bool:
    text = os.fspath(pretrained)
    return isinstance(pretrained, os.PathLike) or "/" in text or os.sep in text or \
        text.endswith((".pth", ".pt", ".bin", ".safetensors", ".tflite", ".onnx", ".pte", ".pt2", ".ts", ".xml")) or \
        Path(text).is_file()


def _file_options(name: str, meta: dict) -> dict[str, Any]:
    """Architecture options saved in our metadata that ``create_model(name)`` accepts."""
    from ..registry import model_options

    allowed = set(model_options(name)) - {"dropout", *_HEAD_OPTIONS}
    return {k: v for k, v in (meta.get("arch_args") or {}).items() if k in allowed}


def _checkpoint_options(path: Path, fmt: str, options: dict[str, Any]) -> dict[str, Any]:
    """BN eps and padding a foreign checkpoint was trained with, where its keys cannot
    tell: timm's ``tf_*`` ports of Google's weights use TensorFlow's SAME padding and
    BN eps 1e-3, its own trainings symmetric padding and 1e-5. Either the file is named
    as timm names the ports, or ``padding="same"`` says it is one."""
    if fmt != "timm":
        return {}
    tf_ported = path.name.startswith("tf_") or options.get("padding") == "same"
    if path.name.startswith("tf_") and options.get("padding", "same") != "same":
        raise WeightsError(f"{path}: named as timm's TensorFlow ports (tf_*), which need padding='same', "
                           f"but padding={options['padding']!r} was asked; rename the file if it is not one")
    return {"padding": "same", "bn_eps": 1e-3} if tf_ported else {"bn_eps": 1e-5}


def _from_tflite(path: Path, name: str) -> tuple[dict, str, dict[str, Any], dict[str, Any]]:
    """A TFLite classifier as a state dict of ours for ``name``, its options and cfg."""
    from .tflite import load_tflite

    net, info = load_tflite(path)
    found = info.get("model_name")
    if found != name:
        raise WeightsError(f"{path}: holds {found or info.get('arch')} weights, not {name}"
                           + (f"; use create_model({found!r}, pretrained=...)" if found else ""))
    labels = net.pretrained_cfg.get("labels")
    if labels is None and info["num_classes"] == 1001:  # Google's classifiers: output 0 is "background"
        labels = ["background", *imagenet_labels()]
    cfg = {"preprocess": net.pretrained_cfg["preprocess"], "labels": labels, "source": str(path)}
    return net.state_dict(), "mobilenet", {"padding": "same"}, cfg


def load_pretrained(name: str, pretrained: bool | str | os.PathLike, *, num_classes: int | None = None,
                    in_chans: int = 3, progress: bool = False, **options: Any) -> nn.Module:
    """``create_model(name, pretrained=...)``: ``True`` (the default tag), a tag,
    or a checkpoint file in our, torchvision's or timm's layout."""
    from ..registry import create_model
    from .convert import detect_format, from_state_dict

    if pretrained is not True and _is_path(pretrained):
        from .sources import kind_of, resolve, runtime_only

        if not Path(pretrained).exists():
            raise WeightsError(f"{pretrained}: no such checkpoint file")
        path = resolve(pretrained)
        kind = kind_of(path)
        if kind == "runtime":
            raise runtime_only(path)
        if kind == "tflite":
            state, fmt, implied, cfg = _from_tflite(path, name)
        else:
            state, meta = read_checkpoint(path)
            fmt = detect_format(state)
            if meta:
                implied = _file_options(name, meta)
                cfg = {"preprocess": meta.get("preprocess") or Preprocess().to_dict(),
                       "labels": meta.get("labels"), "source": str(path)}
            else:
                implied = _checkpoint_options(path, fmt, options)
                cfg = {"preprocess": Preprocess().to_dict(), "labels": None, "source": str(path),
                       "note": "preprocessing assumed (the file does not record it)"}
    else:
        tag = get_tag(name, pretrained)
        path = download(tag.url, tag.sha256, tag.filename, progress=progress)
        state, _ = read_checkpoint(path)
        fmt = detect_format(state)
        implied = tag.arch_options()
        cfg = {"preprocess": tag.preprocess.to_dict(), "labels": None, "source": tag.name, "url": tag.url,
               "licence": tag.licence, "top1": tag.top1}
    head = {k: options.pop(k) for k in _HEAD_OPTIONS if k in options}
    model = from_state_dict(state, name, fmt, **{**implied, **options})
    classes = model.num_classes
    if cfg["labels"] is None and classes == 1000:
        cfg["labels"] = imagenet_labels()
    if in_chans != model.stem.conv.in_channels:
        raise WeightsError(f"{cfg['source']}: the weights take {model.stem.conv.in_channels} input channels, "
                           f"not in_chans={in_chans}")
    if head.get("features_only"):
        backbone = create_model(name, num_classes=classes, in_chans=in_chans, **{**implied, **options, **head})
        wanted = backbone.state_dict()
        backbone.load_state_dict({k: v for k, v in model.state_dict().items() if k in wanted}, strict=True)
        model = backbone.eval()
        cfg["labels"] = None
    elif num_classes is not None and num_classes != classes:
        model.reset_classifier(num_classes)
        cfg["labels"] = None
    model.model_name = name
    model.pretrained_cfg = cfg
    return model
