"""int8 SSDLite as ONNX: the backbone and heads quantized by ONNX Runtime's static
quantizer (QDQ, int8 per-channel weights, uint8 activations), the decoding and NMS
left in float.

The fp32 file of :func:`mobilenet.detection.export.export_onnx` is quantized with only
the nodes that compute the head's two outputs (box offsets and logits) included, so box
decoding, softmax, top-k and NonMaxSuppression run exactly as in the fp32 file. The
written file is checked like a classifier's int8 file: its fused int8 kernels against
the same file run op by op (every optimisation off), the head's outputs within 0.1 x
their scale; how many fp32 eager detections it keeps is reported.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from ..files import atomic_path
from .export import (
    DetectionExportError,
    DetectionExportReport,
    DetectionGraph,
    _raw_names,
    agreement,
    check_images,
    iou_match,
    compare,
    export_onnx,
)

INT8_TOLERANCE = 0.1  # x the head's output scale, as the classifiers' int8 files


def upstream(proto, names: Sequence[str]) -> set[str]:
    """Names of the nodes that ``names`` are computed from, directly or through other nodes."""
    made_by = {out: node for node in proto.graph.node for out in node.output}
    found, wanted = set(), list(names)
    while wanted:
        node = made_by.get(wanted.pop())
        if node is not None and node.name not in found:
            found.add(node.name)
            wanted.extend(node.input)
    return found


def export_onnx_int8(model: nn.Module, path: str | os.PathLike, *, calib: Sequence[torch.Tensor], nms: bool = True,
                     image_size: Sequence[int] | None = None,
                     images: Sequence[torch.Tensor] | None = None) -> DetectionExportReport:
    """Write ``model`` as an int8 ONNX file (see the module doc), calibrated on ``calib``
    ([3, H, W] photos in [0, 1], resized to the file's input)."""
    try:
        import onnx
        import onnxruntime as ort
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

        from ..runtimes.onnx import calibration_reader
    except ModuleNotFoundError:
        raise DetectionExportError("int8 ONNX export needs onnx, onnxscript and onnxruntime: "
                                   "pip install 'mobilenet[export]'") from None

    if not calib:
        raise DetectionExportError("int8 needs calibration images (--calib DIR)")
    path = Path(path)
    graph = DetectionGraph(model, image_size=image_size, nms=nms)
    anchors, classes = model.anchors.shape[0], model.num_classes
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        export_onnx(model, fp32, nms=nms, image_size=image_size, images=images)
        proto = onnx.load(str(fp32))
        meta = json.loads({p.key: p.value for p in proto.metadata_props}["mobilenet"])
        raw = _raw_names(proto, anchors, classes) if nms else [o.name for o in proto.graph.output[:2]]
        # Only what computes the head's outputs is quantized, less the two Concats that make them:
        # quantizing those would make the decoding read a rounded copy of what the file returns
        # as the head's outputs. The decoding (from those outputs and the anchors) stays float.
        network = upstream(proto, raw) - {n.name for n in proto.graph.node if set(n.output) & set(raw)}
        excluded = [n.name for n in proto.graph.node if n.name not in network] if nms else []
        if nms:  # the head's outputs as extra outputs while checking
            for name in raw:
                proto.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
        onnx.save(proto, str(fp32))
        batches = [img[None].numpy() for img in check_images(graph.image_size, calib)]

        quantized = Path(tmp) / "int8.onnx"
        for method in (CalibrationMethod.Percentile, CalibrationMethod.MinMax):
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    quantize_static(str(fp32), str(quantized), calibration_reader("image", batches),
                                    quant_format=QuantFormat.QDQ, per_channel=True,
                                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                                    calibrate_method=method, nodes_to_exclude=excluded,
                                    extra_options={"CalibStridedMinMax": 1})
                break
            except ValueError as exc:  # a (nearly) constant activation cannot be histogrammed
                if method != CalibrationMethod.Percentile or "bins" not in str(exc):
                    raise
        proto = onnx.load(str(quantized))
        meta.update(int8=True, backend="onnxruntime")
        del proto.metadata_props[:]
        onnx.helper.set_model_props(proto, {"mobilenet": json.dumps(meta)})
        fused = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        options.log_severity_level = 3
        reference = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
        worst_raw, eager_box, found, paired, total, same = 0.0, 0.0, 0, 0, 0, True
        worst_box = worst_score = 0.0
        hits = confident = 0
        for img in check_images(graph.image_size, images):
            feed = {"image": img[None].numpy()}
            got = [torch.from_numpy(o) for o in fused.run(None, feed)]
            want = [torch.from_numpy(o) for o in reference.run(None, feed)]
            head = (got[3:5], want[3:5]) if nms else (got[:2], want[:2])
            scale = max(1.0, max(float(t.abs().max()) for t in head[1]))
            worst_raw = max(worst_raw, max(float((a - b).abs().max()) for a, b in zip(*head)) / scale)
            if nms:  # the float decoding + NMS in the file, against eager's on the file's own head outputs
                decoded = model.decode(got[3][0], got[4][0], graph.image_size)
                box, score, ok = compare([decoded["boxes"], decoded["scores"], decoded["labels"]], got[:3], True)
                if box != float("inf"):  # inf: no one-to-one pairs (an untrained model's exact ties)
                    worst_box, worst_score = max(worst_box, box), max(worst_score, score)
                same = same and ok
                with torch.no_grad():
                    eager = graph(img[None])
                n, box = agreement(eager, got[:3])
                hit, of = iou_match(eager, got[:3])
                hits, confident = hits + hit, confident + of
                paired, total, found = paired + n, total + len(eager[0]), found + len(got[0])
                eager_box = max(eager_box, box)
        if worst_raw > INT8_TOLERANCE or not same:
            raise DetectionExportError(f"{path}: the int8 file's fused kernels differ from its op-by-op reference "
                                       f"by {worst_raw:.3g} x scale (tolerance {INT8_TOLERANCE}), or its decoding "
                                       f"from eager's (boxes {worst_box:.3g} px); file not written")
        if nms:
            del proto.graph.output[3:]
        with atomic_path(path) as out:
            onnx.save(proto, str(out))
    return DetectionExportReport(str(path), path.stat().st_size, nms, graph.image_size, len(check_images(
        graph.image_size, images)), found, worst_raw, worst_box, worst_score, paired / total if total else 1.0,
        eager_box, True, True, hits / confident if confident else None)
