"""Writing files: a full disk or a read-only folder gives one line naming the file and
a non-zero exit, leaves no temporary behind and the previous file intact; files
follow the umask. The full disk is a real 2 MB tmpfs (skipped where mounting one is
not permitted), and the same failures are also forced by monkeypatching."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import mobilenet
from mobilenet.cli import main
from mobilenet.files import WriteError, atomic_path, atomic_write_bytes, check_writable_file

from conftest import shared_path


def _mount(folder: Path, options: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if not sys.platform.startswith("linux"):
        pytest.skip("tmpfs mounts are Linux only")
    try:
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot mount a tmpfs here: {exc}")
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {proc.stderr.strip()}")
    return folder


def _unmount(folder: Path) -> None:
    subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=30)


@pytest.fixture
def small_disk(tmp_path):
    """A real 2 MB file system: anything bigger fails with ENOSPC."""
    disk = _mount(tmp_path / "disk", "size=2m")
    yield disk
    _unmount(disk)


@pytest.fixture
def read_only(tmp_path):
    folder = _mount(tmp_path / "ro", "size=1m,ro")
    yield folder
    _unmount(folder)


def _leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file() and p.name not in keep)


def _cli(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    err = capsys.readouterr().err
    return code, err


# -- the one write path ------------------------------------------------------------------
def test_full_disk_keeps_the_previous_file_and_no_temporary(small_disk):
    path = small_disk / "out.bin"
    atomic_write_bytes(path, b"previous")
    with pytest.raises(WriteError) as info:
        atomic_write_bytes(path, os.urandom(3 << 20))
    assert info.value.errno == errno.ENOSPC
    assert str(info.value) == f"no space left on device writing {path}: free some space or write elsewhere"
    assert path.read_bytes() == b"previous"
    assert _leftovers(small_disk, {"out.bin"}) == []


def test_torch_save_on_a_full_disk_says_no_space(small_disk):
    # torch.save reports a full disk as "RuntimeError: ... unexpected pos"
    path = small_disk / "state.pt"
    with pytest.raises(WriteError, match=f"no space left on device writing {path}"):
        with atomic_path(path) as tmp:
            torch.save({"w": torch.zeros(1 << 20)}, tmp)
    assert _leftovers(small_disk, set()) == []


def test_write_errors_are_recognised_without_a_real_disk(tmp_path, monkeypatch):
    path = tmp_path / "x.bin"
    atomic_write_bytes(path, b"old")

    def refuse(*args):
        raise PermissionError(errno.EACCES, "Permission denied", str(args[-1]))

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(WriteError, match=f"cannot write {path}: permission denied"):
        atomic_write_bytes(path, b"new")
    monkeypatch.undo()
    assert path.read_bytes() == b"old" and _leftovers(tmp_path, {"x.bin"}) == []

    class SafetensorLike(Exception):  # a library's own error type, errno only in its text
        pass

    with pytest.raises(WriteError) as info:
        with atomic_path(path) as tmp:
            tmp.write_bytes(b"half")
            raise SafetensorLike("Error while serializing: I/O error: No space left on device (os error 28)")
    assert info.value.errno == errno.ENOSPC and path.read_bytes() == b"old"
    with pytest.raises(ZeroDivisionError):  # anything else goes through untouched
        with atomic_path(path):
            raise ZeroDivisionError
    assert _leftovers(tmp_path, {"x.bin"}) == []


def test_written_files_follow_the_umask(tmp_path):
    from mobilenet.weights import save_weights

    old = os.umask(0o022)
    try:
        path = save_weights(mobilenet.create_model("mobilenet_v3_small_050", num_classes=3), tmp_path / "w.safetensors")
        atomic_write_bytes(tmp_path / "b.bin", b"x")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644  # safetensors alone writes 0600
    assert (tmp_path / "b.bin").stat().st_mode & 0o777 == 0o644


# -- commands ---------------------------------------------------------------------------
def test_torchscript_export_to_a_full_disk_is_one_line_not_an_abort(small_disk):
    # torch.jit.save's C++ writer aborted the process (exit 134) and left its temporary
    out = small_disk / "m.ts"
    env = dict(os.environ, MOBILENET_NO_REEXEC="1")
    proc = subprocess.run([sys.executable, "-m", "mobilenet", "export", "--model", "mobilenet_v3_small_050",
                           "--format", "torchscript", "-o", str(out)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"no space left on device writing {out}" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.strip().splitlines()[-1].startswith("mobilenet export: error:")
    assert _leftovers(small_disk, set()) == []


def test_import_tflite_to_a_full_disk(small_disk, capsys):
    tflite = shared_path("tflite", "mobilenet_v2_1.0_224_quant.tflite")
    out = small_disk / "v2.safetensors"
    out.write_bytes(b"previous")
    code, err = _cli(capsys, "import-tflite", str(tflite), "-o", str(out))
    assert code == 2 and f"no space left on device writing {out}" in err, err
    assert out.read_bytes() == b"previous" and _leftovers(small_disk, {out.name}) == []


def test_train_on_a_full_disk_says_no_space(small_disk, tmp_path, capsys):
    from train_helpers import make_folder

    data = make_folder(tmp_path / "data", n=6)
    code, err = _cli(capsys, "train", "--data", str(data), "--model", "mobilenet_v2_035", "--resolution", "32",
                     "--epochs", "1", "--batch-size", "8", "--output", str(small_disk), "--name", "r",
                     "--threads", "1", "--workers", "0", "--val-split", "0.25", "--quiet")
    assert code != 0
    assert "no space left on device writing" in err and str(small_disk / "r") in err, err
    assert not [p for p in small_disk.rglob("*") if p.name.endswith(".tmp")]  # (a failed start removes its folder)


def test_export_and_quantize_to_a_read_only_folder(read_only, tmp_path, capsys):
    out = read_only / "m.onnx"
    code, err = _cli(capsys, "export", "--model", "mobilenet_v3_small_050", "--format", "onnx", "-o", str(out))
    assert code == 2 and err.strip() == f"mobilenet export: error: cannot write {out}: read-only file system", err
    from mobilenet.weights import save_weights

    weights = save_weights(mobilenet.create_model("mobilenet_v3_small_050", num_classes=3),
                           tmp_path / "w.safetensors")
    out = read_only / "q.pt2"
    code, err = _cli(capsys, "quantize", "--weights", str(weights), "--calib", str(tmp_path), "-o", str(out))
    last = err.strip().splitlines()[-1]  # (progress lines come first)
    assert code == 2 and last == f"mobilenet quantize: error: cannot write {out}: read-only file system", err
    with pytest.raises(WriteError, match="read-only file system"):
        check_writable_file(read_only / "sub" / "x.bin")


def test_gitignore_covers_what_the_commands_write():
    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        pytest.skip("not a git checkout")
    written = ["runs/r/weights.safetensors", "model.onnx", "v3s.pte", "v2-int8.pt2", "m.ts", "w.tflite", "state.pt",
               "confusion-digits.png", ".model.onnx.x1y2z3.tmp", "v2.safetensors"]
    proc = subprocess.run(["git", "check-ignore", "--no-index", *written], cwd=root, capture_output=True, text=True)
    assert sorted(proc.stdout.split()) == sorted(written)
    kept = ["docs/benchmarks.png", "src/mobilenet/files.py", "README.md"]
    proc = subprocess.run(["git", "check-ignore", "--no-index", *kept], cwd=root, capture_output=True, text=True)
    assert proc.stdout.split() == []
