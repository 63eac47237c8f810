"""The same command under torchrun (2 CPU processes, gloo, SyncBatchNorm) gives the
weights of a single process with the same global batch.

A tiny MobileNet at 32 px has 1x1 maps in its last blocks, so BatchNorm over a batch
of 8 is ill-conditioned and float rounding alone moves the result: one process with 1
vs 2 threads differs by 0.15-0.3 of the distance the weights travel in these two
steps (measured). Mistakes are far larger: BatchNorm not synchronised gave 12x, a
gradient summed instead of averaged gives about 1x, another data order much more.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

import mobilenet
from train_helpers import make_folder

ARGS = ["--model", "mobilenet_v2_035", "--resolution", "32", "--epochs", "1", "--batch-size", "8", "--threads", "1",
        "--dropout", "0", "--val-split", "0.2", "--sync-bn", "--optimizer", "sgd", "--lr", "0.002", "--quiet"]


def _params(path) -> torch.Tensor:
    state = load_file(str(path))
    return torch.cat([v.flatten().float() for k, v in sorted(state.items()) if "running" not in k and "num_b" not in k])


def test_torchrun_two_processes_matches_one(tmp_path):
    torchrun = shutil.which("torchrun")
    if torchrun is None:
        pytest.skip("torchrun is not on PATH")
    data = make_folder(tmp_path / "data", n=10)  # 16 train images: 2 global batches of 8
    env = dict(os.environ, MOBILENET_NO_REEXEC="1", OMP_NUM_THREADS="1")
    common = ["--data", str(data), "--output", str(tmp_path), *ARGS]
    single = subprocess.run([sys.executable, "-m", "mobilenet", "train", *common, "--name", "one"],
                            capture_output=True, text=True, timeout=300, env=env)
    assert single.returncode == 0, single.stderr + single.stdout
    multi = subprocess.run([torchrun, "--standalone", "--nproc_per_node=2", "-m", "mobilenet", "train", *common,
                            "--name", "two"], capture_output=True, text=True, timeout=300, env=env)
    assert multi.returncode == 0, multi.stderr[-3000:] + multi.stdout[-3000:]
    assert "on 2 processes" in multi.stdout
    assert multi.stdout.count("mobilenet train: done") == 1  # only rank 0 reports
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())

    torch.manual_seed(0)  # the loop's own initialisation
    init = mobilenet.create_model("mobilenet_v2_035", num_classes=2, dropout=0.0).state_dict()
    start = torch.cat([v.flatten().float() for k, v in sorted(init.items()) if "running" not in k and "num_b" not in k])
    one, two = _params(tmp_path / "one" / "weights.safetensors"), _params(tmp_path / "two" / "weights.safetensors")
    travelled = (one - start).norm()
    assert travelled > 0.05
    assert (two - one).norm() / travelled < 0.5
