"""Silencing dependencies' messages that tell a user nothing they can act on, and only those.

- torch's pytree logger warns that torchao registers an Enum "deprecated"-ly each time
  torchao is imported (quantize, export --int8, ExecuTorch): :func:`dependency_noise`
  drops exactly that message.
- ExecuTorch's threadpool probes ARM-only ``midr`` files from C++ and prints five lines
  (``cpuinfo_utils.cpp ... Failed to open midr file``) on x86 the first time a program
  with XNNPACK loads: :func:`native_stderr_filtered` drops those lines from the file
  descriptor itself, passing every other line through.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator

_PYTREE_ENUM = "is an Enum subclass and is now natively supported by torch.compile"
CPUINFO_PROBE = "cpuinfo_utils.cpp"


class _DropMessage(logging.Filter):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in str(record.msg)


def dependency_noise() -> None:
    """Drop the known-useless warnings (idempotent)."""
    log = logging.getLogger("torch.utils._pytree")
    if not any(isinstance(f, _DropMessage) for f in log.filters):
        log.addFilter(_DropMessage(_PYTREE_ENUM))


@contextlib.contextmanager
def native_stderr_filtered(drop: tuple[str, ...] = (CPUINFO_PROBE,)) -> Iterator[None]:
    """Lines written to file descriptor 2 (by C/C++ code too) inside the block are held in a
    temporary file and written out afterwards, less those containing any of ``drop``."""
    fd = 2  # where C and C++ code write, whatever sys.stderr is
    try:
        saved = os.dup(fd)
    except OSError:  # no stderr at all
        yield
        return
    with tempfile.TemporaryFile() as held:
        sys.stderr.flush()
        os.dup2(held.fileno(), fd)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, fd)
            os.close(saved)
            held.seek(0)
            lines = held.read().decode(errors="replace").splitlines(keepends=True)
            kept = "".join(line for line in lines if not any(d in line for d in drop))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()
