"""The command line as a user meets it: help, `mobilenet info`, documentation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from mobilenet import list_models
from mobilenet.cli import COMMANDS, main

ROOT = Path(__file__).resolve().parents[1]


def test_info_json_lists_every_model(capsys):
    assert main(["info", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["model"] for r in rows] == list_models()
    from mobilenet.published import UNPUBLISHED
    from mobilenet.registry import MODELS

    for row in rows:
        assert row["params"] > 0 and row["resolution"] == MODELS[row["model"]].resolution
        if not row["model"].startswith("mobilenet_"):  # dense models: at their own input size
            continue
        assert row["macs"] > 0
        assert row["published"] or row["model"] in UNPUBLISHED, f"{row['model']} has no published reference"
        assert all(ref["source"] for ref in row["published"])
    v2 = next(r for r in rows if r["model"] == "mobilenet_v2_100")
    assert (v2["params"], v2["macs"], v2["tf_slim_params"]) == (3_504_872, 300_774_272, 3_472_041)


def test_info_table_shows_disagreeing_sources(capsys):
    assert main(["info", "mobilenet_v3_small_100", "--resolution", "224", "160"]) == 0
    out = capsys.readouterr().out
    assert "Table 9" in out and "TF-slim" in out and "2,542,856" in out
    assert "66" in out and "56" in out  # V3-Small's two published MAdds


def test_info_bad_name_is_one_line(capsys):
    assert main(["info", "mobilenet_v2_10"]) == 2
    err = capsys.readouterr().err
    assert "mobilenet_v2_100" in err and "Traceback" not in err and err.count("\n") == 1


def test_module_entry_point_and_allocator_name():
    env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "MOBILENET_NO_REEXEC")}
    code = "import os, sys; from mobilenet.cli import main, allocator; print(allocator())"
    # `python -m mobilenet` (which re-executes itself with the tunables) still runs a command,
    # and allocator() names the set-up a process runs with.
    out = subprocess.run([sys.executable, "-m", "mobilenet", "info", "mobilenet_v1_025", "--json"],
                         capture_output=True, text=True, env=env, check=True).stdout
    assert json.loads(out)[0]["model"] == "mobilenet_v1_025"
    tuned = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env=dict(env, GLIBC_TUNABLES="glibc.malloc.mmap_threshold=2147483647")).stdout
    assert "raised" in tuned


def test_every_command_is_documented():
    doc = (ROOT / "docs" / "cli.md").read_text()
    for name, _ in COMMANDS:
        assert f"## `mobilenet {name}`" in doc, f"docs/cli.md lacks `mobilenet {name}`"
