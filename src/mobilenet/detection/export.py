"""SSDLite as a file: ONNX with decoding and NMS inside the graph, or the raw head.

``DetectionGraph`` is what gets exported: one ``[1, 3, H, W]`` image in [0, 1] at a
size fixed at export time (normalised and resized to the detector's input inside
the graph) gives

* ``nms=True``: ``boxes [K, 4]`` (x1, y1, x2, y2 in the input's pixels), ``scores [K]``
  and ``labels [K]`` (int64), K <= ``detections_per_img`` and data-dependent; the
  same decoding as eager (softmax, per-class top-k above the score threshold,
  class-wise NMS through ``torchvision.ops.nms``, which ONNX exports as
  ``NonMaxSuppression``);
* ``nms=False, decoded=True``: ``boxes [A, 4]`` (decoded, clipped, in the input's
  pixels) and ``scores [A, C]`` (softmax, background first): everything but the
  selection, for runtimes without an NMS kernel (ExecuTorch,
  :mod:`mobilenet.detection.executorch`);
* ``nms=False``: ``box_offsets [1, A, 4]``, ``logits [1, A, C]`` and the constant
  ``anchors [A, 4]`` (x1, y1, x2, y2 in the detector's input pixels), for a runtime
  that decodes and suppresses itself (torchvision's ``BoxCoder`` weights 10, 10, 5, 5).

:func:`export_onnx` writes the file atomically after ONNX Runtime has run it on
check images and matched eager PyTorch (same labels, scores within 1e-4, boxes
within 1e-3 px); a file that fails its check is not written.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..files import atomic_path

ONNX_OPSET = 18
BOX_TOLERANCE = 1e-3  # pixels
SCORE_TOLERANCE = 1e-4


class DetectionExportError(ValueError):
    """An export we cannot do, or a file that failed its own check."""


class DetectionGraph(nn.Module):
    """The exported computation of an SSDLite (see the module doc)."""

    def __init__(self, model: nn.Module, *, image_size: Sequence[int] | None = None, nms: bool = True,
                 decoded: bool = False) -> None:
        super().__init__()
        if not hasattr(model, "forward_raw") or not hasattr(model, "decode"):
            raise DetectionExportError(f"{type(model).__name__} is not a mobilenet detector")
        self.model = model.eval()
        size = model.size
        self.image_size = (size, size) if image_size is None else (int(image_size[0]), int(image_size[1]))
        if min(self.image_size) < 32:
            raise DetectionExportError(f"image_size must be at least 32x32, got {self.image_size}")
        if nms and decoded:
            raise DetectionExportError("decoded=True is the graph that stops before NMS: pass nms=False with it")
        self.nms, self.decoded = nms, decoded

    def forward(self, image: torch.Tensor):
        m = self.model
        if tuple(image.shape[-2:]) != self.image_size:
            h, w = image.shape[-2:]
            raise DetectionExportError(f"this graph takes {self.image_size[0]}x{self.image_size[1]} images, "
                                       f"got {h}x{w}")
        x = (image - m.image_mean) / m.image_std
        if self.image_size != (m.size, m.size):
            x = F.interpolate(x, size=[m.size, m.size], mode="bilinear", align_corners=False)
        box_offsets, logits = m.forward_raw(x)
        if self.decoded:  # boxes in the input's pixels and class probabilities, for an NMS outside
            boxes = m.box_coder.decode_single(box_offsets[0], m.anchors).clamp(0, m.size)
            h, w = self.image_size
            scale = torch.tensor([w / m.size, h / m.size] * 2, dtype=boxes.dtype)
            return boxes * scale, F.softmax(logits[0], dim=-1)
        if not self.nms:
            return box_offsets, logits, m.anchors
        det = m.decode(box_offsets[0], logits[0], self.image_size)
        return det["boxes"], det["scores"], det["labels"]


@dataclass
class DetectionExportReport:
    path: str
    bytes: int
    nms: bool
    image_size: tuple[int, int]
    checked_images: int
    detections: int  # the file's, over the check images
    max_raw_diff: float  # network outputs, file vs eager, x their scale
    max_box_diff: float  # px: the file's decoding vs eager decoding of the same network outputs
    max_score_diff: float
    eager_agreement: float  # share of eager-on-image detections the file gives within 1e-3 px
    eager_max_box_diff: float  # px, over those
    passed: bool
    int8: bool = False
    int8_match: float | None = None  # int8: share of fp32 eager detections >= 0.3 found (same label, IoU >= 0.5)

    def to_dict(self) -> dict:
        return asdict(self)


def check_images(image_size: Sequence[int], images: Sequence[torch.Tensor] | None = None) -> list[torch.Tensor]:
    """``images`` (any sizes, [3, H, W] in [0, 1]) resized to ``image_size``; random ones if None."""
    if not images:
        g = torch.Generator().manual_seed(0)
        images = [torch.rand(3, *image_size, generator=g) for _ in range(2)]
    return [F.interpolate(img[None], size=list(image_size), mode="bilinear", align_corners=False)[0].clamp(0, 1)
            for img in images]


def compare(eager: Sequence[torch.Tensor], runtime: Sequence[torch.Tensor], nms: bool) -> tuple[float, float, bool]:
    """(max box diff px, max score diff, same?) for one image.

    Raw outputs: within 1e-4 x their scale. Detections: the same set, each eager
    detection paired with the runtime's of the same label nearest in box (within
    1e-3 px, scores within 1e-4). Where two candidates of a class score within the
    tolerance of each other, float noise (or a tie-break) may decide which one a
    top-k cut or NMS keeps: an unpaired detection must have such a near-tied
    same-class partner in the other output (or be at the final cut)."""

    if not nms:
        diffs = [float((a - b).abs().max()) for a, b in zip(eager[:2], runtime[:2])]
        scales = [max(1.0, float(a.abs().max())) for a in eager[:2]]
        return diffs[0], diffs[1], all(d <= 1e-4 * s for d, s in zip(diffs, scales))

    def unpaired(a, b) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        (ab, as_, al), (bb, bs, bl) = a, b
        gap = (ab[:, None, :] - bb[None, :, :]).abs().amax(-1)
        gap[al[:, None] != bl[None, :]] = float("inf")
        nearest, pair = gap.min(1)
        ok = (nearest <= BOX_TOLERANCE) & ((as_ - bs[pair]).abs() <= SCORE_TOLERANCE)
        # a same-class detection of (nearly) the same score: exact ties are common where the
        # image is flat, and a runtime may keep either candidate at a top-k cut or in NMS
        near_tie = (al[:, None] == bl[None, :]) & ((as_[:, None] - bs[None, :]).abs() <= SCORE_TOLERANCE)
        at_cut = as_ <= max(float(as_.min()), float(bs.min())) + SCORE_TOLERANCE
        excused = near_tie.any(1) | at_cut
        return ok, nearest, (as_ - bs[pair]).abs(), excused

    eager = [eager[0], eager[1], eager[2]]
    runtime = [runtime[0], runtime[1], runtime[2].to(eager[2].dtype)]
    if len(eager[0]) == 0 or len(runtime[0]) == 0:
        return 0.0, 0.0, len(eager[0]) == len(runtime[0])
    ok, nearest, score_gap, excused = unpaired(eager, runtime)
    ok_back, _, _, excused_back = unpaired(runtime, eager)
    same = bool((ok | excused).all() and (ok_back | excused_back).all())
    box = float(nearest[ok].max()) if ok.any() else float("inf")
    score = float(score_gap[ok].max()) if ok.any() else float("inf")
    return box, score, same


def _raw_names(proto, anchors: int, classes: int) -> list[str]:
    """Names of the head's two outputs (``[1, A, 4]`` and ``[1, A, C]``) inside an exported graph."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(proto)
    made_by = {out: node.op_type for node in inferred.graph.node for out in node.output}
    found: dict[tuple, list[str]] = {(1, anchors, 4): [], (1, anchors, classes): []}
    for vi in inferred.graph.value_info:
        dims = tuple(d.dim_value for d in vi.type.tensor_type.shape.dim)
        if dims in found and made_by.get(vi.name) == "Concat":
            found[dims].append(vi.name)
    if any(len(v) != 1 for v in found.values()):
        raise DetectionExportError(f"cannot find the head's outputs in the exported graph ({found})")
    return [found[(1, anchors, 4)][0], found[(1, anchors, classes)][0]]


