"""The decode stage: read, hash and decode one file in a worker thread."""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from clipsearch.errors import ImageDecodeError
from clipsearch.faults import point
from clipsearch.indexer.scan import FoundFile, not_regular_reason

if TYPE_CHECKING:
    import numpy as np

    from clipsearch.imaging import ImageInfo, PreprocessConfig
    from clipsearch.thumbnails import Thumbnails

# The image code (Pillow, numpy) is imported when a file is first read: planning a run, and a run
# with nothing to read, need only the job and result types below.

MAX_FILE_BYTES = 1 << 30


@dataclass(frozen=True)
class Decoded:
    file: FoundFile
    content_hash: str
    pixels: np.ndarray  # HxWx3 uint8 at model size
    info: ImageInfo


@dataclass(frozen=True)
class Failed:
    file: FoundFile
    content_hash: str | None
    reason: str


@dataclass(frozen=True)
class KnownContent:
    """The bytes are already in the catalog: a touched file, or a moved one (no decode needed)."""

    file: FoundFile
    content_hash: str


@dataclass(frozen=True)
class DecodeJob:
    file: FoundFile
    expected_hash: str | None  # the stored hash of this path, if it had one
    allow_move: bool = True


def decode(
    job: DecodeJob,
    cfg: PreprocessConfig,
    max_megapixels: float,
    move_hashes: frozenset[str],
    thumbs: Thumbnails | None = None,
    read: Callable[[str], bytes] | None = None,
):
    """One file -> Decoded | Failed | KnownContent. Never raises for a bad file.

    With `thumbs`, a missing thumbnail is written from the same decode as the model input.
    `read(path)` replaces the local file reader (the Ray engine reads fsspec URLs); it raises
    OSError when it cannot read.
    """
    from clipsearch.imaging import content_hash, decode_for_model

    found = job.file
    if found.error:
        return Failed(found, None, found.error)
    try:
        data = read_file(found.raw or found.path) if read is None else read(found.raw or found.path)
    except _Unreadable as exc:
        return Failed(found, None, str(exc))
    except OSError as exc:
        return Failed(found, None, f"cannot read: {exc.strerror or exc}")
    digest = content_hash(data)
    if digest == job.expected_hash or (job.allow_move and digest in move_hashes):
        if thumbs is not None and not thumbs.has(digest):
            _thumbnail_only(data, digest, max_megapixels, thumbs)
        return KnownContent(found, digest)
    try:
        # The model's input is always decoded the same way, whether or not a thumbnail is
        # wanted: a vector must depend on the file's bytes and the model only (a copy, or a
        # resumed run, gets exactly the vector of the first).
        rgb, pixels, info = decode_for_model(data, cfg, max_megapixels)
    except ImageDecodeError as exc:
        return Failed(found, digest, str(exc))
    except MemoryError:
        return Failed(found, digest, "out of memory while decoding")
    if thumbs is not None and not thumbs.has(digest):
        _thumbnail_from(rgb, info, data, digest, max_megapixels, thumbs)
    return Decoded(found, digest, pixels, info)


class _Unreadable(Exception):
    """A file that is not read, with the reason recorded for it."""


def read_file(path: str | bytes) -> bytes:
    """A regular file's bytes, never more than MAX_FILE_BYTES; raises _Unreadable with the reason.

    Opened without blocking and checked on the open descriptor (the scan's stat may be stale, or
    a link may have been swapped since): a FIFO would block forever, /dev/zero never ends.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # opening a socket
            raise _Unreadable("not a regular file: it is a socket; only regular files are indexed") from exc
        raise _Unreadable(f"cannot read: {exc.strerror or exc}") from exc
    with open(fd, "rb", buffering=0) as fh:
        st = os.fstat(fd)
        reason = not_regular_reason(st.st_mode)
        if reason:
            raise _Unreadable(reason)
        if st.st_size > MAX_FILE_BYTES:
            raise _Unreadable(
                f"file is {st.st_size / 2**30:.1f} GiB, larger than the 1 GiB limit; not an image we can index"
            )
        try:
            return _read_capped(fh, st.st_size)
        except OSError as exc:
            raise _Unreadable(f"cannot read: {exc.strerror or exc}") from exc


def _read_capped(fh, expected: int) -> bytes:
    # Reads what fstat announced, then on to EOF in small steps (the file may be growing),
    # so nothing allocates a buffer of the cap up front.
    parts, total = [], 0
    want = expected + 1
    while True:
        chunk = fh.read(min(want, MAX_FILE_BYTES + 1 - total))
        if not chunk:
            return b"".join(parts)
        parts.append(chunk)
        total += len(chunk)
        if total > MAX_FILE_BYTES:
            raise _Unreadable("file grew larger than the 1 GiB limit while being read; not an image we can index")
        want = 1 << 20


def _thumbnail_from(rgb, info: ImageInfo, data: bytes, digest: str, max_megapixels: float, thumbs: Thumbnails) -> None:
    # The model's decode serves the thumbnail too when it is full size or large enough;
    # otherwise (a small model on a big JPEG) the thumbnail gets a decode of its own.
    if rgb.size == (info.width, info.height) or min(rgb.size) >= thumbs.side:
        _save_thumbnail(thumbs, digest, rgb)
    else:
        _thumbnail_only(data, digest, max_megapixels, thumbs)


def _thumbnail_only(data: bytes, digest: str, max_megapixels: float, thumbs: Thumbnails) -> None:
    try:
        from clipsearch.imaging import load_rgb

        rgb, _info = load_rgb(data, max_megapixels, min_side=thumbs.side)
    except ImageDecodeError:
        return  # the catalog's vector stays valid; the UI reports the file when it is opened
    _save_thumbnail(thumbs, digest, rgb)


def _save_thumbnail(thumbs: Thumbnails, digest: str, rgb) -> None:
    # A cache write failing (full or read-only home) must not fail the file; the UI makes it later.
    with contextlib.suppress(OSError):
        thumbs.save(digest, rgb)
    point("thumbnail-saved")
