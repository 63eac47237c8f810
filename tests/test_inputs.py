"""Hostile inputs: decompression bombs, crafted safetensors metadata, byte-flipped
TFLite files. Each is one clear error naming the file (or a skipped image), never a
traceback from inside a library, and never a huge allocation."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import mobilenet
from mobilenet.cli import main
from mobilenet.images import ImageError, Preprocess, load_image, verify_image

from conftest import shared_path


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def png_bomb(path: Path, side: int = 20000) -> Path:
    """A valid 1-bit PNG of side x side black pixels: 48 kB on disk, 1.2 GB as RGB."""
    comp = zlib.compressobj(9)
    rows = (b"\x00" + bytes(side // 8)) * 100  # filter byte + a row of 1-bit pixels
    idat = b"".join(comp.compress(rows) for _ in range(side // 100)) + comp.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    return png_bomb(tmp_path_factory.mktemp("bomb") / "bomb.png")


def _photo(path: Path, colour=(200, 40, 40)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(str(path)))
    arr = np.clip(np.array(colour)[None, None] + rng.integers(-60, 60, (24, 24, 3)), 0, 255).astype("uint8")
    Image.fromarray(arr).save(path)
    return path


# -- 4. decompression bombs ------------------------------------------------------------
def test_a_decompression_bomb_is_a_bad_image(bomb):
    for read in (load_image, verify_image):
        with pytest.raises(ImageError, match=r"bomb\.png: 400,000,000 pixels, over the .* an image may have"):
            read(bomb)


def test_predict_reports_a_bomb_in_one_line(bomb, tmp_path, capsys):
    from mobilenet.weights import save_weights

    weights = save_weights(mobilenet.create_model("mobilenet_v3_small_050", num_classes=2), tmp_path / "w.safetensors",
                           preprocess=Preprocess(resolution=32), labels=["a", "b"])
    code = main(["predict", "--weights", str(weights), str(bomb)])
    err = capsys.readouterr().err
    assert code != 0 and str(bomb) in err and "pixels" in err and "Traceback" not in err, err


def test_train_and_eval_data_skip_a_bomb(bomb, tmp_path):
    from mobilenet.evaluate import evaluate
    from mobilenet.train.data import load_data

    for name in ("red", "blue"):
        for i in range(4):
            _photo(tmp_path / "data" / name / f"{i}.png", (200, 40, 40) if name == "red" else (40, 40, 200))
    (tmp_path / "data" / "red" / "bomb.png").write_bytes(bomb.read_bytes())
    split = load_data(str(tmp_path / "data"), val_split=0.25, log=lambda m: None)
    assert [Path(s.path).name for s in split.skipped] == ["bomb.png"]
    assert "pixels" in split.skipped[0].reason
    assert len(split.train) + len(split.val) == 8
    # eval --labels-from-filenames reads files as it goes: the bomb is skipped, the rest counted
    items = [(bomb, 0), (_photo(tmp_path / "flat" / "a_1.png"), 0), (_photo(tmp_path / "flat" / "b_1.png"), 1)]
    model = mobilenet.create_model("mobilenet_v3_small_050", num_classes=2)
    result = evaluate(model, items, ["a", "b"], preprocess=Preprocess(resolution=32), batch_size=4)
    assert result.images == 2


def test_quantize_calibration_skips_a_bomb(bomb, tmp_path):
    from mobilenet.quantize import calibration_batches

    calib = tmp_path / "calib"
    _photo(calib / "a.png")
    (calib / "bomb.png").write_bytes(bomb.read_bytes())
    batches = calibration_batches(calib, Preprocess(resolution=32))
    assert sum(len(b) for b in batches) == 1


def test_quantize_command_with_a_bomb_beside_one_image(bomb, tmp_path, capsys, monkeypatch):
    """The command, not only its reader: the bomb skipped leaves one calibration image,
    a batch of 1 that torch.export used to refuse (a ConstraintViolationError traceback).
    And quantize (165 s silent in the issue) says what it is doing."""

    from mobilenet.weights import save_weights

    weights = save_weights(mobilenet.create_model("mobilenet_v3_small_050", num_classes=2).eval(),
                           tmp_path / "w.safetensors", preprocess=Preprocess(resolution=32), labels=["a", "b"])
    calib = tmp_path / "calib"
    _photo(calib / "a.png")
    (calib / "bomb.png").write_bytes(bomb.read_bytes())
    out = tmp_path / "q.pt2"
    monkeypatch.setenv("MOBILENET_PROGRESS", "1")  # stderr is no terminal here
    code = main(["quantize", "--weights", str(weights), "--calib", str(calib), "-o", str(out)])
    captured = capsys.readouterr()
    assert code == 0 and "Traceback" not in captured.err, captured.err
    assert "bomb.png" in captured.err and "pixels" in captured.err  # reported, then skipped
    assert "calibrating on 1 images" in captured.err and "checking the written file" in captured.err  # progress
    assert "top-1 = fp32" in captured.out and out.is_file()


# -- 6. corrupt TFLite files ---------------------------------------------------------------
def _structure_start(data: bytes) -> int:
    """Where the flatbuffer's tables start: after the last weight buffer (Google's
    files keep the weights first). Flips there damage structure, not weight values."""
    tflite = pytest.importorskip("tflite")
    model = tflite.Model.GetRootAsModel(data, 0)
    end = 0
    for i in range(model.BuffersLength()):
        buf = model.Buffers(i)
        if buf.DataLength():
            end = max(end, buf._tab.Vector(buf._tab.Offset(4)) + buf.DataLength())
    return end


def flipped_copies(source: Path, folder: Path, seeds: int = 24, flips: int = 8) -> list[Path]:
    """Deterministic copies of ``source`` with ``flips`` random bits flipped in its structure."""
    data = source.read_bytes()
    start = _structure_start(data)
    paths = []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        damaged = bytearray(data)
        for _ in range(flips):
            damaged[int(rng.integers(start, len(data)))] ^= 1 << int(rng.integers(8))
        path = folder / f"flipped-{seed:02d}.tflite"
        path.write_bytes(bytes(damaged))
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def flipped(tmp_path_factory) -> list[Path]:
    source = shared_path("tflite", "mobilenet_v1_0.25_128_quant.tflite")
    return flipped_copies(source, tmp_path_factory.mktemp("flipped"))


def test_byte_flipped_tflite_files_load_or_fail_in_one_clear_error(flipped):
    from mobilenet.weights.store import WeightsError
    from mobilenet.weights.tflite import load_tflite

    failed = []
    for path in flipped:
        try:
            load_tflite(path)  # a flip in a name or an unused field leaves a loadable file
        except WeightsError as exc:
            assert str(exc).startswith(f"{path}: ") and "\n" not in str(exc), str(exc)
            failed.append(path)
    assert len(failed) >= 16, f"only {len(failed)} of {len(flipped)} copies damaged: the test lost its teeth"


def test_commands_name_a_corrupt_tflite_file(flipped, tmp_path, capsys):
    from mobilenet.weights.store import WeightsError
    from mobilenet.weights.tflite import load_tflite

    def broken(path):
        try:
            load_tflite(path)
        except WeightsError:
            return True
        return False

    bad = [p for p in flipped if broken(p)][:2]
    data = tmp_path / "data"
    for name in ("red", "blue"):
        for i in range(3):
            _photo(data / name / f"{i}.png", (200, 40, 40) if name == "red" else (40, 40, 200))
    for path in bad:
        runs = [["import-tflite", str(path), "-o", str(tmp_path / "out.safetensors")],
                ["eval", "--weights", str(path), "--data", str(data)],
                ["train", "--pretrained", str(path), "--data", str(data), "--epochs", "1", "--output",
                 str(tmp_path / "runs"), "--quiet", "--threads", "1"]]
        for argv in runs:
            code = main(argv)
            err = capsys.readouterr().err
            assert code == 2, (argv, err)
            assert f"{path}: corrupt or damaged TFLite file" in err and "Traceback" not in err, (argv, err)
    assert not (tmp_path / "out.safetensors").exists()


def test_every_command_names_a_truncated_tflite_file(tmp_path, capsys):
    """A cut-off download: the probe for our own metadata (is this .tflite an exported
    file?) ran before the reader and let struct.error out of predict, eval and train."""
    data = shared_path("tflite", "mobilenet_v1_0.25_128_quant.tflite").read_bytes()
    image = _photo(tmp_path / "data" / "red" / "0.png")
    _photo(tmp_path / "data" / "red" / "1.png")
    for i in range(2):
        _photo(tmp_path / "data" / "blue" / f"{i}.png", (40, 40, 200))
    for size in (0, 8, 100, len(data) // 2):
        path = tmp_path / f"cut-{size}.tflite"
        path.write_bytes(data[:size])
        for argv in (["predict", "--weights", str(path), str(image)],
                     ["eval", "--weights", str(path), "--data", str(tmp_path / "data")],
                     ["train", "--pretrained", str(path), "--data", str(tmp_path / "data"), "--epochs", "1",
                      "--output", str(tmp_path / "runs"), "--quiet"],
                     ["import-tflite", str(path), "-o", str(tmp_path / "out.safetensors")]):
            code = main(argv)
            err = capsys.readouterr().err
            assert code == 2 and f"{path}: " in err and "Traceback" not in err, (argv, err)
            assert len(err.strip().splitlines()) == 1, (argv, err)
    assert not (tmp_path / "out.safetensors").exists() and not list((tmp_path / "runs").glob("*"))


# -- 5. crafted safetensors metadata ------------------------------------------------------
@pytest.fixture(scope="module")
def good_weights(tmp_path_factory) -> Path:
    from mobilenet.weights import save_weights

    model = mobilenet.create_model("mobilenet_v3_small_050", num_classes=3)
    return save_weights(model, tmp_path_factory.mktemp("good") / "good.safetensors",
                        preprocess=Preprocess(resolution=64), labels=["a", "b", "c"])


def crafted(good: Path, folder: Path, name: str, edit) -> Path:
    """A copy of ``good`` with its tensors and edited metadata: ``edit(meta)`` returns
    the new metadata (a dict, or a raw string for the JSON itself)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(good), framework="pt") as f:
        meta = json.loads(f.metadata()["mobilenet"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    new = edit(meta)
    path = folder / f"{name}.safetensors"
    save_file(tensors, str(path), metadata={"mobilenet": new if isinstance(new, str) else json.dumps(new)})
    return path


def _with(section: str | None, **values):
    def edit(meta):
        if section is None:
            meta.update(values)
        else:
            meta[section] = {**meta[section], **values}
        return meta
    return edit


CRAFTED = {
    # name: (edit, what the one-line error must say)
    "huge-width": (_with("arch_args", width=5000), r"arch_args.width=5000: expected a number in \(0, 4\]"),
    "wider-than-its-tensors": (_with("arch_args", width=3.5), "tensors do not fit its own metadata"),
    "too-many-values": (_with(None, arch="MobileNetV2", arch_args={"width": 4.0, "n_classes": 100000}),
                        "over the 100,000,000 a weights file may ask for"),
    "arch-args-string": (_with(None, arch_args="bogus"), "arch_args is a str, not an object"),
    "arch-args-list": (_with(None, arch_args=[1, 2]), "arch_args is a list"),
    "arch-args-unknown": (_with("arch_args", widht=1.0), "arch_args.widht: MobileNetV3 has no such argument"),
    "arch-args-nested": (_with("arch_args", width=[[1.0]]), "arch_args.width: a list"),
    "arch-args-list-value": (_with("arch_args", width=[1.0]), r"arch_args.width=\[1.0\]: expected a number"),
    "arch-args-type": (_with("arch_args", width="1.0"), "arch_args.width='1.0': expected a number"),
    "bad-config": (_with("arch_args", config="medium"), "config='medium' is not supported"),
    "resolution-zero": (_with("preprocess", resolution=0), "preprocess.resolution must be an integer in 8..2048"),
    "std-zero": (_with("preprocess", std=[0, 0, 0]), "preprocess.std must be positive"),
    "preprocess-list": (_with(None, preprocess=[224]), "preprocess is a list, not an object"),
    "preprocess-unknown": (_with("preprocess", size=3), "preprocess has unknown field"),
    "labels-string": (_with(None, labels="abc"), "labels must be a list"),
    "unknown-arch": (_with(None, arch="ResNet50"), "unknown architecture 'ResNet50'"),
    "malformed-json": (lambda meta: '{"format": "mobilenet", "arch": ', "metadata is not valid JSON"),
    "json-list": (lambda meta: "[1, 2]", "metadata is a JSON list, not an object"),
    "json-too-deep": (lambda meta: "[" * 100_000 + "]" * 100_000, "metadata is not valid JSON"),  # RecursionError
    "width-nan": (lambda meta: json.dumps({**meta, "arch_args": {**meta["arch_args"], "width": "@"}}).replace(
        '"@"', "NaN"), r"arch_args.width=nan: expected a finite number"),
}


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_crafted_metadata_is_one_error_naming_the_file(case, good_weights, tmp_path):
    import re

    from mobilenet.weights.store import WeightsError, load_weights

    edit, expected = CRAFTED[case]
    path = crafted(good_weights, tmp_path, case, edit)
    with pytest.raises(WeightsError) as info:
        load_weights(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message and re.search(expected, message), message
    if case not in ("wider-than-its-tensors", "too-many-values", "bad-config", "unknown-arch"):
        # the same file as a checkpoint for create_model(name, pretrained=...) fails the same way
        with pytest.raises(WeightsError, match=re.escape(str(path))):
            mobilenet.create_model("mobilenet_v3_small_050", pretrained=path)


def test_crafted_metadata_in_commands(good_weights, tmp_path, capsys):
    path = crafted(good_weights, tmp_path, "w", _with("preprocess", resolution=0))
    data = tmp_path / "data"
    for name in ("a", "b", "c"):
        _photo(data / name / "0.png")
    for argv in (["predict", "--weights", str(path), str(_photo(tmp_path / "x.png"))],
                 ["eval", "--weights", str(path), "--data", str(data)],
                 ["export", "--weights", str(path), "--format", "onnx", "-o", str(tmp_path / "x.onnx")]):
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2 and str(path) in err and "preprocess.resolution" in err and "Traceback" not in err, err


def test_good_metadata_still_loads(good_weights):
    from mobilenet.weights.store import load_weights

    model = load_weights(good_weights)
    assert model.pretrained_cfg["labels"] == ["a", "b", "c"] and model.pretrained_cfg["preprocess"]["resolution"] == 64


# -- 10. every command takes the same weight files; no advice to unpickle -------------------
def test_predict_and_create_model_take_tflite(capsys):
    from mobilenet.weights.tflite import load_tflite

    tflite = shared_path("tflite", "mobilenet_v1_0.25_128_quant.tflite")
    cat = shared_path("photos", "cat.bmp")
    code = main(["predict", "--weights", str(tflite), str(cat), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "Egyptian cat" in out  # Google's file, read by us, on a real photo
    model = mobilenet.create_model("mobilenet_v1_025", pretrained=tflite)
    reference, _ = load_tflite(tflite)
    x = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        assert torch.equal(model(x), reference(x))
    assert model.pretrained_cfg["labels"][0] == "background" and model.num_classes == 1001
    assert mobilenet.create_model("mobilenet_v1_025", pretrained=tflite, num_classes=7).num_classes == 7
    from mobilenet.weights.store import WeightsError

    with pytest.raises(WeightsError, match="holds mobilenet_v1_025 weights, not mobilenet_v2_100"):
        mobilenet.create_model("mobilenet_v2_100", pretrained=tflite)


def test_exported_files_run_where_a_model_is_run_and_are_refused_in_one_line_elsewhere(tmp_path, capsys):
    from mobilenet.export import export_model
    from mobilenet.weights.store import WeightsError

    model = mobilenet.create_model("mobilenet_v3_small_050", num_classes=3)
    model.pretrained_cfg = {"preprocess": Preprocess(resolution=64).to_dict(), "labels": ["a", "b", "c"]}
    onnx = tmp_path / "m.onnx"
    export_model(model, "onnx", onnx)
    image = _photo(tmp_path / "x.png")
    code = main(["predict", "--weights", str(onnx), str(image), "--json"])
    out, err = capsys.readouterr()
    assert code == 0 and any(f'"label": "{x}"' in out for x in "abc"), err
    with pytest.raises(WeightsError, match=r"m\.onnx: a file exported for its runtime \(\.onnx\), not PyTorch weights"):
        mobilenet.create_model("mobilenet_v3_small_050", pretrained=onnx)
    for name in ("a", "b"):
        _photo(tmp_path / "data" / name / "0.png")
        _photo(tmp_path / "data" / name / "1.png")
    for argv in (["export", "--weights", str(onnx), "--format", "onnx", "-o", str(tmp_path / "again.onnx")],
                 ["train", "--pretrained", str(onnx), "--data", str(tmp_path / "data"), "--epochs", "1",
                  "--output", str(tmp_path / "runs"), "--quiet"]):
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2 and "not PyTorch weights" in err and "Traceback" not in err, (argv, err)


def test_foreign_checkpoint_without_a_model_name_everywhere(tmp_path, capsys):
    """A torchvision file: predict and eval find its model from the shapes."""
    from mobilenet.weights import to_torchvision

    model = mobilenet.create_model("mobilenet_v3_small_100", num_classes=3).eval()
    path = tmp_path / "tv.pth"
    torch.save(to_torchvision(model), path)
    image = _photo(tmp_path / "img" / "a" / "0.png")
    _photo(tmp_path / "img" / "b" / "0.png")
    _photo(tmp_path / "img" / "c" / "0.png")
    assert main(["predict", "--weights", str(path), str(image)]) == 0, capsys.readouterr().err
    capsys.readouterr()
    code = main(["eval", "--weights", str(path), "--data", str(tmp_path / "img"), "--split", "all", "--json",
                 "--confusion", str(tmp_path / "c.png")])
    err = capsys.readouterr().err
    assert code == 0, err


def test_no_message_suggests_unpickling(tmp_path):
    import os

    from mobilenet.weights.hub import read_checkpoint
    from mobilenet.weights.store import WeightsError

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    files = {"random.pth": os.urandom(4096), "module.pth": None, "evil.pth": None,
             "tflite.pth": shared_path("tflite", "mobilenet_v1_0.25_128_quant.tflite").read_bytes()[:4096]}
    for name, data in files.items():
        if data is not None:
            (tmp_path / name).write_bytes(data)
    torch.save({"layer": torch.nn.Linear(2, 2)}, tmp_path / "module.pth")
    torch.save({"x": Evil()}, tmp_path / "evil.pth")
    messages = []
    for name in files:
        with pytest.raises(WeightsError) as info:
            read_checkpoint(tmp_path / name)
        messages.append(str(info.value))
    assert all("weights_only" not in m and "\n" not in m for m in messages), messages
    assert "refers to posix.system" in messages[2] and "refused to unpickle" in messages[2]
    assert "refers to torch.nn.modules.linear.Linear" in messages[1]
    source = Path(mobilenet.__file__).parent
    offenders = [p for p in source.rglob("*.py") if "weights_only=False" in p.read_text()]
    assert offenders == []


# -- 15. a timm tf_ checkpoint given as a file loads with TensorFlow's BN eps ---------------
def test_timm_tf_checkpoint_file_gets_tensorflow_bn_eps(tmp_path):
    timm = pytest.importorskip("timm")
    from mobilenet.weights.store import WeightsError

    peer = timm.create_model("tf_mobilenetv3_small_100", pretrained=False).eval()
    with torch.no_grad():  # small running variances, so eps 1e-3 against 1e-5 shows
        for m in peer.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                var = torch.rand(m.running_var.shape) * 0.01 + 1e-3
                m.running_var.copy_(var)
                m.weight.copy_(var.sqrt())
        peer.classifier.weight.mul_(1000)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        want = peer(x)
    neutral, named = tmp_path / "weights.pth", tmp_path / "tf_mobilenetv3_small_100.pth"
    torch.save(peer.state_dict(), neutral)
    torch.save(peer.state_dict(), named)
    for path, options in ((neutral, {"padding": "same"}), (named, {})):
        ours = mobilenet.create_model("mobilenet_v3_small_100", pretrained=path, **options).eval()
        with torch.no_grad():
            got = ours(x)
        assert (got - want).abs().max() <= 1e-4 * want.abs().max(), (path.name, options)
        assert all(m.eps == 1e-3 for m in ours.modules() if isinstance(m, torch.nn.BatchNorm2d))
    with pytest.raises(WeightsError, match="named as timm's TensorFlow ports"):
        mobilenet.create_model("mobilenet_v3_small_100", pretrained=named, padding="symmetric")


# -- files that are not files: pipes, devices, huge "text" ----------------------------------
@pytest.fixture
def fifo(tmp_path):
    """A named pipe nobody writes to: opening it for reading waits forever. Two seconds of
    alarm turn a regression into a failure instead of a hung suite."""
    import os
    import signal

    if not hasattr(os, "mkfifo"):
        pytest.skip("no named pipes here")
    path = tmp_path / "pipe"
    os.mkfifo(path)

    class Hung(BaseException):  # not an OSError: no error handler of ours may swallow it
        pass

    def hung(*args):
        signal.alarm(20)  # and the next wait fails too
        raise Hung("waited 20 s on a FIFO")

    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(20)
    yield path
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def test_pipes_devices_and_huge_text_files_are_refused_not_read(fifo, tmp_path, capsys):
    # `import-tflite --labels /dev/zero` read until the kernel killed it; a FIFO waited forever
    from mobilenet.files import read_text_file

    with pytest.raises(ValueError, match=f"--labels {fifo}: not a regular file"):
        read_text_file(fifo, "--labels")
    big = tmp_path / "big.txt"
    with open(big, "wb") as f:
        f.truncate(20 << 20)  # sparse: 20 MB that take no disk
    with pytest.raises(ValueError, match="20,971,520 bytes, more than the 16,777,216"):
        read_text_file(big, "--labels")
    tflite = shared_path("tflite", "mobilenet_v1_0.25_128_quant.tflite")
    for argv, flag in ((["import-tflite", str(tflite), "-o", str(tmp_path / "o.safetensors"), "--labels", str(fifo)],
                        "--labels"),
                       (["train", "--config", str(fifo), "--output", str(tmp_path / "runs")], "--config"),
                       (["train", "--config", str(tflite), "--output", str(tmp_path / "runs")], "--config")):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert flag in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    # an image argument that is a pipe is skipped like any other non-image; the photo is predicted
    weights = tmp_path / "w.safetensors"
    from mobilenet.weights import save_weights

    save_weights(mobilenet.create_model("mobilenet_v3_small_050", num_classes=2), weights,
                 preprocess=Preprocess(resolution=32), labels=["a", "b"])
    assert main(["predict", "--weights", str(weights), str(fifo), str(_photo(tmp_path / "x.png"))]) == 0
    captured = capsys.readouterr()
    assert f"{fifo}: not a regular file" in captured.err and "x.png" in captured.out
    assert not (tmp_path / "runs").exists() and not (tmp_path / "o.safetensors").exists()
