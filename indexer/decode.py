"""The decode stage: read, hash and decode one file in a worker thread."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np

from clipsearch.errors import ImageDecodeError
from clipsearch.imaging import ImageInfo, PreprocessConfig, content_hash, load_for_model, load_rgb, resize_for_model
from clipsearch.indexer.scan import FoundFile
from clipsearch.thumbnails import Thumbnails

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
):
    """One file -> Decoded | Failed | KnownContent. Never raises for a bad file.

    With `thumbs`, a missing thumbnail is written from the same decode as the model input.
    """
    found = job.file
    if found.error:
        return Failed(found, None, found.error)
    try:
        with open(found.path, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        return Failed(found, None, f"cannot read: {exc.strerror or exc}")
    if len(data) > MAX_FILE_BYTES:
        return Failed(found, None, "file larger than 1 GiB; not an image we can index")
    digest = content_hash(data)
    if digest == job.expected_hash or (job.allow_move and digest in move_hashes):
        if thumbs is not None and not thumbs.has(digest):
            _thumbnail_only(data, digest, max_megapixels, thumbs)
        return KnownContent(found, digest)
    try:
        if thumbs is not None and not thumbs.has(digest):
            pixels, info = _decode_with_thumbnail(data, digest, cfg, max_megapixels, thumbs)
        else:
            pixels, info = load_for_model(data, cfg, max_megapixels)
    except ImageDecodeError as exc:
        return Failed(found, digest, str(exc))
    except MemoryError:
        return Failed(found, digest, "out of memory while decoding")
    return Decoded(found, digest, pixels, info)


def _decode_with_thumbnail(data: bytes, digest: str, cfg: PreprocessConfig, max_megapixels: float, thumbs: Thumbnails):
    # One decode, large enough for both the model input and the thumbnail.
    rgb, info = load_rgb(data, max_megapixels, min_side=max(2 * cfg.size, thumbs.side))
    pixels = resize_for_model(rgb, cfg)
    _save_thumbnail(thumbs, digest, rgb)
    return pixels, info


def _thumbnail_only(data: bytes, digest: str, max_megapixels: float, thumbs: Thumbnails) -> None:
    try:
        rgb, _info = load_rgb(data, max_megapixels, min_side=thumbs.side)
    except ImageDecodeError:
        return  # the catalog's vector stays valid; the UI reports the file when it is opened
    _save_thumbnail(thumbs, digest, rgb)


def _save_thumbnail(thumbs: Thumbnails, digest: str, rgb) -> None:
    # A cache write failing (full or read-only home) must not fail the file; the UI makes it later.
    with contextlib.suppress(OSError):
        thumbs.save(digest, rgb)
