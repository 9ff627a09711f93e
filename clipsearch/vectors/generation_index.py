"""The FAISS index of a generation being built, made before the store switches to it.

`clipsearch reembed` saves it beside the store's index and moves it into place once the switch
has committed, so the first query after a switch needs no rebuild.
"""

from __future__ import annotations

from clipsearch.catalog import Catalog
from clipsearch.catalog.generations import GenerationInfo
from clipsearch.vectors.index import VectorIndex
from clipsearch.vectors.policy import IndexKind, choose_layout, training_size


def build_generation_index(catalog: Catalog, gen: GenerationInfo, watermark: int, flat_max: int) -> VectorIndex:
    """Every vector of `gen` (complete: the caller holds the store lock), marked current at `watermark`."""
    gens = catalog.generations
    n = gen.embedded
    layout = choose_layout(n, gen.dim, flat_max)
    index = VectorIndex.empty(layout, gen.dim, gen.model_id, watermark=watermark)
    if layout.kind == IndexKind.IVFPQ:
        index.train(gens.sample(gen.id, gen.dim, training_size(layout, n, gen.dim)))
        index.header.built_for = n
    for ids, vectors in gens.vectors(gen.id, gen.dim):
        index.index.add_with_ids(vectors, ids)
    return index
