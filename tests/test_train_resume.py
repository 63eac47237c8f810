"""Nothing lost: a run killed with SIGKILL mid-epoch and resumed ends with the same
weights as an uninterrupted run with the same seed; Ctrl-C saves and stops."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import torch
from safetensors.torch import load_file

from mobilenet.train import Interrupted, Trainer
from mobilenet.train.checkpoint import load_state

from train_helpers import make_folder, tiny_config

KILL = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    from train_helpers import tiny_config
    from mobilenet.train import Trainer

    def kill(trainer, pos):
        if pos.step == {kill_at}:
            os.kill(os.getpid(), signal.SIGKILL)

    cfg = tiny_config({data!r}, {out!r}, "killed", save_every=2)
    Trainer(cfg, callbacks=[kill], progress=False).run()
    """
)


def test_sigkill_mid_epoch_then_resume_matches_uninterrupted(tmp_path):
    data = make_folder(tmp_path / "data", n=20)  # 40 images: 30 train (3 steps of 8... drop_last) / 10 val
    ref = Trainer(tiny_config(data, tmp_path, "straight"), progress=False).run()
    steps_per_epoch = ref["history"][0]["step"]
    assert steps_per_epoch >= 3
    kill_at = steps_per_epoch + 2  # second epoch, after the checkpoint at an even step
    script = KILL.format(tests=os.path.dirname(__file__), data=str(data), out=str(tmp_path), kill_at=kill_at)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    run_dir = tmp_path / "killed"
    state = load_state(run_dir / "state.pt")
    assert state["step"] == kill_at - (kill_at % 2) and 0 < state["batch"] < steps_per_epoch  # mid-epoch
    assert not (run_dir / "weights.safetensors").exists()
    env = dict(os.environ, MOBILENET_NO_REEXEC="1")
    proc = subprocess.run([sys.executable, "-m", "mobilenet", "train", "--resume", str(run_dir), "--quiet"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    a = load_file(str(tmp_path / "straight" / "weights.safetensors"))
    b = load_file(str(run_dir / "weights.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-5, msg=key)
    # the epoch metrics of the interrupted epoch add up as if nothing happened
    resumed = load_state(run_dir / "state.pt")["history"]
    for r1, r2 in zip(ref["history"], resumed):
        assert abs(r1["train_loss"] - r2["train_loss"]) < 1e-4 and r1["val_acc"] == r2["val_acc"]


def test_stop_request_saves_state_and_reports_interrupted(tmp_path):
    data = make_folder(tmp_path / "data", n=12)

    def stop(trainer, pos):
        if pos.step == 2:
            raise Interrupted

    summary = Trainer(tiny_config(data, tmp_path, "stopped"), callbacks=[stop], progress=False).run()
    assert summary["interrupted"]
    assert load_state(tmp_path / "stopped" / "state.pt")["step"] == 2
    assert any("--resume" in line for line in summary["lines"])


def test_sigint_stops_cleanly_and_saves(tmp_path):
    data = make_folder(tmp_path / "data", n=12)
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from train_helpers import tiny_config
        from mobilenet.train import Trainer
        def ctrl_c(trainer, pos):
            if pos.step == 1:
                os.kill(os.getpid(), signal.SIGINT)
        s = Trainer(tiny_config({str(data)!r}, {str(tmp_path)!r}, "ctrlc", epochs=5), callbacks=[ctrl_c],
                    progress=False).run()
        sys.exit(130 if s["interrupted"] else 0)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 130, proc.stderr
    assert "Traceback" not in proc.stderr
    assert load_state(tmp_path / "ctrlc" / "state.pt")["step"] == 1
    # SIGTERM (`kill PID`, a scheduler) ended the run without saving; now it stops like Ctrl-C
    term = script.replace("signal.SIGINT", "signal.SIGTERM").replace('"ctrlc"', '"term"')
    proc = subprocess.run([sys.executable, "-c", term], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 130 and "Traceback" not in proc.stderr, proc.stderr
    assert "SIGTERM: stopping after this step and saving" in proc.stdout
    assert load_state(tmp_path / "term" / "state.pt")["step"] == 1


# -- kill windows ------------------------------------------------------------------------------
DIE = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    import torch
    from train_helpers import tiny_config
    import mobilenet.train.loop as loop
    from mobilenet.train import Trainer

    {patch}

    cfg = tiny_config({data!r}, {out!r}, {name!r}, **{over!r})
    Trainer(cfg, progress=False).run()
    """
)


def _die(tmp_path, data, name: str, patch: str, **over) -> None:
    script = DIE.format(tests=os.path.dirname(__file__), data=str(data), out=str(tmp_path), name=name,
                        patch=textwrap.dedent(patch), over=over)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr


def _resume(run_dir) -> None:
    env = dict(os.environ, MOBILENET_NO_REEXEC="1")
    proc = subprocess.run([sys.executable, "-m", "mobilenet", "train", "--resume", str(run_dir), "--quiet"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr + proc.stdout


def test_default_saves_by_wall_time_so_a_kill_in_epoch_one_resumes(tmp_path):
    from mobilenet.train import resolve_config

    assert 0 < resolve_config({}).save_minutes <= 10 and resolve_config({}).save_every == 0
    data = make_folder(tmp_path / "data", n=20)
    # every step is "a few minutes" here: a kill in step 3 of epoch 1 finds step 2 saved
    _die(tmp_path, data, "early", """
        def step(self, *a, _real=loop.Trainer._step):
            if self.pos.step == 2:
                os.kill(os.getpid(), signal.SIGKILL)
            return _real(self, *a)
        loop.Trainer._step = step
        """, save_minutes=1e-9, epochs=1)
    state = load_state(tmp_path / "early" / "state.pt")
    assert (state["epoch"], state["step"]) == (0, 2)
    _resume(tmp_path / "early")
    assert (tmp_path / "early" / "weights.safetensors").is_file()


def test_kill_at_the_metrics_write_loses_no_epoch(tmp_path):
    data = make_folder(tmp_path / "data", n=8)
    _die(tmp_path, data, "metrics", """
        def write_metrics(path, history, _real=loop.write_metrics):
            if len(history) == 2:  # the last epoch
                os.kill(os.getpid(), signal.SIGKILL)
            _real(path, history)
        loop.write_metrics = write_metrics
        """, epochs=2)
    _resume(tmp_path / "metrics")
    rows = (tmp_path / "metrics" / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows] == ["epoch", "1", "2"]
    assert (tmp_path / "metrics" / "curves.png").stat().st_size > 0


def test_a_kill_during_a_save_leaves_no_temporary_after_resume(tmp_path):
    data = make_folder(tmp_path / "data", n=20)
    _die(tmp_path, data, "tmp", """
        _real_save = torch.save
        def save(obj, f, *a, **k):
            _real_save(obj, f, *a, **k)
            if isinstance(obj, dict) and obj.get("step") == 2:  # written, not yet renamed
                os.kill(os.getpid(), signal.SIGKILL)
        torch.save = save
        """, save_every=1, epochs=1)
    run = tmp_path / "tmp"
    assert any(p.name.startswith(".state.pt.") and p.name.endswith(".tmp") for p in run.iterdir())
    (run / ".notes.tmp").write_text("not ours")
    _resume(run)
    left = sorted(p.name for p in run.iterdir() if p.name.startswith("."))
    assert left == [".notes.tmp"]