def agreement(eager: Sequence[torch.Tensor], runtime: Sequence[torch.Tensor]) -> tuple[int, float]:
    """How many eager detections the runtime gives (same label, box within 1e-3 px,
    score within 1e-4), and the largest box difference among them."""
    (eb, es, el), (rb, rs, rl) = eager, runtime
    if len(eb) == 0 or len(rb) == 0:
        return 0, 0.0
    gap = (eb[:, None, :] - rb[None, :, :]).abs().amax(-1)
    gap[el[:, None] != rl.to(el.dtype)[None, :]] = float("inf")
    nearest, pair = gap.min(1)
    ok = (nearest <= BOX_TOLERANCE) & ((es - rs[pair]).abs() <= SCORE_TOLERANCE)
    return int(ok.sum()), float(nearest[ok].max()) if ok.any() else 0.0


def iou_match(eager: Sequence[torch.Tensor], runtime: Sequence[torch.Tensor], *, score_min: float = 0.3,
              iou_min: float = 0.5) -> tuple[int, int]:
    """(found, of): how many eager detections scoring >= ``score_min`` the runtime gives
    with the same label at IoU >= ``iou_min`` (an int8 file's boxes move by more than 1e-3 px)."""
    from torchvision.ops import box_iou

    (eb, es, el), (rb, _, rl) = eager, runtime
    eb, el = eb[es >= score_min], el[es >= score_min]
    if len(eb) == 0 or len(rb) == 0:
        return 0, len(eb)
    iou = box_iou(eb, rb)
    iou[el[:, None] != rl.to(el.dtype)[None, :]] = 0
    return int((iou.max(1).values >= iou_min).sum()), len(eb)


