"""Keeping the FAISS cache in step with the catalog: load, catch up, or rebuild."""

from __future__ import annotations

import logging
from pathlib import Path

from clipsearch.catalog import Catalog
from clipsearch.vectors.header import index_file_current
from clipsearch.vectors.index import IndexFileError, VectorIndex
from clipsearch.vectors.policy import IndexKind, choose_layout, needs_rebuild, training_size

log = logging.getLogger(__name__)

__all__ = ["build_index", "catch_up", "index_file_current", "open_index"]


def build_index(catalog: Catalog, model_id: str, flat_max: int) -> VectorIndex:
    """A fresh index of every vector in the catalog, trained on a sample when IVF-PQ."""
    seq = catalog.facts.current_seq()
    dim = catalog.facts.dim()
    n = catalog.facts.stats().images
    layout = choose_layout(n, dim, flat_max)
    index = VectorIndex.empty(layout, dim, model_id, watermark=seq)
    if layout.kind == IndexKind.IVFPQ:
        index.train(catalog.vectors.sample(training_size(layout, n, dim)))
        index.header.built_for = n
    for ids, vectors in catalog.vectors.changed(after_seq=0, up_to_seq=seq):
        index.index.add_with_ids(vectors, ids)
    return index


def catch_up(index: VectorIndex, catalog: Catalog) -> bool:
    """Apply catalog changes newer than the index's watermark; True when anything changed."""
    seq = catalog.facts.current_seq()
    start = index.header.watermark
    if seq == start:
        return False
    # Removals first: a deleted id that was later reused must end with the new vector.
    index.remove(catalog.vectors.tombstones(start, seq))
    for ids, vectors in catalog.vectors.changed(after_seq=start, up_to_seq=seq):
        index.upsert(ids, vectors)
    index.header.watermark = seq
    return True


def open_index(
    catalog: Catalog, path: Path, model_id: str, flat_max: int, save: bool = True, mapped: bool = False
) -> tuple[VectorIndex, list[str]]:
    """The store's index, current with the catalog. Returns it with notes worth telling the user.

    mapped: load the saved file by mapping it (VectorIndex.load), for a process that queries once.
    """
    notes: list[str] = []
    try:
        index = VectorIndex.load(path, mapped=mapped)
    except IndexFileError as exc:
        index = None
        if Path(path).exists():
            notes.append(f"vector index {path}: {exc}; rebuilt it from the catalog")
    seq = catalog.facts.current_seq()  # read after the load: a file saved meanwhile is never newer than it
    if index is not None and (index.header.model_id != model_id or index.header.dim != catalog.facts.dim()):
        notes.append("vector index was built for another model; rebuilt it from the catalog")
        index = None
    if index is not None and index.header.watermark > seq:
        notes.append("vector index is newer than the catalog (restored from elsewhere?); rebuilt it")
        index = None
    changed = False
    if index is not None and needs_rebuild(index.header, _collection_size(catalog, index, seq), flat_max):
        index = None
    if index is None:
        index = build_index(catalog, model_id, flat_max)
        changed = True
    else:
        changed = catch_up(index, catalog)
    if changed and save:
        try:
            index.save(path)
        except OSError as exc:
            # A read-only home still answers queries from the in-memory copy.
            notes.append(f"could not save the vector index to {path} ({exc.strerror}); using it in memory")
    return index, notes


def _collection_size(catalog: Catalog, index: VectorIndex, seq: int) -> int:
    """The images the layout policy sizes the index for.

    An index current at `seq` holds exactly the catalog's vectors, one per indexed image, so its
    own count is the answer; counting the catalog's rows instead reads an index of every row
    (0.06 CPU-seconds at 1M images, on every query process).
    """
    return index.ntotal if index.header.watermark == seq else catalog.facts.stats().images
