"""ONNX int8 levers on a classifier trained on ../shared/data/cifar10-test: calibration
count, percentile vs min/max ranges, first conv and classifier left in float.

Calls ONNX Runtime's ``quantize_static`` directly (QDQ, per-channel int8 weights, uint8
activations, one batch per calibration round, as ``mobilenet export --int8`` does) on
the fp32 ONNX file our exporter writes, calibrating on seeded images of the training
split and comparing top-1 with fp32 on the held-out split (the split training used,
seed 0, 20%). Prints agreement overall and on the half of the images whose fp32
top-1/top-2 logit gap is above the median.

    python benchmarks/onnx_int8_levers.py RUN_DIR [--out DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MOBILENET_SHARED_DATA", ROOT.parent / "shared" / "data")) / "cifar10-test"
LEVERS = ((200, "Percentile", False), (1000, "Percentile", False), (200, "MinMax", False), (1000, "MinMax", False),
          (1000, "Percentile", True))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a run folder of `mobilenet train --data .../cifar10-test`")
    parser.add_argument("--out", type=Path, default=None, help="where the .onnx files go (default: a temp folder)")
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"{DATA} is missing (set MOBILENET_SHARED_DATA)", file=sys.stderr)
        return 2
    import numpy as np
    import onnx
    import onnxruntime as ort
    import torch
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from mobilenet.export import export_model
    from mobilenet.runtimes.onnx import calibration_reader
    from mobilenet.images import load_image
    from mobilenet.runtimes.common import model_preprocess
    from mobilenet.train.data import load_data
    from mobilenet.weights.sources import load_weights_file

    out = args.out or Path(tempfile.mkdtemp(prefix="levers-"))
    model = load_weights_file(str(args.run / "weights.safetensors")).eval()
    t = model_preprocess(model).transform()
    split = load_data(str(DATA), val_split=0.2, seed=0, log=lambda m: None)
    order = torch.randperm(len(split.train.items), generator=torch.Generator().manual_seed(1)).tolist()
    x = torch.stack([t(load_image(p)) for p, _ in split.val.items])
    y = np.array([label for _, label in split.val.items])
    fp = out / "fp32.onnx"
    fp.unlink(missing_ok=True)
    export_model(model, "onnx", fp, example=x[:8])
    graph = onnx.load(str(fp)).graph
    name = graph.input[0].name
    weighted = [n.name for n in graph.node if n.op_type in ("Conv", "Gemm", "MatMul")]

    def run(path: Path) -> np.ndarray:
        s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return np.concatenate([s.run(None, {name: b.numpy()})[0] for b in x.split(100)])

    ref = run(fp)
    rp = ref.argmax(1)
    top2 = np.sort(ref, 1)
    gap = top2[:, -1] - top2[:, -2]
    big = gap > np.median(gap)
    print(f"fp32 ONNX top-1 {(rp == y).mean():.4f} on {len(y)} held-out images; max |logit| {np.abs(ref).max():.3f}; "
          f"median top-1/top-2 gap {np.median(gap):.4f}", flush=True)
    for n, method, keep_float in LEVERS:
        calib = torch.stack([t(load_image(split.train.items[i][0])) for i in order[:n]]).split(25)


        path = out / f"int8-{n}-{method}{'-float-ends' if keep_float else ''}.onnx"
        path.unlink(missing_ok=True)
        start = time.time()
        with contextlib.redirect_stdout(io.StringIO()):
            quantize_static(str(fp), str(path), calibration_reader(name, list(calib)), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=getattr(CalibrationMethod, method),
                            nodes_to_exclude=[weighted[0], weighted[-1]] if keep_float else [],
                            extra_options={"CalibStridedMinMax": 1})
        qp = run(path).argmax(1)
        what = "first conv + classifier float" if keep_float else "all int8"
        print(f"calib {n:5d} {method:10s} {what:30s} agree {(qp == rp).mean():.4f} (larger-gap half "
              f"{(qp[big] == rp[big]).mean():.4f}), int8 top-1 {(qp == y).mean():.4f}, {time.time() - start:.0f} s",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
