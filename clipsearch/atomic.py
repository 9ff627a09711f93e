"""Replacing a file so that readers, and a crash at any moment, see the old file or the new one.

The new content goes to a temp file (NAME.<random>.tmp) in the target's folder (a rename is
only atomic within one file system), then is renamed over the target. `durable` adds the two
fsyncs that make the result survive a power cut, not just a killed process: the file's data
before the rename, the folder's entry after it. Caches written per indexed image skip them
(8 ms each here).

While a temp file is written its writer holds a lock on it, so a temp file whose lock is free
was left by a process that died (the system drops a dead process's locks) and can go at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

TEMP_SUFFIX = ".tmp"


@contextlib.contextmanager
def replacing(path: Path, *, durable: bool = True, mode: int | None = None) -> Iterator[BinaryIO]:
    """A binary file to write `path`'s new content into; it replaces `path` when the block ends
    without an exception, and is removed otherwise. `mode`: permissions (default: private, 0o600)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{path.name}.", suffix=TEMP_SUFFIX)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # held until the rename: a write in progress
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            if mode is not None:
                os.fchmod(fh.fileno(), mode)
            if durable:
                os.fsync(fh.fileno())
            os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        _fsync_folder(path.parent)


def write_atomically(path: Path, data: bytes, *, durable: bool = True, mode: int | None = None) -> None:
    """Replace the file at `path` with `data` (see `replacing`)."""
    with replacing(path, durable=durable, mode=mode) as fh:
        fh.write(data)


def remove_stale_temps(path: Path) -> None:
    """Delete the temp files that writes of `path` left when their process was killed.

    A temp file whose lock is held belongs to a write in progress (maybe another process's): kept.
    """
    path = Path(path)
    for tmp in path.parent.glob(f"{glob.escape(path.name)}*{TEMP_SUFFIX}"):
        with contextlib.suppress(OSError):  # gone already, or not ours to delete
            fd = os.open(tmp, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            finally:
                os.close(fd)
            tmp.unlink()


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
