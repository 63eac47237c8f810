"""What a new user meets on the command line: a fast --help/--version, progress, predict
skipping non-images, eval writing nothing unasked, bench saying when its figures are noise."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from mobilenet.cli import main

FRESH = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "MOBILENET_NO_REEXEC")}


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=FRESH, timeout=120)


@pytest.mark.parametrize("argv", [["--version"], ["--help"], []])
def test_version_and_help_import_no_torch(argv):
    # Load-independent: what the fast path imports, not how long it takes.
    code = ("import sys\nfrom mobilenet.cli import main\n"
            f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO TORCH')")
    out = _python(code)
    assert out.stdout.strip().endswith("NO TORCH"), out.stdout + out.stderr


def test_every_command_parser_builds_without_torch():
    out = _python("import sys\nfrom mobilenet.cli import build_parser\nbuild_parser()\n"
                  "import mobilenet\nprint(sorted(m for m in ('torch', 'numpy', 'PIL') if m in sys.modules))")
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_import_mobilenet_is_lazy_and_api_still_works():
    out = _python("import sys, mobilenet\nassert 'torch' not in sys.modules\n"
                  "from mobilenet import MobileNetV3, create_model, profile\n"
                  "import mobilenet.profile as _\n"  # the submodule must not hide the function
                  "assert callable(mobilenet.profile) and mobilenet.profile is profile\n"
                  "assert callable(mobilenet.deploy) and callable(mobilenet.weights.load_tflite)\n"
                  "assert isinstance(create_model('mobilenet_v1_025'), MobileNetV3.__mro__[1])\n"
                  "assert set(mobilenet.__all__) <= set(dir(mobilenet))\nprint('ok')")
    assert out.stdout.strip() == "ok", out.stderr


def test_version_does_not_reexecute(monkeypatch, capsys):
    import mobilenet.cli as cli

    calls = []
    monkeypatch.setattr(cli.os, "execve", lambda *a: calls.append(a))
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    monkeypatch.delenv("MOBILENET_NO_REEXEC", raising=False)
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    for argv in (["mobilenet", "--version"], ["mobilenet", "--help"], ["mobilenet", "info", "--help"]):
        monkeypatch.setattr(sys, "argv", argv)
        with pytest.raises(SystemExit) as exit_:
            cli.main()
        assert exit_.value.code == 0
    assert calls == []


def test_version_wall_time():
    # A generous bound (9.6 s before; well under 1 s on an idle machine): timing is not the test above.
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "mobilenet", "--version"], capture_output=True, text=True,
                         env=FRESH, timeout=120)
    assert out.returncode == 0 and out.stdout.startswith("mobilenet ")
    assert time.perf_counter() - start < 3


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    """A V2-0.35 weights file (two classes) alone in its folder, and a folder of images."""
    import mobilenet
    from mobilenet.images import Preprocess
    from mobilenet.weights.store import save_weights

    root = tmp_path_factory.mktemp("user")
    from train_helpers import make_folder

    data = make_folder(root / "data", n=4, size=20)
    (root / "w").mkdir()
    weights = save_weights(mobilenet.create_model("mobilenet_v2_035", num_classes=2).eval(),
                           root / "w" / "tiny.safetensors", preprocess=Preprocess(resolution=32, crop_pct=1.0),
                           labels=["blue", "red"])
    return weights, data


def _listing(*folders):
    return sorted(str(p) for f in folders for p in f.rglob("*"))


def test_eval_writes_nothing_unasked(tiny_weights, capsys):
    weights, data = tiny_weights
    before = _listing(weights.parent, data)
    assert main(["eval", "--weights", str(weights), "--data", str(data), "--split", "all", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["images"] == 8 and out["confusion_png"] is None
    assert _listing(weights.parent, data) == before  # no confusion PNG beside the weights or in the data


def test_eval_unwritable_confusion_still_prints_results(tiny_weights, tmp_path, capsys):
    weights, data = tiny_weights
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    png = tmp_path / "out.png"
    png.mkdir()  # a folder where the PNG should go: writing it fails after the evaluation
    code = main(["eval", "--weights", str(weights), "--data", str(data), "--split", "all", "--confusion", str(png)])
    captured = capsys.readouterr()
    assert code == 2
    assert "top-1" in captured.out and "blue" in captured.out  # the results came out all the same
    assert str(png) in captured.err and "Traceback" not in captured.err
    assert main(["eval", "--weights", str(weights), "--data", str(data), "--confusion",
                 str(blocker / "x.png")]) == 2  # refused before the work: no such folder
    assert "no such folder" in capsys.readouterr().err


def test_eval_progress_on_stderr_and_confusion_when_asked(tiny_weights, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MOBILENET_PROGRESS", "1")  # stderr is no terminal here
    weights, data = tiny_weights
    png = tmp_path / "cm.png"
    assert main(["eval", "--weights", str(weights), "--data", str(data), "--split", "all",
                 "--confusion", str(png)]) == 0
    captured = capsys.readouterr()
    assert png.read_bytes()[:4] == b"\x89PNG" and str(png) in captured.out
    assert "evaluated images: 8/8" in captured.err
    assert main(["eval", "--weights", str(weights), "--data", str(data), "--split", "all", "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_predict_skips_non_images_and_prints_one_probability_format(tmp_path, capsys):
    import re

    import mobilenet
    from mobilenet.images import Preprocess
    from mobilenet.weights.store import save_weights
    from train_helpers import make_folder

    photos = make_folder(tmp_path / "photos", n=2, size=20) / "red"
    (photos / "COPYRIGHT").write_text("Photos (c) somebody. Not an image.\n")
    # 1000 untrained classes: probabilities near 0.001, which "%.4g" would print as 0.001003
    weights = save_weights(mobilenet.create_model("mobilenet_v2_035").eval(), tmp_path / "w.safetensors",
                           preprocess=Preprocess(resolution=32, crop_pct=1.0))
    files = sorted(str(p) for p in photos.iterdir())
    assert main(["predict", "--weights", str(weights), *files]) == 0
    captured = capsys.readouterr()
    assert "COPYRIGHT" in captured.err and "Traceback" not in captured.err
    assert captured.out.count("000.png") == 1 and captured.out.count("001.png") == 1
    lines = [line for line in captured.out.splitlines() if re.match(r"^(\S+\.png)?\s+\d\s", line)]
    assert len(lines) == 10  # 2 images x top-5
    probabilities = [line.split()[-4] for line in lines]
    assert all(re.fullmatch(r"[01]\.\d{4}", p) for p in probabilities), probabilities
    assert captured.out.splitlines()[0].split() == ["image", "rank", "probability", "index", "label"]
    # nothing worked: an error and a non-zero exit
    assert main(["predict", "--weights", str(weights), str(photos / "COPYRIGHT")]) == 2
    assert "COPYRIGHT" in capsys.readouterr().err


def test_info_counts_come_from_the_cache_and_match_the_counter(tmp_path, monkeypatch, capsys):
    import dataclasses
    import importlib

    import mobilenet
    from mobilenet import counts
    from mobilenet.registry import MODELS

    profile_module = importlib.import_module("mobilenet.profile")  # mobilenet.profile is the function
    monkeypatch.setenv("MOBILENET_CACHE_DIR", str(tmp_path / "cache"))
    requests = [(n, MODELS[n].resolution) for n in MODELS] + [("mobilenet_v3_small_100", 160)]
    cold = counts.model_counts(requests)  # every model counted by a real forward pass, then cached
    assert (tmp_path / "cache" / counts.FILE).is_file()
    real = profile_module.profile
    for name, resolution in (("mobilenet_v1_025", 224), ("mobilenet_v3_small_100", 160)):  # round trip of the file
        want = dataclasses.asdict(real(mobilenet.create_model(name), resolution))
        assert cold[requests.index((name, resolution))] == want, name

    def no_counting(*args, **kwargs):
        raise AssertionError("counted again although cached")

    monkeypatch.setattr(profile_module, "profile", no_counting)
    assert counts.model_counts(requests) == cold  # every model, from the cache, equal to the counter's figures
    v2 = cold[requests.index(("mobilenet_v2_100", 224))]
    assert (v2["params"], v2["macs"], v2["tf_slim_params"]) == (3_504_872, 300_774_272, 3_472_041)
    # `mobilenet info` for the whole zoo now reads the file, in a process that never loads torch
    assert main(["info", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    code = ("import sys\nfrom mobilenet.cli import main\nrc = main(['info', '--json'{extra}])\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO TORCH')\nsys.exit(rc)")
    env = dict(FRESH, MOBILENET_CACHE_DIR=str(tmp_path / "cache"))
    run = lambda extra="": subprocess.run([sys.executable, "-c", code.format(extra=extra)], capture_output=True,
                                          text=True, env=env, timeout=300)
    warm = run()
    assert warm.returncode == 0 and warm.stdout.rstrip().endswith("NO TORCH"), warm.stderr
    assert json.loads(warm.stdout.rstrip()[: -len("NO TORCH")]) == rows
    assert run(", 'mobilenet_v3_small_*', 'mobilenet_v2_100'").stdout.rstrip().endswith("NO TORCH")
    assert main(["info", "mobilenet_v2_10"]) == 2  # not in the cached listing: the registry explains
    assert "did you mean" in capsys.readouterr().err
    # a different resolution, other options or changed code are counted, never served stale
    for call in (lambda: counts.model_counts([("mobilenet_v2_100", 192)]),
                 lambda: counts.model_counts([("mobilenet_v2_100", 224)], options={"dropout": 0.5})):
        with pytest.raises(AssertionError, match="counted again"):
            call()
    monkeypatch.setattr(counts, "code_fingerprint", lambda: "changed")
    with pytest.raises(AssertionError, match="counted again"):
        counts.model_counts([("mobilenet_v2_100", 224)])


def test_info_counts_without_a_writable_cache(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MOBILENET_PROGRESS", "1")  # stderr is no terminal here
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("MOBILENET_CACHE_DIR", str(blocker / "cache"))  # cannot be created
    assert main(["info", "mobilenet_v1_025", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["params"] > 0
    monkeypatch.setenv("MOBILENET_CACHE_DIR", str(tmp_path / "c"))
    assert main(["info", "mobilenet_v1_025"]) == 0
    assert "counting params and MACs: mobilenet_v1_025 at 224 px" in capsys.readouterr().err  # progress
    assert main(["info", "mobilenet_v1_025"]) == 0
    assert capsys.readouterr().err == ""  # cached: nothing to wait for


def _bench_row(source, runtime, median, iqr, ratio=None):
    from mobilenet.bench import Result

    return Result("mobilenet_v3_small_100", source, "x", "inference", runtime, "fp32", 1, 224, 1, "NCHW", runs=50,
                  median_ms=median, iqr_ms=iqr, ratio=ratio)


def test_bench_claims_resting_on_noise_are_undecided():
    from mobilenet.bench import claims

    quiet = [_bench_row("ours", "eager", 10.0, 0.5), _bench_row("torchvision", "eager", 11.0, 0.4, ratio=10 / 11)]
    decided = claims(quiet)
    assert decided and all(isinstance(c["holds"], bool) and "not decided" not in c["note"] for c in decided)
    # the figures: median 143.6 ms with an IQR of 293.5 ms
    loud = [_bench_row("ours", "eager", 143.6, 293.5), _bench_row("torchvision", "eager", 11.0, 0.4, ratio=143.6 / 11)]
    got = claims(loud)
    assert got and all(c["holds"] is None and "not decided" in c["note"] for c in got)


def test_bench_picks_threads_from_load_and_flags_noise(monkeypatch, capsys):
    import mobilenet.bench as bench
    from mobilenet.bench import BenchReport, describe_machine

    seen = {}

    def fake_benchmark(names, *, threads, **kwargs):
        seen["threads"] = threads
        rows = [_bench_row("ours", "eager", 143.6, 293.5), _bench_row("torchvision", "eager", 11.0, 0.4, 13.05)]
        return BenchReport(describe_machine(threads), rows, {})

    monkeypatch.setattr(bench, "benchmark", fake_benchmark)
    cores = os.cpu_count()
    monkeypatch.setattr(os, "getloadavg", lambda: (float(cores), float(cores), float(cores)))  # all cores busy
    assert main(["bench", "mobilenet_v3_small_100", "--compare", "torchvision"]) == 0
    out = capsys.readouterr().out
    assert seen["threads"] == 1  # not every core of a busy machine
    assert "idle cores" in out and "NOISE" in out and "WARNING" in out and "noise" in out.split("WARNING")[0]
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert main(["bench", "mobilenet_v3_small_100", "--compare", "torchvision", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert seen["threads"] == cores
    assert [r["noisy"] for r in data["table"]] == [True, False] and "NOISE" in data["noise_warning"]
    assert all(c["holds"] is None for c in data["claims"])


def test_dependency_noise_is_dropped_and_nothing_else():
    import logging

    from mobilenet.quiet import dependency_noise

    # A handler on the logger itself: once torch._logging has configured the "torch" loggers
    # (any earlier test that exported or compiled), they stop propagating to the root logger
    # that pytest's caplog listens on.
    class Keep(logging.Handler):
        def __init__(self):
            super().__init__(logging.WARNING)
            self.messages = []

        def emit(self, record):
            self.messages.append(record.getMessage())

    log = logging.getLogger("torch.utils._pytree")
    kept, level = Keep(), log.level
    log.addHandler(kept)
    log.setLevel(logging.WARNING)
    try:
        dependency_noise()
        dependency_noise()  # idempotent
        log.warning("%s is an Enum subclass and is now natively supported by torch.compile as an opaque value type. "
                    "Calling register_constant() on Enum subclasses is deprecated", "<enum 'KernelPreference'>")
        log.warning("something else about pytrees")
    finally:
        log.removeHandler(kept)
        log.setLevel(level)
    assert kept.messages == ["something else about pytrees"]


def test_torchao_import_is_quiet_under_the_cli():
    pytest.importorskip("torchao")
    code = ("from mobilenet.quiet import dependency_noise\ndependency_noise()\n"
            "import torchao.quantization.pt2e.quantize_pt2e")
    out = _python(code)
    assert out.returncode == 0 and "_pytree" not in out.stderr and "deprecated" not in out.stderr, out.stderr


def test_native_stderr_filter_drops_only_cpuinfo_probes():
    code = ("import os\nfrom mobilenet.quiet import native_stderr_filtered\nwith native_stderr_filtered():\n"
            "    os.write(2, b'[cpuinfo_utils.cpp:87] Failed to open midr file /sys/devices/soc0/image_version\\n')\n"
            "    os.write(2, b'a real problem\\n')\n"
            "os.write(2, b'after\\n')")
    out = _python(code)
    assert out.stderr == "a real problem\nafter\n"


def test_export_and_bench_show_progress_unless_json(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MOBILENET_PROGRESS", "1")  # stderr is no terminal here
    out = tmp_path / "v1.ts"
    argv = ["export", "--model", "mobilenet_v1_025", "--resolution", "32", "--format", "torchscript", "-o", str(out)]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "writing the torchscript file" in err and "checking the file in its runtime" in err
    assert main([*argv, "--json"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and json.loads(captured.out)["format"] == "torchscript"
    bench = ["bench", "mobilenet_v3_small_050", "--resolution", "32", "--threads", "1", "--compare", "none",
             "--min-time", "0", "--max-time", "0.05"]
    assert main(bench) == 0  # stderr is not a terminal here: lines, not a bar
    assert "mobilenet_v3_small_050 b1: timing 1 routes" in capsys.readouterr().err
    assert main([*bench, "--json"]) == 0
    assert capsys.readouterr().err == ""


def test_import_tflite_shows_progress(tmp_path, capsys, monkeypatch):
    from conftest import shared_path

    path = shared_path("tflite", "mobilenet_v1_0.25_128_quant.tflite")
    monkeypatch.setenv("MOBILENET_PROGRESS", "1")
    assert main(["import-tflite", str(path), "-o", str(tmp_path / "v1.safetensors")]) == 0
    err = capsys.readouterr().err
    assert f"reading {path}" in err and "writing" in err


def test_torchscript_export_and_load_print_no_jit_deprecation(tmp_path, capsys):
    """torch warned three times per .ts file that torch.jit is deprecated (FutureWarning on
    stderr): noise to someone who asked for TorchScript; other warnings still pass."""
    import warnings

    from mobilenet.runtimes import load_artifact

    out = tmp_path / "v1.ts"
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert main(["export", "--model", "mobilenet_v1_025", "--resolution", "32", "--format", "torchscript",
                     "-o", str(out), "--quiet"]) == 0
        load_artifact(out)
        warnings.warn("`torch.jit.trace` is deprecated", UserWarning)  # not a FutureWarning: kept
    jit = [str(w.message) for w in seen if w.category is FutureWarning and "torch.jit" in str(w.message)]
    assert jit == [], jit
    assert str(seen[-1].message) == "`torch.jit.trace` is deprecated"


def test_reliability_doc_names_only_tests_that_exist():
    """docs/reliability.md lists each promise with the tests that check it: every test it
    names exists, in the file it names (a `::name` continues the last file named)."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    doc = (root / "docs" / "reliability.md").read_text()
    defined = {p.name: set(re.findall(r"^def (test_\w+)", p.read_text(), re.M))
               for p in (root / "tests").glob("test_*.py")}
    everywhere = set().union(*defined.values())
    named, current = 0, None
    for file, name in re.findall(r"(test_\w+\.py)?::(test_\w+)", doc):
        current = file or current
        assert current and name in defined[current], f"docs/reliability.md names {current}::{name}: no such test"
        named += 1
    bare = set(re.findall(r"`(test_\w+)`", doc))
    assert bare <= everywhere, sorted(bare - everywhere)
    assert named > 40 and len(bare) > 15
