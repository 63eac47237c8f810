"""A run folder belongs to one run.

- A new run never writes into a folder that holds anything: an existing name is
  refused unless the run is resumed (``--resume``) or replaced (``--overwrite``).
- A default name (``<model>-<data>-<time>``) is created exclusively, with ``-2``,
  ``-3``... on a collision, so two runs started in the same second get two folders.
- While a run writes, it holds ``.lock`` (``flock``: the kernel drops it when the
  holder dies, even by SIGKILL, so no lock is ever stale); a second process is
  refused with the holder's pid and host.
- Holding the lock, the run removes what a killed writer of ours left behind:
  ``.state.pt.*.tmp`` and the other temporaries of :func:`mobilenet.files.atomic_path`.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
from datetime import datetime
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock; runs there are not locked
    fcntl = None

from .config import check_name

# Everything a run writes into its folder.
RUN_FILES = ("config.yaml", "state.pt", "weights.safetensors", "int8.pt2", "metrics.csv", "curves.png")
LOCK_FILE = ".lock"


class RunDirError(ValueError):
    """A run folder we must not write into; the message says what to do instead."""


def is_our_temporary(name: str) -> bool:
    """``atomic_path`` temporaries of run files (``.state.pt.k2j4h1.tmp``) and the
    probe file of ``check_writable_dir``."""
    return (name.endswith(".tmp") and any(name.startswith(f".{f}.") for f in RUN_FILES)) or \
        name.startswith(".write-test-")


def _unwritable(folder: Path, exc: OSError) -> PermissionError:
    return PermissionError(f"output folder {folder} is not writable: {exc.strerror or exc}")


class RunDir:
    """The folder of one run, locked while this object holds it (see the module doc)."""

    def __init__(self, path: Path, created: bool) -> None:
        self.path, self.created = path, created
        self.removed: list[str] = []  # stale temporaries found and removed
        self.fresh = created  # holds no run files but ours
        self.unlocked: str | None = None  # why the folder could not be locked, if it could not
        self._fd: int | None = None

    @classmethod
    def new(cls, output: str | os.PathLike, name: str | None, stem: str, *, overwrite: bool = False) -> RunDir:
        """The folder for a new run: ``output/name``, or a fresh default name from ``stem``."""
        output = Path(output)
        try:
            output.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _unwritable(output, exc) from None
        if name is None:
            base = f"{stem}-{datetime.now():%Y%m%d-%H%M%S}"
            for i in itertools.count(1):
                path = output / (base if i == 1 else f"{base}-{i}")
                try:
                    path.mkdir()
                except FileExistsError:
                    continue
                except OSError as exc:
                    raise _unwritable(output, exc) from None
                run = cls(path, created=True)
                run._lock()
                return run
        path = output / check_name(name)
        try:
            path.mkdir()
            created = True
        except FileExistsError:
            created = False
        except OSError as exc:
            raise _unwritable(output, exc) from None
        if not path.is_dir():
            raise RunDirError(f"{path} exists and is not a folder; choose another --name")
        run = cls(path, created)
        run._lock()
        try:
            held = run.contents()
            if held and not overwrite:
                ours = [n for n in held if n in RUN_FILES]
                if ours:
                    raise RunDirError(f"{path} already holds a run ({', '.join(ours)}); continue it with --resume "
                                      f"{path}, replace it with --overwrite, or choose another --name")
                raise RunDirError(f"{path} is not empty ({', '.join(held[:3])}{', ...' if len(held) > 3 else ''}); "
                                  "choose another --name, or --overwrite to train into it anyway")
            run.fresh = not any(n in RUN_FILES for n in held)
            run.clean_temporaries()
        except BaseException:
            run.release()
            raise
        return run

    @classmethod
    def existing(cls, path: str | os.PathLike) -> RunDir:
        """The folder of a run to resume, locked, with its stale temporaries removed."""
        path = Path(path)
        if not path.is_dir():
            raise RunDirError(f"--resume {path}: no such run folder")
        run = cls(path, created=False)
        run._lock()
        try:
            run.clean_temporaries()
        except BaseException:
            run.release()
            raise
        return run

    def contents(self) -> list[str]:
        """What the folder holds besides our lock and stale temporaries."""
        return sorted(n for n in os.listdir(self.path) if n != LOCK_FILE and not is_our_temporary(n))

    def clear(self) -> None:
        """``--overwrite``: remove the old run's files, once the new run is ready to write
        its own (so a start that fails keeps the old run, and nothing of it can mix in)."""
        for f in RUN_FILES:
            (self.path / f).unlink(missing_ok=True)
        self.fresh = True

    def clean_temporaries(self) -> None:
        for name in os.listdir(self.path):
            if is_our_temporary(name):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path / name)
                self.removed.append(name)

    def _lock(self) -> None:
        if fcntl is None:
            return
        path = self.path / LOCK_FILE
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise _unwritable(self.path, exc) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
                os.close(fd)
                raise RunDirError(f"{self.path} is in use by {holder}; wait for that run to end, or choose "
                                  "another --name") from None
            except OSError as exc:  # a file system without locks (some network mounts): run, but say so
                os.close(fd)
                self.unlocked = exc.strerror or str(exc)
                return
            # The holder before us unlinks the file as it lets go: if we locked that
            # unlinked file, the lock protects nothing; take the new one.
            try:
                current = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                current = False
            if not current:
                os.close(fd)
                continue
            try:
                os.ftruncate(fd, 0)
                os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since {datetime.now():%Y-%m-%d %H:%M:%S}"
                         .encode())
            except OSError as exc:
                self._fd = fd
                self.release()
                raise _unwritable(self.path, exc) from None
            self._fd = fd
            return

    def release(self) -> None:
        """Unlock (and remove the lock file: a finished run leaves only its own files)."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.path / LOCK_FILE)
        os.close(self._fd)
        self._fd = None

    def discard(self) -> None:
        """After a failed start: remove what this run wrote, and the folder if that
        leaves it empty. Only for a new run (a resumed folder keeps everything); an
        old run not yet cleared by ``--overwrite`` is kept whole."""
        if not self.fresh:
            self.release()
            return
        for f in RUN_FILES:
            with contextlib.suppress(OSError):
                (self.path / f).unlink()
        with contextlib.suppress(OSError):
            self.clean_temporaries()
        self.release()
        with contextlib.suppress(OSError):
            self.path.rmdir()  # fails, as it should, if anything else is there
