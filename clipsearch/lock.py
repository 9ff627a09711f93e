"""The store's write lock: one index run at a time per store."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from clipsearch.errors import StoreLockedError


@contextlib.contextmanager
def write_lock(path: Path, wait: bool = False):
    """Hold an exclusive advisory lock on `path` (released by the OS if the process dies)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="ignore").strip() or "another process"
            raise StoreLockedError(
                f"another `clipsearch index` (pid {holder}) is writing to this store; "
                f"wait for it to finish, then run this command again"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)
