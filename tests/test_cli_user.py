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
