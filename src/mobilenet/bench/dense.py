"""Dense models in ``bench``: our detector and segmentation models beside torchvision's
same model, with the same weights, on the same input.

Both sides get torchvision's random initialisation (seeded), copied into ours through
the conversion tables, so both compute the same thing: a detector's NMS has the same
candidates to suppress on both sides, and the timing compares the code, not two
initialisations. What is timed is the whole call a user makes:

* detection, eager: ``model(list of [3, R, R] images in [0, 1])`` -> one dict of boxes,
  scores and labels per image: normalising and resizing, the network, box decoding,
  per-class NMS and the scaling back (torchvision's ``GeneralizedRCNNTransform`` +
  ``postprocess_detections``; ours ``SSDLite.preprocess`` + ``decode``);
* detection, ONNX Runtime: the file run on one image (ours: :mod:`mobilenet.detection.export`,
  decoding and NMS inside the graph; torchvision's: ``torch.onnx.export`` of its model,
  which holds the same steps);
* segmentation: ``model(batch [N, 3, R, R])`` -> logits at the input size (torchvision's
  returns ``{"out": logits}``).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

# our registry name -> torchvision's builder, in torchvision.models.detection / .segmentation
DENSE_PEERS = {
    "ssdlite320_mobilenet_v3_large": "ssdlite320_mobilenet_v3_large",
    "lraspp_mobilenet_v3_large": "lraspp_mobilenet_v3_large",
    "deeplabv3_mobilenet_v3_large": "deeplabv3_mobilenet_v3_large",
}
SEED = 0


def task_of(name: str) -> str | None:
    """"detection" / "segmentation" for a dense registry name, None for a classifier."""
    from ..registry import MODELS

    spec = MODELS.get(name)
    return spec.task if spec is not None and spec.task in ("detection", "segmentation") else None


def resolution_of(name: str) -> int:
    from ..registry import get_spec

    return get_spec(name).resolution


def torchvision_model(name: str) -> nn.Module:
    """torchvision's model of ``name`` with its seeded random initialisation (no downloads)."""
    import torchvision.models.detection as det
    import torchvision.models.segmentation as seg

    builder = getattr(det if task_of(name) == "detection" else seg, DENSE_PEERS[name])
    with torch.random.fork_rng():
        torch.manual_seed(SEED)
        return builder(weights=None, weights_backbone=None).eval()


def our_model(name: str) -> nn.Module:
    """Ours, holding the weights :func:`torchvision_model` has."""
    from ..registry import create_model

    model = create_model(name).eval()
    if name not in DENSE_PEERS:
        return model
    state = torchvision_model(name).state_dict()
    if task_of(name) == "detection":
        from ..detection.weights import load_into

        load_into(model, state, "torchvision", "torchvision's initialisation")
    else:
        from ..segmentation.weights import from_torchvision_into

        state = {k: v for k, v in state.items() if not k.startswith("aux_classifier.")}
        from_torchvision_into(model, state, "torchvision's initialisation")
    return model.eval()


def example(name: str, batch: int, resolution: int) -> torch.Tensor:
    """The input both sides get: seeded uniform pixels in [0, 1] (detectors normalise inside;
    a segmentation model gets them normalised with ImageNet's mean and std)."""
    g = torch.Generator().manual_seed(SEED)
    x = torch.rand(batch, 3, resolution, resolution, generator=g)
    if task_of(name) == "segmentation":
        from ..images import IMAGENET_MEAN, IMAGENET_STD

        x = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return x


def eager_call(name: str, model: nn.Module, x: torch.Tensor):
    """The zero-argument call that is timed (see the module doc)."""
    if task_of(name) == "detection":
        images = list(x)

        def run():
            with torch.inference_mode():
                return model(images)
    else:
        def run():
            with torch.inference_mode():
                return model(x)
    return run


def export_file(source: str, name: str, model: nn.Module, x: torch.Tensor, path: Path) -> str:
    """Write the ONNX file a route runs; returns a note naming the exporter."""
    from .routes import RouteUnavailable, _quiet

    detection = task_of(name) == "detection"
    if detection and len(x) != 1:
        raise RouteUnavailable("a detector file takes one image: batch 1 only")
    if path.exists():
        return _note(source, detection)
    with _quiet():
        if source == "ours" and detection:
            from ..detection.export import export_onnx

            export_onnx(model, path, image_size=tuple(x.shape[-2:]))
        elif source == "ours":
            from ..export import export_model

            export_model(model, "onnx", path, resolution=x.shape[-1])
        elif detection:  # the whole detector on one image, its outputs as ours: boxes, scores, labels.
            # torch.export cannot trace torchvision's postprocessing (data-dependent sizes per class): the
            # TorchScript-based exporter at opset 11, as torchvision's own ONNX tests use.
            torch.onnx.export(_OneImage(model).eval(), (x[:1],), str(path), dynamo=False, opset_version=11)
        else:
            from .. import runtimes

            runtimes.get("onnx").write_plain(model, x[:1].expand(2, -1, -1, -1).contiguous(), path)
    return _note(source, detection)


def _note(source: str, detection: bool) -> str:
    if source == "ours":
        return "mobilenet.detection.export (NMS inside)" if detection else "mobilenet.export (onnx, any image size)"
    return "torch.onnx.export(dynamo=False, opset 11) of the whole detector" if detection else \
        "torch.onnx.export(dynamo=True)"


def file_call(name: str, run_file, x: torch.Tensor):
    if task_of(name) == "detection":
        return lambda: run_file(x[:1].contiguous())
    return lambda: run_file(x)


def check(name: str, out, batch: int, resolution: int, num_classes: int) -> None:
    """A dense route must give detections per image or logits at the input size."""
    from .routes import RouteUnavailable

    if task_of(name) == "detection":
        if isinstance(out, list) and len(out) == batch and all("boxes" in d for d in out):
            return
        if isinstance(out, (list, tuple)) and len(out) >= 3 and tuple(out[0].shape[-1:]) == (4,):
            return
        raise RouteUnavailable(f"returned {type(out).__name__}, not boxes, scores and labels")
    if isinstance(out, dict):
        out = out["out"]
    if isinstance(out, (list, tuple)):
        out = out[0]
    shape = tuple(out.shape)
    if shape != (batch, num_classes, resolution, resolution):
        raise RouteUnavailable(f"returned logits of shape {shape}, expected {(batch, num_classes, resolution, resolution)}")


class _OneImage(nn.Module):
    """torchvision's detector called as a user calls it (a list of images), on a [1, 3, H, W]
    batch, returning the one image's boxes, scores and labels: the signature of our file."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor):
        out = self.model([x[0]])[0]
        return out["boxes"], out["scores"], out["labels"]
