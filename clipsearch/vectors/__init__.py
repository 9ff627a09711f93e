"""The FAISS index: a derived, rebuildable cache of the catalog's vectors."""

from clipsearch.vectors.index import VectorIndex
from clipsearch.vectors.sync import open_index

__all__ = ["VectorIndex", "open_index"]
