"""The FAISS index: a derived, rebuildable cache of the catalog's vectors.

Its names are imported on first use (importing FAISS costs a sixth of a CPU-second), so that
`clipsearch.vectors.header` can be read by commands that never search.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clipsearch.vectors.index import VectorIndex
    from clipsearch.vectors.sync import open_index

__all__ = ["VectorIndex", "open_index"]


def __getattr__(name: str) -> Any:
    if name == "VectorIndex":
        from clipsearch.vectors.index import VectorIndex

        return VectorIndex
    if name == "open_index":
        from clipsearch.vectors.sync import open_index

        return open_index
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