def detector_metadata(model: nn.Module, *, nms: bool, image_size: Sequence[int], outputs: list[str]) -> dict:
    """What a detector file says about itself (ONNX: the ``mobilenet`` model property;
    ExecuTorch: the ``mobilenet_metadata`` method)."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    return {"format": "mobilenet-detector", "model": getattr(model, "model_name", None), "nms": nms,
            "image_size": list(image_size), "input": "image [1, 3, H, W] RGB in [0, 1]",
            "outputs": outputs, "labels": cfg.get("labels"), "box_coder_weights": list(model.box_coder.weights),
            "num_classes": model.num_classes}


def export_onnx(model: nn.Module, path: str | os.PathLike, *, nms: bool = True, image_size: Sequence[int] | None = None,
                images: Sequence[torch.Tensor] | None = None, opset: int = ONNX_OPSET) -> DetectionExportReport:
    """Write ``model`` as ONNX (see the module doc) once ONNX Runtime has run it on
    ``images`` (resized to ``image_size``; default: the detector's input) and
    matched eager PyTorch stage by stage: the network's outputs within 1e-4 x their
    scale, and the in-graph decoding + NMS, given the same network outputs, the
    same detections (boxes within 1e-3 px). Float noise between two runtimes'
    convolutions can reorder near-tied candidates, so the comparison of whole
    pipelines on the image is reported (``eager_agreement``), not required."""
    try:
        import onnx
        import onnxruntime as ort
    except ModuleNotFoundError:
        raise DetectionExportError("ONNX export needs onnx, onnxscript and onnxruntime: "
                                   "pip install 'mobilenet[export]'") from None
    graph = DetectionGraph(model, image_size=image_size, nms=nms).eval()
    example = torch.rand(1, 3, *graph.image_size)
    outputs = ["boxes", "scores", "labels"] if nms else ["box_offsets", "logits", "anchors"]
    path = Path(path)
    with torch.no_grad():
        program = torch.onnx.export(graph, (example,), None, dynamo=True, opset_version=opset, input_names=["image"],
                                    output_names=outputs, verbose=False)
    checks = check_images(graph.image_size, images)
    raw_graph = DetectionGraph(model, image_size=image_size, nms=False).eval()
    with atomic_path(path) as tmp:
        program.save(str(tmp))
        proto = onnx.load(str(tmp))
        meta = detector_metadata(model, nms=nms, image_size=graph.image_size, outputs=outputs)
        onnx.helper.set_model_props(proto, {"mobilenet": json.dumps(meta)})
        onnx.save(proto, str(tmp))
        if nms:  # a copy that also returns the head's outputs, to check each stage against its own reference
            for name in _raw_names(proto, model.anchors.shape[0], model.num_classes):
                proto.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
        session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
        worst = dict(raw=0.0, box=0.0, score=0.0, eager_box=0.0)
        passed, found, paired, total = True, 0, 0, 0
        for img in checks:
            got = [torch.from_numpy(o) for o in session.run(None, {"image": img[None].numpy()})]
            with torch.no_grad():
                raw = raw_graph(img[None])
                ort_raw = got[3:5] if nms else got[:2]
                scale = max(1.0, max(float(t.abs().max()) for t in raw[:2]))
                worst["raw"] = max(worst["raw"], max(float((a - b).abs().max()) for a, b in zip(raw[:2], ort_raw)) / scale)
                if not nms:
                    continue
                decoded = model.decode(ort_raw[0][0], ort_raw[1][0], graph.image_size)
                reference = [decoded["boxes"], decoded["scores"], decoded["labels"]]
                box, score, same = compare(reference, got[:3], True)
                passed &= bool(same)
                worst["box"], worst["score"] = max(worst["box"], box), max(worst["score"], score)
                eager = graph(img[None])
                n, eager_box = agreement(eager, got[:3])
                paired, total, found = paired + n, total + len(eager[0]), found + len(got[0])
                worst["eager_box"] = max(worst["eager_box"], eager_box)
        passed &= worst["raw"] <= 1e-4
        if not passed:
            raise DetectionExportError(f"{path}: ONNX Runtime differs from eager PyTorch (network {worst['raw']:.3g} "
                                       f"x scale, boxes {worst['box']:.3g} px, scores {worst['score']:.3g}); "
                                       "file not written")
    return DetectionExportReport(str(path), path.stat().st_size, nms, graph.image_size, len(checks), found,
                                 worst["raw"], worst["box"], worst["score"], paired / total if total else 1.0,
                                 worst["eager_box"], passed)


def load_onnx(path: str | os.PathLike):
    """A callable ``image [1, 3, H, W] -> (boxes, scores, labels)`` (or the raw outputs)
    running the file in ONNX Runtime."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def run(image: torch.Tensor) -> list[torch.Tensor]:
        return [torch.from_numpy(o) for o in session.run(None, {"image": image.detach().cpu().numpy()})]

    return run
