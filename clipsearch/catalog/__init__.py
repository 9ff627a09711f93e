"""The SQL catalog: the source of truth for images, their metadata and their vectors."""

from clipsearch.catalog.catalog import Catalog
from clipsearch.catalog.records import (
    CatalogStats,
    FileState,
    FileStatus,
    ImageMeta,
    ImageRecord,
    Move,
    RowFilter,
    StoreModel,
)

__all__ = [
    "Catalog",
    "CatalogStats",
    "FileState",
    "FileStatus",
    "ImageMeta",
    "ImageRecord",
    "Move",
    "RowFilter",
    "StoreModel",
]
