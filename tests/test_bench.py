"""`mobilenet bench`: the tool's behaviour on tiny runs. No timing is asserted here:
speed claims are measured by `mobilenet bench` itself (docs/benchmarks.md)."""

from __future__ import annotations

import json
import math

import pytest

from mobilenet.bench import Result, Schedule, benchmark, benchmark_training, claims, median_ci, theoretical_peak
from mobilenet.bench.routes import RouteUnavailable, prepare
from mobilenet.bench.timing import summarize
from mobilenet.cli import main

TINY = Schedule(min_runs=2, min_time=0.0, max_time=0.05, warmup_runs=1, warmup_time=0.0, burst_time=0.0)
FIELDS = {"model", "source", "impl", "task", "runtime", "precision", "batch", "resolution", "threads", "layout",
          "runs", "median_ms", "q1_ms", "q3_ms", "iqr_ms", "ci_pct", "images_per_s", "macs", "gmacs_per_s", "params",
          "setup_s", "ratio", "note", "error"}


def test_records_and_ratio_against_peer():
    pytest.importorskip("timm")
    report = benchmark(["mobilenet_v3_small_050"], runtimes=["eager", "channels_last"], batches=[2], resolution=32,
                       threads=1, compare=["timm"], schedule=TINY)
    rows = {(r.source, r.runtime): r for r in report.results}
    assert set(rows) == {(s, rt) for s in ("ours", "timm") for rt in ("eager", "channels_last")}
    for r in report.results:
        assert r.error is None and r.runs >= 2
        assert r.q1_ms <= r.median_ms <= r.q3_ms
        assert r.images_per_s == pytest.approx(2 * 1000 / r.median_ms)
        assert r.gmacs_per_s == pytest.approx(r.macs * r.images_per_s / 1e9)
    assert rows["ours", "eager"].ratio is None
    assert rows["timm", "eager"].impl == "mobilenetv3_small_050"
    assert rows["timm", "eager"].ratio == pytest.approx(rows["ours", "eager"].median_ms / rows["timm", "eager"].median_ms)
    assert rows["ours", "channels_last"].layout == "channels_last" and rows["ours", "eager"].layout == "NCHW"
    d = report.to_dict()
    assert set(d["results"][0]) == FIELDS
    assert {"cpu", "threads", "allocator", "flags", "peak", "versions"} <= set(d["machine"])
    assert d["machine"]["threads"] == 1 and "torch" in d["machine"]["versions"]
    assert any(c["check"] == "eager NCHW: ours vs timm" for c in d["claims"])


def test_unknown_names_raise_naming_the_choices():
    with pytest.raises(ValueError, match="unknown runtime 'cuda'.*onnxruntime"):
        benchmark(["mobilenet_v2_100"], runtimes=["cuda"])
    with pytest.raises(ValueError, match="cannot compare with 'keras'"):
        benchmark(["mobilenet_v2_100"], compare=["keras"])
    with pytest.raises(ValueError, match="unknown model"):
        benchmark(["mobilenet_v9"])
    with pytest.raises(ValueError, match="batch sizes"):
        benchmark(["mobilenet_v2_100"], batches=[0])


def test_int8_only_through_int8_runtimes(tmp_path):
    with pytest.raises(RouteUnavailable, match="int8 runs through"):
        prepare("ours", "mobilenet_v3_small_050", "eager", batch=1, resolution=32, threads=1, workdir=tmp_path,
                int8=True)


def test_cli_bad_runtime_is_one_line_error(capsys):
    assert main(["bench", "mobilenet_v2_100", "--runtime", "eager,tensorrt"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--runtime" in err and "tensorrt" in err and "executorch" in err


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--batch", "1,x"], ["--batch", "integers"]),
        (["--compare", "keras"], ["--compare", "keras"]),
        (["--train", "64by32"], ["--train", "64x32"]),
        (["--plot", "chart.svg"], ["--plot", ".png"]),
        (["--resolution", "8"], ["--resolution", "32"]),
    ],
)
def test_cli_bad_arguments(argv, words, capsys):
    assert main(["bench", "mobilenet_v2_100", *argv]) == 2
    err = capsys.readouterr().err
    assert all(w in err for w in words) and "Traceback" not in err


def test_cli_json_and_plot(tmp_path, capsys):
    chart = tmp_path / "chart.png"
    argv = ["bench", "mobilenet_v3_small_050", "--resolution", "32", "--batch", "1", "--threads", "1",
            "--compare", "timm", "--min-time", "0", "--max-time", "0.05", "--json", "--plot", str(chart)]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["source"] for r in out["table"]] == ["ours", "timm"]
    assert out["table"][1]["ratio"] == pytest.approx(out["results"][1]["ratio"], abs=1e-3)
    assert out["machine"]["peak"]["fp32_gmacs"] > 0 and out["machine"]["allocator"]
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["chart.png"]  # no temporary file left behind


