"""Writing files so that a crash never leaves half of one behind, and a full disk
or a read-only folder says so in one line naming the file."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

# A write that fails while its file system has less than this left is taken for a full
# disk: libraries report ENOSPC in their own words (torch.save: "unexpected pos ...").
NEARLY_FULL = 1 << 20

_REASONS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}
# How libraries that do not raise OSError (safetensors, C++ writers) spell the same errors.
_SPELLINGS = {
    errno.ENOSPC: ("no space left on device", "os error 28"),
    errno.EDQUOT: ("disk quota exceeded", "os error 122"),
    errno.EROFS: ("read-only file system", "os error 30"),
    errno.EACCES: ("permission denied", "os error 13"),
}


class WriteError(OSError):
    """A file we could not write (full disk, read-only or forbidden folder). Its
    message is one line naming the file; ``errno`` says which."""

    def __init__(self, code: int, path: str | os.PathLike) -> None:
        reason = _REASONS.get(code, os.strerror(code).lower())
        if code in (errno.ENOSPC, errno.EDQUOT):
            message = f"{reason} writing {path}: free some space or write elsewhere"
        else:
            message = f"cannot write {path}: {reason}"
        super().__init__(code, message, str(path))
        self.message = message

    def __str__(self) -> str:
        return self.message


def write_error(exc: BaseException, path: str | os.PathLike, folder: str | os.PathLike | None = None
                ) -> WriteError | None:
    """``exc`` as a :class:`WriteError` for ``path`` when it is a full disk or a
    read-only/forbidden folder (found in its errno, its text, the errors it was
    raised from, or the free space left in ``folder``); else None."""
    if isinstance(exc, WriteError):
        return exc
    seen: BaseException | None = exc
    for _ in range(8):  # the exception and what it was raised from
        if seen is None:
            break
        code = getattr(seen, "errno", None)
        if isinstance(seen, OSError) and code in _REASONS:
            return WriteError(code, path)
        text = str(seen).lower()
        for code, spellings in _SPELLINGS.items():
            if any(s in text for s in spellings):
                return WriteError(code, path)
        seen = seen.__cause__ or seen.__context__
    if folder is not None and isinstance(exc, Exception):
        free = free_bytes(folder)
        if free is not None and free < NEARLY_FULL:
            return WriteError(errno.ENOSPC, path)
    return None


def free_bytes(folder: str | os.PathLike) -> int | None:
    """Bytes this process may still write in ``folder`` (root may use the reserve)."""
    try:
        st = os.statvfs(folder)
    except (OSError, AttributeError):
        with contextlib.suppress(OSError):
            return shutil.disk_usage(folder).free
        return None
    blocks = st.f_bfree if hasattr(os, "geteuid") and os.geteuid() == 0 else st.f_bavail
    return blocks * st.f_frsize


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is fsynced and renamed
    over ``path``, on any error it is removed. Readers see the old file or the new
    one, never a partial one. A full disk or a folder that cannot be written raises
    :class:`WriteError` naming ``path``, whatever the writer raised."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise (write_error(exc, path, _existing(path.parent)) or exc) from None
    os.close(fd)
    mode = 0o666 & ~_umask()  # mkstemp makes 0600; give the file the usual mode
    tmp_path = Path(tmp)
    try:
        os.chmod(tmp_path, mode)
        yield tmp_path
        # Some writers (safetensors) replace the file they are given, with their own mode.
        os.chmod(tmp_path, mode)
        with open(tmp_path, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
        _fsync_dir(path.parent)
    except BaseException as exc:
        error = write_error(exc, path, path.parent) if isinstance(exc, Exception) else None
        tmp_path.unlink(missing_ok=True)
        if error is not None and error is not exc:
            raise error from exc
        raise


def _existing(folder: Path) -> Path | None:
    """``folder`` or the nearest folder above it that exists."""
    for candidate in (folder, *folder.parents):
        if candidate.is_dir():
            return candidate
    return None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def check_writable_dir(folder: str | os.PathLike, argument: str = "output folder") -> Path:
    """Create ``folder`` if needed and prove it writable now, before long work starts."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise PermissionError(f"{argument} {folder} is not writable: {exc.strerror or exc}") from None
    return folder


def check_writable_file(path: str | os.PathLike) -> Path:
    """Prove now, before long work starts, that ``path`` can be written (its folder
    exists or can be made, and takes a new file); else :class:`WriteError`."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"):
            pass
    except OSError as exc:
        raise (write_error(exc, path) or WriteError(exc.errno or errno.EIO, path)) from None
    if path.is_dir():
        raise WriteError(errno.EISDIR, path)
    return path


def read_text_file(path: str | os.PathLike, argument: str, limit: int = 16 << 20) -> str:
    """A small text file a user named (``--labels``, ``--config``): a regular file of at
    most ``limit`` bytes, as UTF-8. /dev/zero was read until the kernel killed the
    process, and a FIFO waited forever; each is now one ValueError naming ``argument``."""
    path = Path(path)
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{argument} {path}: not a regular file")
        if info.st_size > limit:
            raise ValueError(f"{argument} {path}: {info.st_size:,} bytes, more than the {limit:,} "
                             "such a file may have")
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise ValueError(f"{argument} {path}: cannot read it ({exc.strerror or exc})") from None
    if len(data) > limit:  # it grew since stat
        raise ValueError(f"{argument} {path}: more than the {limit:,} bytes such a file may have")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{argument} {path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
