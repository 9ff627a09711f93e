"""The FAISS index at scale: trained once on a sample, filled in parallel shards, IVF lists merged.

The store's IVF-PQ layout packs its codes for 4-bit fast scan, and FAISS cannot merge packed
lists. So shards fill the same layout unpacked (IVF{n},PQ{m}x4: same quantiser, same codes),
the driver merges their lists, and the merged index is packed once into IVF{n},PQ{m}x4fs, the
file a local build writes. The watermark is the catalog sequence read before the shards start,
and every shard reads only vectors at or below it, so catch-up works exactly as after a local build.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import faiss
import numpy as np

from clipsearch.vectors.index import IndexFileError, IndexHeader, VectorIndex
from clipsearch.vectors.policy import IndexKind, Layout, choose_layout, default_nprobe, needs_rebuild, training_size
from clipsearch.vectors.sync import index_file_current

# Below this many vectors one process builds the index in about a minute; shards cost more than they save.
MIN_SHARDED = 2_000_000
READ_CHUNK = 20_000


def mergeable_factory(layout: Layout) -> str:
    return f"IVF{layout.nlist},PQ{layout.pq_m}x4"


def train_empty(layout: Layout, dim: int, sample: np.ndarray) -> np.ndarray:
    """The trained, empty, mergeable index, serialized (what every shard starts from)."""
    index = faiss.index_factory(dim, mergeable_factory(layout), faiss.METRIC_INNER_PRODUCT)
    index.train(np.ascontiguousarray(sample, dtype=np.float32))
    return faiss.serialize_index(index)


def fill_shard(trained: np.ndarray, chunks: Iterable[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Add (ids, vectors) chunks to a copy of the trained index; returns the serialized shard."""
    index = faiss.deserialize_index(trained)
    for ids, vectors in chunks:
        index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.ascontiguousarray(ids, dtype=np.int64))
    return faiss.serialize_index(index)


def merge_shards(trained: np.ndarray, shards: Iterable[np.ndarray]) -> faiss.Index:
    """One fast-scan index holding every shard's lists (shards are freed as they are merged)."""
    merged = faiss.deserialize_index(trained)
    for blob in shards:
        merged.merge_from(faiss.deserialize_index(blob), 0)
    return faiss.IndexIVFPQFastScan(merged)


def wrap(
    index: faiss.Index, layout: Layout, dim: int, model_id: str, watermark: int, trained_on: int, n: int
) -> VectorIndex:
    header = IndexHeader(
        IndexKind.IVFPQ,
        dim,
        model_id,
        watermark,
        trained_on=trained_on,
        built_for=n,
        nlist=layout.nlist,
        nprobe=default_nprobe(layout.nlist),
        factory=layout.factory,
    )
    return VectorIndex(index, header)


# -- from the catalog --------------------------------------------------------------------------


def catalog_chunks(url: str, lo: int, hi: int, up_to_seq: int, dim: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(ids, float32 vectors) of rows with lo < id <= hi whose vector is at or below the watermark."""
    from sqlalchemy import text

    from clipsearch.catalog.engine import make_engine

    engine = make_engine(url)
    sql = text(
        "SELECT id, embedding FROM images WHERE id > :last AND id <= :hi AND vec_seq <= :seq "
        "AND embedding IS NOT NULL ORDER BY id LIMIT :chunk"
    )
    last = lo
    try:
        while True:
            with engine.connect() as conn:
                rows = conn.execute(sql, {"last": last, "hi": hi, "seq": up_to_seq, "chunk": READ_CHUNK}).all()
            if not rows:
                return
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            halfs = np.frombuffer(b"".join(bytes(r[1]) for r in rows), dtype=np.float16)
            yield ids, halfs.reshape(len(rows), dim).astype(np.float32)
            last = int(ids[-1])
    finally:
        engine.dispose()


def _fill_from_catalog(url: str, trained: np.ndarray, lo: int, hi: int, up_to_seq: int, dim: int) -> np.ndarray:
    return fill_shard(trained, catalog_chunks(url, lo, hi, up_to_seq, dim))


def id_ranges(lo: int, hi: int, shards: int) -> list[tuple[int, int]]:
    """(lo, hi] ranges covering ids lo+1..hi in `shards` nearly equal parts."""
    bounds = np.linspace(lo, hi, shards + 1).round().astype(np.int64)
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=False) if b > a]


def completed(ray, refs: list) -> Iterator:
    """Results of Ray tasks in the order they finish (each one freed once it is consumed)."""
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        yield ray.get(done[0])


def build_on_ray(
    catalog, url: str, model_id: str, flat_max: int, shards: int, min_vectors: int = MIN_SHARDED
) -> VectorIndex | None:
    """The store's IVF-PQ index built in `shards` Ray tasks, or None when a local build is the better choice
    (a flat index, or fewer than `min_vectors` vectors)."""
    from sqlalchemy import text

    from clipsearch.indexer.ray_cluster import require_ray

    seq, dim, n = catalog.facts.current_seq(), catalog.facts.dim(), catalog.facts.stats().images
    layout = choose_layout(n, dim, flat_max)
    if layout.kind != IndexKind.IVFPQ or n < min_vectors or shards < 2:
        return None
    ray = require_ray()
    sample = catalog.vectors.sample(training_size(layout, n, dim))
    trained = train_empty(layout, dim, sample)
    with catalog.engine.connect() as conn:
        lo, hi = conn.execute(text("SELECT MIN(id), MAX(id) FROM images")).one()
    task = ray.remote(_fill_from_catalog)
    trained_ref = ray.put(trained)
    refs = [task.remote(url, trained_ref, a, b, seq, dim) for a, b in id_ranges(int(lo) - 1, int(hi), shards)]
    index = merge_shards(trained, completed(ray, refs))
    return wrap(index, layout, dim, model_id, seq, len(sample), n)


def _needs_full_build(store) -> bool:
    catalog, model = store.catalog, store.require_model()
    try:
        header = VectorIndex.read_header(store.settings.index_path)
    except IndexFileError:
        return True
    return (
        header.model_id != model.model_id
        or header.dim != catalog.facts.dim()
        or header.watermark > catalog.facts.current_seq()
        or needs_rebuild(header, catalog.facts.stats().images, store.settings.flat_max)
    )


def sync_index_file(store, shards: int | None = None) -> list[str]:
    """After a Ray run: a full build of a large IVF-PQ index runs in shards on the cluster;
    anything less (catching up, a small or flat index) is the store's own local sync."""
    model = store.require_model()
    if index_file_current(store.catalog, store.settings.index_path, model.model_id):
        return []
    if _needs_full_build(store):
        from clipsearch.indexer.ray_cluster import cluster_resources

        n = store.catalog.facts.stats().images
        count = shards or max(2, int(cluster_resources().cpus), n // 500_000)
        index = build_on_ray(store.catalog, store.settings.catalog_url, model.model_id, store.settings.flat_max, count)
        if index is not None:
            index.save(store.settings.index_path)
            return []
    return store.sync_index_file()