def test_cli_table_has_header_and_ratio_column(capsys):
    argv = ["bench", "mobilenet_v3_small_050", "--resolution", "32", "--threads", "1", "--compare", "timm",
            "--min-time", "0", "--max-time", "0.05"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "threads: 1; allocator:" in out and "theoretical peak" in out and "versions: torch" in out
    assert "ratio" in out.splitlines()[5] and "% peak" in out


def test_training_step_rows():
    pytest.importorskip("timm")
    report = benchmark_training(["mobilenet_v3_small_050"], shapes=[(2, 32)], threads=1, compare=["timm"],
                                schedule=TINY)
    ours, timm = report.results
    assert (ours.task, ours.source, timm.source) == ("train", "ours", "timm")
    assert ours.error is None and timm.error is None and "10 classes" in ours.note
    assert timm.ratio == pytest.approx(ours.median_ms / timm.median_ms)


def test_onnxruntime_route_runs():
    pytest.importorskip("onnxruntime")
    report = benchmark(["mobilenet_v3_small_050"], runtimes=["onnxruntime"], resolution=32, threads=1, schedule=TINY)
    (row,) = report.results
    assert row.error is None and row.runs >= 2 and row.setup_s > 0 and row.note


def test_median_ci_and_quartiles():
    assert math.isinf(median_ci([1.0, 2.0]))
    assert median_ci([1.0] * 50) == 0.0
    s = summarize([0.001, 0.002, 0.003, 0.004, 0.005])
    assert (s["q1_ms"], s["median_ms"], s["q3_ms"]) == pytest.approx((2.0, 3.0, 4.0))
    assert s["iqr_ms"] == pytest.approx(2.0)


def test_theoretical_peak_from_flags():
    peak = theoretical_peak({"avx512f", "avx512_vnni", "fma", "avx2"}, 2300.0, 2)
    assert peak.fp32_gmacs == pytest.approx(2 * 2 * 16 * 2.3)
    assert peak.int8_gmacs == pytest.approx(4 * peak.fp32_gmacs)
    assert theoretical_peak({"avx2", "fma"}, 3000.0, 1).fp32_gmacs == pytest.approx(2 * 8 * 3.0)
    assert theoretical_peak(set(), 1000.0, 1).int8_gmacs is None


def _row(source, runtime, ms, precision="fp32", batch=1, ratio=None):
    return Result("mobilenet_v2_100", source, "x", "inference", runtime, precision, batch, 224, 2, "NCHW",
                  runs=5, median_ms=ms, ratio=ratio)


def test_claims_read_the_right_rows():
    rows = [
        _row("ours", "eager", 10.0), _row("ours", "onnxruntime", 2.0), _row("ours", "executorch", 1.5),
        _row("torchvision", "eager", 9.0, ratio=10 / 9), _row("torchvision", "onnxruntime", 1.8),
        _row("ours", "onnxruntime", 20.0, batch=32), _row("ours", "onnxruntime", 10.0, precision="int8", batch=32),
    ]
    got = {(c["check"], c["batch"]): c for c in claims(rows)}
    eager = got["eager NCHW: ours vs torchvision", 1]
    assert eager["value"] == pytest.approx(10 / 9, abs=1e-3) and not eager["holds"]
    best = got["fastest fp32 route: ours vs torchvision ONNX Runtime", 1]
    assert best["value"] == pytest.approx(1.5 / 1.8, abs=1e-3) and best["holds"] and "executorch" in best["compared"]
    speedup = got["fastest fp32 route vs torchvision eager NCHW", 1]
    assert speedup["value"] == pytest.approx(6.0) and speedup["holds"]
    int8 = got["int8 vs fp32 (ours, fastest routes)", 32]
    assert int8["value"] == pytest.approx(2.0) and int8["holds"]


def test_charts_from_records(tmp_path):
    from mobilenet.bench.charts import family, plot, published_top1

    assert family("mobilenet_v3_large_minimal_100") == "MobileNetV3-Large" and family("mobilenet_v1_050") == "MobileNetV1"
    assert published_top1("ours", "mobilenet_v2_100", 224) == 72.0  # the V2 paper's Table 4
    assert published_top1("torchvision", "mobilenet_v2_100", 224) == pytest.approx(72.154)  # torchvision DEFAULT
    rows = [
        Result(m, s, m, "inference", rt, "fp32", 1, 224, 2, "NCHW", runs=5, median_ms=ms, macs=macs, params=p)
        for m, macs, p in (("mobilenet_v2_100", 300_000_000, 3_500_000), ("mobilenet_v3_small_100", 57_000_000, 2_500_000))
        for s, rt, ms in (("ours", "eager", 10.0), ("ours", "executorch", 2.0), ("torchvision", "eager", 11.0))
    ]
    path = tmp_path / "c.png"
    plot(rows, path, peak_gmacs=147.2)
    assert path.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="no inference result"):
        plot([], tmp_path / "d.png")
    assert not (tmp_path / "d.png").exists()
