"""Plain values passed between the catalog and its callers."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import numpy as np


class FileStatus(str, Enum):
    """What became of a file in the catalog: embedded, or recorded with the reason it failed.

    Stored as its value; a str, so rows read back as plain text compare equal to it.
    """

    OK = "ok"
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value


class FileState(NamedTuple):
    """What the catalog knows about one path, enough to decide whether to re-read it.

    A tuple, not a dataclass: a re-index builds one per known file, and tuples are made ~5x faster.
    """

    id: int
    path: str
    size: int
    mtime_ns: int
    content_hash: str | None
    status: str  # a FileStatus value, as the database returns it


@dataclass(frozen=True)
class ImageRecord:
    """One file's outcome from an index run, ready to be written."""

    path: str
    root: str
    size: int
    mtime_ns: int
    content_hash: str | None
    status: FileStatus
    error: str | None = None
    width: int | None = None
    height: int | None = None
    taken_at: datetime | None = None
    camera: str | None = None
    orientation: int | None = None
    vector: np.ndarray | None = None  # float32, L2-normalised
    path_bytes: bytes | None = None  # the path's exact bytes when they are not valid UTF-8


@dataclass(frozen=True)
class Move:
    """A known image found under a new path (same content): it keeps its id and vector."""

    id: int
    path: str
    root: str
    size: int
    mtime_ns: int
    path_bytes: bytes | None = None


@dataclass(frozen=True)
class ImageMeta:
    id: int
    path: str
    width: int | None
    height: int | None
    size: int
    taken_at: datetime | None
    camera: str | None
    content_hash: str | None
    # Set when the file's name is not valid UTF-8 (`path` shows it escaped). Keyword-only, so that
    # subclasses (search hits) can still add fields without defaults.
    path_bytes: bytes | None = field(default=None, kw_only=True)

    @property
    def fs_path(self) -> str:
        """The path to open the file with: its original bytes when `path` is an escaped form."""
        return os.fsdecode(self.path_bytes) if self.path_bytes is not None else self.path


@dataclass(frozen=True)
class StoreModel:
    model_id: str
    spec: str
    dim: int


@dataclass(frozen=True)
class CatalogStats:
    images: int
    failed: int
    seq: int


@dataclass(frozen=True)
class RowFilter:
    """Which images a search may return; every condition that is set must hold."""

    folder: str | None = None  # a path prefix ending in a separator, or one file's exact path
    taken_after: datetime | None = None
    taken_before: datetime | None = None
    camera: str | None = None  # a substring of the EXIF camera, matched ignoring (ASCII) case
    extensions: tuple[str, ...] = ()  # lower-case suffixes such as ".jpg"; any of them
    min_width: int | None = None
    min_height: int | None = None
    tag: str | None = None  # a zero-shot label the image was given (`clipsearch tag`)
