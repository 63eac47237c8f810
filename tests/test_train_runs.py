"""A run folder belongs to one run: an existing one is refused unless resumed or
overwritten, default names never collide, a lock keeps a second process out (naming
the holder), --resume checks the config against the state it continues, a failed
start leaves no folder, and --name cannot point outside --output."""

from __future__ import annotations

import os

import pytest
import yaml

from mobilenet.cli import main
from mobilenet.train import DataError, Interrupted, Trainer
from mobilenet.train.checkpoint import load_state

from train_helpers import make_folder, tiny_config

TINY = ["--model", "mobilenet_v2_035", "--resolution", "32", "--epochs", "1", "--batch-size", "8", "--threads", "1",
        "--val-split", "0.25", "--quiet"]


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    rc = main([str(a) for a in args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def _stop_at(step: int):
    def stop(trainer, pos):
        if pos.step == step:
            raise Interrupted

    return stop


def test_existing_run_is_refused_unless_resume_or_overwrite(tmp_path, capsys):
    data = make_folder(tmp_path / "data", n=6)
    runs, run = tmp_path / "runs", tmp_path / "runs" / "ow"
    common = ["train", "--data", data, "--output", runs, "--name", "ow", *TINY]
    assert _cli(capsys, *common)[0] == 0
    weights = (run / "weights.safetensors").read_bytes()
    rc, out, err = _cli(capsys, *common)
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert "--resume" in err and "--overwrite" in err and str(run) in err
    assert (run / "weights.safetensors").read_bytes() == weights  # untouched
    bad_data = ["train", "--data", tmp_path / "missing", *common[3:]]
    rc, out, err = _cli(capsys, *bad_data, "--overwrite")  # a replacement that cannot start keeps the old run
    assert rc == 2 and "missing" in err and (run / "weights.safetensors").read_bytes() == weights, err
    rc, out, err = _cli(capsys, *common, "--overwrite", "--seed", "1")
    assert rc == 0, err
    assert (run / "weights.safetensors").read_bytes() != weights
    assert yaml.safe_load((run / "config.yaml").read_text())["seed"] == 1
    assert load_state(run / "state.pt")["config"]["seed"] == 1
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml", "curves.png", "metrics.csv", "state.pt",
                                                     "weights.safetensors"]  # no lock left behind
    rc, out, err = _cli(capsys, "train", "--overwrite", "--resume", run, "--quiet")
    assert rc == 2 and "not both" in err


def test_default_names_never_collide(tmp_path):
    from mobilenet.train.rundir import RunDir

    runs = [RunDir.new(tmp_path, None, "mobilenet_v2_035-data") for _ in range(3)]  # within one second
    try:
        assert len({r.path for r in runs}) == 3 and all(r.path.parent == tmp_path for r in runs)
    finally:
        for r in runs:
            r.release()


def test_a_folder_in_use_is_refused_naming_its_holder(tmp_path):
    data = make_folder(tmp_path / "data", n=6)
    refused = []

    def second_process(trainer, pos):  # another writer arrives while the first one trains
        if pos.step == 1:
            for kwargs in ({"overwrite": True}, {"resume": trainer.run_dir}):
                with pytest.raises(ValueError) as exc:
                    Trainer(tiny_config(data, tmp_path, "busy"), progress=False, **kwargs).run()
                refused.append(str(exc.value))

    s = Trainer(tiny_config(data, tmp_path, "busy", epochs=1), callbacks=[second_process], progress=False).run()
    assert not s["interrupted"] and len(refused) == 2
    for msg in refused:
        assert "in use" in msg and f"pid {os.getpid()}" in msg and str(tmp_path / "busy") in msg, msg
    assert load_state(tmp_path / "busy" / "state.pt")["config"]["epochs"] == 1  # the first run's, whole


def test_resume_refuses_another_config_and_says_what_differs(tmp_path, capsys):
    data = make_folder(tmp_path / "data", n=6)
    run = tmp_path / "r"
    Trainer(tiny_config(data, tmp_path, "r", epochs=2), callbacks=[_stop_at(1)], progress=False).run()
    saved = yaml.safe_load((run / "config.yaml").read_text())
    (run / "config.yaml").write_text(yaml.safe_dump({**saved, "lr": 0.5, "label_smoothing": 0.3}))
    rc, out, err = _cli(capsys, "train", "--resume", run, "--quiet")
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert "lr 0.5" in err and "label_smoothing 0.3" in err and "state.pt" in err and str(saved["lr"]) in err
    assert load_state(run / "state.pt")["step"] == 1  # nothing continued
    (run / "config.yaml").write_text(yaml.safe_dump(saved))
    rc, out, err = _cli(capsys, "train", "--resume", run, "--quiet")
    assert rc == 0, err


@pytest.mark.parametrize("data_kind", ["missing", "one_class"])
def test_failed_start_leaves_no_run_folder(tmp_path, data_kind):
    data = tmp_path / "missing"
    if data_kind == "one_class":
        data = make_folder(tmp_path / "data", n=4)
        for p in (data / "blue").iterdir():
            p.unlink()
        (data / "blue").rmdir()
    runs = tmp_path / "runs"
    for name in ("named", None):
        with pytest.raises(DataError):
            Trainer(tiny_config(data, runs, name), progress=False).run()
    assert list(runs.iterdir()) == []


@pytest.mark.parametrize("name", ["../../x", "a/b", "..", ".", "", "ABSOLUTE", "a\\b"])
def test_name_cannot_leave_output(tmp_path, capsys, name):
    name = str(tmp_path / "abs") if name == "ABSOLUTE" else name
    out = tmp_path / "deep" / "runs"
    rc, _, err = _cli(capsys, "train", "--output", out, "--name", name, "--epochs", "1", "--quiet")
    assert rc == 2 and "--name" in err and len(err.strip().splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == []  # nothing written anywhere


def test_a_file_system_without_locks_runs_and_says_so(tmp_path, monkeypatch):
    import errno

    from mobilenet.train import rundir

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(rundir.fcntl, "flock", no_locks)
    run = rundir.RunDir.new(tmp_path, "nfs", "stem")
    assert run.path.is_dir() and run.unlocked == os.strerror(errno.ENOLCK)
    run.release()


def test_overwrite_killed_before_its_first_save_never_resumes_the_old_state(tmp_path, capsys):
    """The issue's case: a reused name killed before its first save resumed the *old*
    state.pt under the new config. Now --overwrite removes the old run's files once the
    new run starts, so a SIGKILL before the first save leaves nothing of the old run to
    resume, and --resume says what to do."""
    import signal
    import subprocess
    import sys
    import textwrap

    data = make_folder(tmp_path / "data", n=6)
    Trainer(tiny_config(data, tmp_path, "reused", epochs=1), progress=False).run()  # the old, finished run
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from train_helpers import tiny_config
        from mobilenet.train import Trainer

        def kill(trainer, pos):  # step 1: no state saved yet (saves come every few minutes or epochs)
            os.kill(os.getpid(), signal.SIGKILL)

        Trainer(tiny_config({str(data)!r}, {str(tmp_path)!r}, "reused", seed=7, epochs=3), callbacks=[kill],
                overwrite=True, progress=False).run()
        """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    run = tmp_path / "reused"
    assert not (run / "state.pt").exists() and not (run / "weights.safetensors").exists()
    assert not (run / "metrics.csv").exists()  # the old run's rows would mix with the new run's
    assert yaml.safe_load((run / "config.yaml").read_text())["seed"] == 7
    rc, _, err = _cli(capsys, "train", "--resume", run, "--quiet")
    assert rc == 2 and "no training state to resume" in err and "--overwrite" in err, err
    assert len(err.strip().splitlines()) == 1 and not (run / "state.pt").exists()
