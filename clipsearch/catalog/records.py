"""Plain values passed between the catalog and its callers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

import numpy as np


class FileState(NamedTuple):
    """What the catalog knows about one path, enough to decide whether to re-read it.

    A tuple, not a dataclass: a re-index builds one per known file, and tuples are made ~5x faster.
    """

    id: int
    path: str
    size: int
    mtime_ns: int
    content_hash: str | None
    status: str


@dataclass(frozen=True)
class ImageRecord:
    """One file's outcome from an index run, ready to be written."""

    path: str
    root: str
    size: int
    mtime_ns: int
    content_hash: str | None
    status: str  # ok | failed
    error: str | None = None
    width: int | None = None
    height: int | None = None
    taken_at: datetime | None = None
    camera: str | None = None
    orientation: int | None = None
    vector: np.ndarray | None = None  # float32, L2-normalised


@dataclass(frozen=True)
class Move:
    """A known image found under a new path (same content): it keeps its id and vector."""

    id: int
    path: str
    root: str
    size: int
    mtime_ns: int


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
