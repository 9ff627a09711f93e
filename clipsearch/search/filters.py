"""Translating a request's filters into the catalog's row filter."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from clipsearch.catalog import RowFilter
from clipsearch.errors import QueryError

if TYPE_CHECKING:
    from clipsearch.search.request import SearchRequest

# File types by name, as the indexer reads them (by extension, case-insensitive).
FILE_TYPES: dict[str, tuple[str, ...]] = {
    "jpeg": (".jpg", ".jpeg", ".jpe"),
    "png": (".png",),
    "webp": (".webp",),
    "gif": (".gif",),
    "bmp": (".bmp",),
    "tiff": (".tif", ".tiff"),
    "heic": (".heic", ".heif"),
}
_ALIASES = {"jpg": "jpeg", "jpe": "jpeg", "tif": "tiff", "heif": "heic"}
SORTS = ("score", "date", "date-desc")


def file_extensions(types: tuple[str, ...]) -> tuple[str, ...]:
    """`("jpeg", "png")` -> the suffixes those types are stored under; unknown names are refused."""
    suffixes: list[str] = []
    for raw in types:
        name = raw.strip().lower().lstrip(".")
        name = _ALIASES.get(name, name)
        if name not in FILE_TYPES:
            raise QueryError(f"unknown file type {raw!r}: use one of {', '.join(FILE_TYPES)}")
        suffixes += FILE_TYPES[name]
    return tuple(suffixes)


def folder_prefix(folder: str) -> str:
    """The path prefix of a folder filter: absolute (relative ones start at the working folder).

    abspath, not resolve(): the indexer records paths as given (symlinks kept), so must the filter.
    """
    p = Path(folder.strip()).expanduser()
    prefix = os.path.abspath(p)
    # A folder, not a name prefix: /photos/2021 must not also match /photos/2021-old.
    return prefix if p.is_file() else os.path.join(prefix, "")


def row_filter(req: SearchRequest) -> RowFilter:
    """The catalog filter for a SearchRequest's filter fields."""
    return RowFilter(
        folder=folder_prefix(req.folder) if req.folder else None,
        taken_after=req.taken_after,
        taken_before=req.taken_before,
        camera=req.camera.strip() if req.camera and req.camera.strip() else None,
        extensions=file_extensions(req.file_types),
        min_width=req.min_width,
        min_height=req.min_height,
        tag=" ".join(req.tag.split()) if req.tag and req.tag.strip() else None,
    )
