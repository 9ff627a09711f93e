"""Serving an indexed original: only the file the catalog row describes, never a path from a request.

A front end that hands out originals (the HTTP API, the web page's download) looks an image up
by id and opens it through `open_original`, which refuses anything that is no longer the file
that was indexed:

- its size and mtime must still be the row's (checked on the opened descriptor, so a file
  swapped between the check and the read is caught);
- a regular file is opened with O_NOFOLLOW: if it was replaced by a symbolic link (to a secret
  elsewhere, with the planted file's size and mtime), the open fails;
- a path that is a link is served only if the link is older than the row's last write, i.e. the
  row's facts were read through that link (a link's change time cannot be set by its owner);
- no folder between the indexed root and the file may be a link: the indexer never descends into
  folder links, so one there was put in place after indexing.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import BinaryIO

from sqlalchemy import select

from clipsearch.catalog import Catalog, FileStatus
from clipsearch.catalog.schema import ImageRow
from clipsearch.errors import OriginalChangedError, OriginalMissingError


@dataclass(frozen=True)
class Original:
    """What the catalog recorded about one indexed file."""

    id: int
    path: str
    root: str
    size: int
    mtime_ns: int
    content_hash: str | None
    indexed_at: datetime | None  # naive UTC: when the row was last written
    path_bytes: bytes | None = None  # the name's exact bytes when it is not valid UTF-8 (`path` is escaped)

    @property
    def fs_path(self) -> str:
        """The path to open: the original bytes' form when `path` shows an escaped name."""
        return os.fsdecode(self.path_bytes) if self.path_bytes is not None else self.path


def lookup(catalog: Catalog, image_id: int) -> Original | None:
    """The catalog's facts about an indexed (status ok) image, or None for an unknown id."""
    cols = (
        ImageRow.id,
        ImageRow.path,
        ImageRow.root,
        ImageRow.size,
        ImageRow.mtime_ns,
        ImageRow.content_hash,
        ImageRow.indexed_at,
        ImageRow.path_bytes,
    )
    stmt = select(*cols).where(ImageRow.id == int(image_id), ImageRow.status == FileStatus.OK.value)
    with catalog.engine.connect() as conn:
        row = conn.execute(stmt).first()
    return Original(*row) if row else None


def open_original(original: Original) -> tuple[BinaryIO, os.stat_result]:
    """The open file and its stat, if the file on disk is still the row's file.

    Raises OriginalMissingError when it is gone, OriginalChangedError when something else is there.
    """
    # Messages show the escaped name; the file system is asked with the original bytes.
    path, fs_path = original.path, original.fs_path
    _check_folders(original)
    try:
        link = os.lstat(fs_path)
    except FileNotFoundError as exc:
        raise OriginalMissingError(
            f"{path} is no longer on disk; run `clipsearch index` on its folder to update the catalog"
        ) from exc
    except OSError as exc:
        raise OriginalMissingError(f"cannot read {path}: {exc.strerror or exc}") from exc
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK  # NONBLOCK: a FIFO put there must not hang the reader
    if stat.S_ISLNK(link.st_mode):
        if not _older_than_row(link, original):
            raise OriginalChangedError(f"{path} was replaced by a symbolic link after it was indexed; not served")
    else:
        flags |= os.O_NOFOLLOW
    try:
        fd = os.open(fs_path, flags)
    except OSError as exc:
        raise OriginalChangedError(f"{path} changed while being opened ({exc.strerror or exc}); not served") from exc
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_size != original.size or st.st_mtime_ns != original.mtime_ns:
        os.close(fd)
        raise OriginalChangedError(
            f"{path} changed on disk since it was indexed; run `clipsearch index` on its folder to update the catalog"
        )
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb"), st


def read_original(original: Original) -> bytes:
    """The bytes of the row's file (see open_original for what is refused)."""
    fh, _st = open_original(original)
    with fh:
        return fh.read()


def _older_than_row(link: os.stat_result, original: Original) -> bool:
    if original.indexed_at is None:
        return False
    written = original.indexed_at.replace(tzinfo=timezone.utc).timestamp()
    return link.st_ctime < written


def _check_folders(original: Original) -> None:
    root, fs_path = original.root.rstrip(os.sep), original.fs_path
    if not fs_path.startswith(root + os.sep):
        return  # a file indexed as its own root: no folders of ours in between
    folder = root
    for part in fs_path[len(root) + 1 :].split(os.sep)[:-1]:
        folder = os.path.join(folder, part)
        try:
            st = os.lstat(folder)
        except OSError as exc:
            raise OriginalMissingError(f"{original.path} is no longer on disk (its folder {folder} is gone)") from exc
        if not stat.S_ISDIR(st.st_mode):
            raise OriginalChangedError(
                f"{original.path}: its folder {folder} was replaced by a link after indexing; not served"
            )
