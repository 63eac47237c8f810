"""SSDLite as an ExecuTorch ``.pte``: the network and the box decoding in the file, NMS outside.

ExecuTorch has no NonMaxSuppression kernel, and a greedy NMS in fixed-shape tensor
ops is either approximate (Fast/Matrix NMS) or a loop as long as the candidate list.
So the file does everything up to the selection, as a mobile app expects of an SSD
(TFLite's SSD models do the same without their custom post-processing op):

* input ``image [1, 3, H, W]``, RGB in [0, 1], H x W fixed at export time (normalised and
  resized to the detector's input inside the file);
* outputs ``boxes [A, 4]`` (x1, y1, x2, y2 in the input's pixels, clipped) and
  ``scores [A, C]`` (softmax over the classes, background first), one row per anchor.

The app keeps, per class, the best ``topk_candidates`` above ``score_thresh``, runs
class-wise NMS at IoU ``nms_thresh`` and keeps the ``detections_per_img`` best: the file's
metadata carries these four numbers (``postprocess``), and :func:`load_pte` does exactly
that with :func:`mobilenet.detection.ssdlite.select_detections`, the code eager PyTorch
runs. ``nms=False`` writes the raw head instead (``box_offsets``, ``logits``, ``anchors``),
as the ONNX export does.

:func:`export_pte` writes the file only after ExecuTorch has run it on the check images
and matched eager PyTorch: the decoded outputs (scores within 1e-4, every anchor's box
within 1e-4 x the largest coordinate), and the detections after NMS (same labels, boxes within 1e-3 px,
scores within 1e-4; see :func:`mobilenet.detection.export.compare`). ``int8=True``
quantizes the backbone and heads (PT2E, XNNPACK's quantizer, calibrated on ``calib``
images); the normalisation, decoding and softmax stay float, and the file is then
checked against the int8 graph it was lowered from, or, where they part (a trained
detector's sharp softmax), against fp32 eager as closely as that graph is
(:func:`int8_file_holds`).
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from ..files import atomic_path
from .export import (
    SCORE_TOLERANCE,
    DetectionExportError,
    DetectionExportReport,
    DetectionGraph,
    agreement,
    check_images,
    iou_match,
    compare,
    detector_metadata,
)
from .ssdlite import select_detections

INT8_TOLERANCE = 0.1  # x the output's scale, as the classifiers' int8 files (mobilenet.export)


def int8_file_holds(file_vs_graph: float, file_vs_fp32: float, graph_vs_fp32: float,
                    tolerance: float = INT8_TOLERANCE) -> bool:
    """The int8 check of a decoded detector file (worst score difference, or worst box
    difference over the input's longer side): within ``tolerance`` of the int8 graph it
    was lowered from, or no further from fp32 eager than that graph is, plus ``tolerance``.
    A trained detector's softmax is sharp, so one anchor's score moves by up to 0.3
    between XNNPACK's kernels and their PT2E graph (they round differently), as far as
    the graph moves from fp32 (docs/dense.md, "int8 detector accuracy"); a broken
    lowering is far from both."""
    return file_vs_graph <= tolerance or file_vs_fp32 <= graph_vs_fp32 + tolerance


class QuantizedNetwork(nn.Module):
    """The detector with its network (``forward_raw``) replaced by an int8 PT2E graph;
    everything else (anchors, box coder, thresholds) is the float model's."""

    def __init__(self, model: nn.Module, network: nn.Module) -> None:
        super().__init__()
        self.float_model, self.network = model, network
        for name in ("size", "image_mean", "image_std", "anchors", "box_coder", "num_classes", "score_thresh",
                     "nms_thresh", "topk_candidates", "detections_per_img", "model_name", "pretrained_cfg"):
            if hasattr(model, name):
                object.__setattr__(self, name, getattr(model, name))

    def forward_raw(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.network(x)

    def decode(self, box_offsets, logits, image_size=None):
        return self.float_model.decode(box_offsets, logits, image_size)


class _Network(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.forward_raw(x)


def quantize_network(model: nn.Module, calib: Sequence[torch.Tensor]) -> QuantizedNetwork:
    """The detector with int8 backbone + heads (PT2E + XNNPACKQuantizer, BatchNorm folded),
    calibrated on ``calib`` ([3, H, W] images in [0, 1], any sizes)."""
    from ..deploy import deploy
    from ..quantize import quantize_ptq

    if not calib:
        raise DetectionExportError("int8 needs calibration images (--calib DIR)")
    with torch.no_grad():
        batches = [model.preprocess([img]) for img in calib]
    network = quantize_ptq(_Network(deploy(model)), batches, backend="xnnpack")
    return QuantizedNetwork(model, network)


def export_pte(model: nn.Module, path: str | os.PathLike, *, nms: bool = True, image_size: Sequence[int] | None = None,
               images: Sequence[torch.Tensor] | None = None, int8: bool = False,
               calib: Sequence[torch.Tensor] | None = None) -> DetectionExportReport:
    """Write ``model`` as an ExecuTorch program (see the module doc) once ExecuTorch
    has run it on ``images`` (resized to ``image_size``) and matched eager PyTorch."""
    try:
        from ..runtimes.executorch import _lower
    except ModuleNotFoundError:
        raise DetectionExportError("ExecuTorch export needs executorch: pip install 'mobilenet[export]'") from None
    from ..deploy import deploy

    float_graph = DetectionGraph(model, image_size=image_size, nms=False, decoded=nms).eval()
    source = quantize_network(model, calib or []) if int8 else deploy(model)
    graph = DetectionGraph(source, image_size=image_size, nms=False, decoded=nms).eval()
    example = torch.rand(1, 3, *graph.image_size)
    outputs = ["boxes", "scores"] if nms else ["box_offsets", "logits", "anchors"]
    meta = detector_metadata(model, nms=False, image_size=graph.image_size, outputs=outputs)
    meta.update(decoded=nms, int8=int8, backend="xnnpack" if int8 else None)
    if nms:
        meta["postprocess"] = {"score_thresh": model.score_thresh, "nms_thresh": model.nms_thresh,
                               "topk_candidates": model.topk_candidates,
                               "detections_per_img": model.detections_per_img}
    blob = torch.tensor(list(zlib.compress(json.dumps(meta).encode(), 9)), dtype=torch.uint8)
    path = Path(path)
    with torch.no_grad():
        program = torch.export.export(graph, (example,))
    checks = check_images(graph.image_size, images)
    with atomic_path(path) as tmp:
        tmp.write_bytes(_lower(program, {"mobilenet_metadata": blob}))
        run = load_pte(tmp)
        worst = dict(raw=0.0, box=0.0, box_rel=0.0, score=0.0, eager_box=0.0)
        fp32 = dict(file_box=0.0, file_score=0.0, graph_box=0.0, graph_score=0.0)  # int8: both against fp32
        passed, found, paired, total, hits, confident = True, 0, 0, 0, 0, 0
        for img in checks:
            with torch.no_grad():
                want = graph(img[None])
                got = run.raw(img[None])
                if nms:
                    box = float((got[0] - want[0]).abs().max())
                    worst["box"] = max(worst["box"], box)
                    worst["box_rel"] = max(worst["box_rel"], box / max(1.0, float(want[0].abs().max())))
                    worst["score"] = max(worst["score"], float((got[1] - want[1]).abs().max()))
                else:
                    scale = max(1.0, max(float(t.abs().max()) for t in want[:2]))
                    worst["raw"] = max(worst["raw"], max(float((a - b).abs().max())
                                                         for a, b in zip(want[:2], got[:2])) / scale)
                if not nms:
                    continue
                dets = run.select(*got)
                reference = run.select(*want)  # the graph's own (float or int8) detections
                if not int8:  # int8 kernels round differently from their reference graph: outputs only
                    passed &= compare([reference["boxes"], reference["scores"], reference["labels"]],
                                      [dets["boxes"], dets["scores"], dets["labels"]], True)[2]
                eager = float_graph(img[None])
                for who, out in (("file", got), ("graph", want)):
                    fp32[f"{who}_box"] = max(fp32[f"{who}_box"], float((out[0] - eager[0]).abs().max()))
                    fp32[f"{who}_score"] = max(fp32[f"{who}_score"], float((out[1] - eager[1]).abs().max()))
                eager = run.select(*eager)
                n, eager_box = agreement([eager["boxes"], eager["scores"], eager["labels"]],
                                         [dets["boxes"], dets["scores"], dets["labels"]])
                paired, total, found = paired + n, total + len(eager["boxes"]), found + len(dets["boxes"])
                hit, of = iou_match([eager["boxes"], eager["scores"], eager["labels"]],
                                    [dets["boxes"], dets["scores"], dets["labels"]])
                hits, confident = hits + hit, confident + of
                worst["eager_box"] = max(worst["eager_box"], eager_box)
        if nms:  # the decoded outputs, relative to their scale, stand for the network's
            worst["raw"] = max(worst["box_rel"], worst["score"])
        if int8 and nms:
            side = max(graph.image_size)
            passed &= (int8_file_holds(worst["score"], fp32["file_score"], fp32["graph_score"])
                       and int8_file_holds(worst["box"] / side, fp32["file_box"] / side, fp32["graph_box"] / side))
        elif int8:
            passed &= worst["raw"] <= INT8_TOLERANCE
        else:
            # every anchor's box within 1e-4 x the largest coordinate (the ONNX export's rule for the
            # network's outputs); the detections after NMS within 1e-3 px (compare, above)
            passed &= worst["raw"] <= 1e-4 and worst["score"] <= SCORE_TOLERANCE and worst["box_rel"] <= 1e-4
        if not passed:
            raise DetectionExportError(
                f"{path}: ExecuTorch differs from {'the int8 graph' if int8 else 'eager PyTorch'} (network "
                f"{worst['raw']:.3g} x scale, boxes {worst['box']:.3g} px, scores {worst['score']:.3g}"
                + (f"; from fp32: file scores {fp32['file_score']:.3g}, graph scores {fp32['graph_score']:.3g}"
                   if int8 and nms else "") + "); file not written")
    return DetectionExportReport(str(path), path.stat().st_size, nms, graph.image_size, len(checks), found,
                                 worst["raw"], worst["box"], worst["score"], paired / total if total else 1.0,
                                 worst["eager_box"], passed, int8,
                                 hits / confident if int8 and confident else None)


class PteDetector:
    """A detector ``.pte`` loaded in ExecuTorch: call it on ``image [1, 3, H, W]`` for
    ``[boxes, scores, labels]`` (files that stop before NMS get it here) or the raw
    head's outputs; ``raw`` gives the file's own outputs, ``metadata`` what it carries."""

    def __init__(self, path: str | os.PathLike) -> None:
        from executorch.runtime import Runtime

        from ..quiet import native_stderr_filtered

        program = Runtime.get().load_program(Path(path))
        self.metadata: dict = {}
        if "mobilenet_metadata" in program.method_names:
            raw = bytes(program.load_method("mobilenet_metadata").execute([])[0].tolist())
            self.metadata = json.loads(zlib.decompress(raw).decode())
        with native_stderr_filtered():
            self.method = program.load_method("forward")

    def raw(self, image: torch.Tensor) -> list[torch.Tensor]:
        return [t.clone() for t in self.method.execute([image.detach().float().contiguous()])]

    def select(self, boxes: torch.Tensor, scores: torch.Tensor) -> dict[str, torch.Tensor]:
        return select_detections(boxes, scores, **self.metadata["postprocess"])

    def __call__(self, image: torch.Tensor) -> list[torch.Tensor]:
        out = self.raw(image)
        if not self.metadata.get("decoded"):
            return out
        det = self.select(*out)
        return [det["boxes"], det["scores"], det["labels"]]


def load_pte(path: str | os.PathLike) -> PteDetector:
    return PteDetector(path)
