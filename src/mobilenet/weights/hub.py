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
        import pickle

        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unsafe pickle"
            raise WeightsError(f"{name}: refused to unpickle it: it holds more than tensors ({first})") from None
        except Exception as exc:  # torch.load raises many types for a file that is not its own
            raise WeightsError(f"{name}: not a readable checkpoint (.safetensors, .pth or .bin): "
                               f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}"
                               ) from None
        state = unwrap(state)
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
        text.endswith((".pth", ".pt", ".bin", ".safetensors")) or Path(text).is_file()


def _file_options(name: str, meta: dict) -> dict[str, Any]:
    """Architecture options saved in our metadata that ``create_model(name)`` accepts."""
    from ..registry import model_options

    allowed = set(model_options(name)) - {"dropout", *_HEAD_OPTIONS}
    return {k: v for k, v in (meta.get("arch_args") or {}).items() if k in allowed}


def load_pretrained(name: str, pretrained: bool | str | os.PathLike, *, num_classes: int | None = None,
                    in_chans: int = 3, progress: bool = False, **options: Any) -> nn.Module:
    """``create_model(name, pretrained=...)``: ``True`` (the default tag), a tag,
    or a checkpoint file in our, torchvision's or timm's layout."""
    from ..registry import create_model
    from .convert import detect_format, from_state_dict

    if pretrained is not True and _is_path(pretrained):
        path = Path(pretrained)
        state, meta = read_checkpoint(path)
        fmt = detect_format(state)
        if meta:
            implied = _file_options(name, meta)
            cfg = {"preprocess": meta.get("preprocess") or Preprocess().to_dict(), "labels": meta.get("labels"),
                   "source": str(path)}
        else:
            implied = {"bn_eps": 1e-5} if fmt == "timm" else {}
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
