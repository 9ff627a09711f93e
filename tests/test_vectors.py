"""The FAISS cache: exact vs IVF-PQ search, save/load, rebuild and catch-up from the catalog."""

from __future__ import annotations

import fcntl
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import catalog_rows, index_json, ok, query_json, run_cli, save_image, status_json, variant_image

from clipsearch.catalog import Catalog, ImageRecord
from clipsearch.search import SearchRequest, SearchService
from clipsearch.settings import Settings
from clipsearch.store import Store
from clipsearch.vectors import VectorIndex, open_index
from clipsearch.vectors import sync as vsync
from clipsearch.vectors.index import IndexFileError, IndexHeader
from clipsearch.vectors.policy import IndexKind, Layout, choose_layout
from clipsearch.vectors.sync import index_file_current

SYN_MODEL = "test:synthetic"
DIM = 64


# -- helpers ----------------------------------------------------------------------------------


def clustered_vectors(n_clusters: int, per: int, dim: int = DIM, noise: float = 0.15, seed: int = 0) -> np.ndarray:
    """Unit vectors in tight, well separated clusters: each one's nearest neighbours are its cluster."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = np.repeat(centres, per, axis=0) + noise / np.sqrt(dim) * rng.standard_normal((n_clusters * per, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def record(i: int, vector: np.ndarray | None, status: str = "ok") -> ImageRecord:
    return ImageRecord(
        path=f"/syn/c{i // 10:04d}/v{i % 10}.jpg",
        root="/syn",
        size=100 + i,
        mtime_ns=i,
        content_hash=f"h{i:08d}",
        status=status,
        width=8,
        height=8,
        vector=vector,
    )


def synthetic_catalog(url: str, vectors: np.ndarray) -> tuple[Catalog, np.ndarray]:
    """A catalog holding `vectors` (row i at path record(i).path); returns it with the row ids."""
    catalog = Catalog.open(url)
    catalog.facts.bind_model(SYN_MODEL, SYN_MODEL, vectors.shape[1])
    catalog.writes.write([record(i, v) for i, v in enumerate(vectors)], {}, model_id=SYN_MODEL)
    by_path = {m.path: m.id for m in catalog.results.meta(range(1, len(vectors) + 10)).values()}
    ids = np.array([by_path[record(i, None).path] for i in range(len(vectors))], dtype=np.int64)
    return catalog, ids


def exact_top(ids: np.ndarray, vectors: np.ndarray, q: np.ndarray, k: int) -> list[int]:
    order = np.argsort(-(vectors @ q), kind="stable")[:k]
    return [int(i) for i in ids[order]]


def dump_sqlite(path: Path) -> list:
    import sqlite3

    con = sqlite3.connect(path)
    try:
        return [con.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in ("images", "tombstones", "store_meta")]
    finally:
        con.close()


# -- IVF-PQ vs exact, through the CLI ------------------------------------------------------------


def test_ivfpq_returns_the_same_top_results_as_flat(tmp_path, home):
    folder = tmp_path / "photos"
    clusters, per = 32, 5
    for c in range(clusters):
        for v in range(per):
            save_image(variant_image(c, v), folder / f"c{c:02d}" / f"v{v}.{'png' if v % 2 else 'jpg'}")
    n = clusters * per
    assert index_json(folder)["new"] == n
    assert status_json()["index_kind"] == "flat"

    probes = [folder / f"c{c:02d}" / "v0.jpg" for c in (0, 5, 11, 17, 23, 31)]
    flat = {p: query_json("--image", p, "-k", "8") for p in probes}
    for probe, hits in flat.items():
        # A collection with clear neighbours: the top `per` are the probe's own cluster.
        assert str(probe.resolve()) in {h["path"] for h in hits[:2]}
        assert {Path(h["path"]).parent.name for h in hits[:per]} == {probe.parent.name}
        assert hits[per - 1]["score"] - hits[per]["score"] > 1e-3

    ivf_env = {"CLIPSEARCH_FLAT_MAX": "30"}
    status = status_json(env=ivf_env)
    assert (status["index_kind"], status["vectors"], status["images"]) == ("ivfpq", n, n)
    header = VectorIndex.load(home / "vectors.faiss").header
    assert header.kind == "ivfpq" and header.nlist > 1 and header.trained_on == n
    for probe in probes:
        hits = query_json("--image", probe, "-k", "8", env=ivf_env)
        assert {h["id"] for h in hits[:per]} == {h["id"] for h in flat[probe][:per]}
        assert [h["score"] for h in hits] == pytest.approx([h["score"] for h in flat[probe]], abs=1e-5)

    # Incremental changes while the store is IVF-PQ: caught up, not rebuilt, and still exact on top.
    doomed = folder / "c05" / "v3.png"
    doomed_id = catalog_rows(home)[str(doomed.resolve())]["id"]
    doomed.unlink()
    save_image(variant_image(900, 0), folder / "new" / "n0.jpg")
    save_image(variant_image(900, 1), folder / "new" / "n1.jpg")
    summary = index_json(folder, env=ivf_env)
    assert (summary["new"], summary["removed"], summary["embedded"]) == (2, 1, 2)
    assert VectorIndex.load(home / "vectors.faiss").header.trained_on == n  # not retrained
    status = status_json(env=ivf_env)
    assert (status["index_kind"], status["vectors"]) == ("ivfpq", n + 1)
    probe = folder / "c05" / "v0.jpg"
    ivf_hits = query_json("--image", probe, "-k", "10", env=ivf_env)
    assert doomed_id not in {h["id"] for h in ivf_hits}
    new_hits = query_json("--image", folder / "new" / "n0.jpg", "-k", "2", env=ivf_env)
    assert {Path(h["path"]).name for h in new_hits} == {"n0.jpg", "n1.jpg"}

    # Back to the exact layout (the index is rebuilt when the layout changes): same answers.
    flat_hits = query_json("--image", probe, "-k", "10")
    assert status_json()["index_kind"] == "flat"
    assert {h["id"] for h in flat_hits[: per - 1]} == {h["id"] for h in ivf_hits[: per - 1]}
    assert [h["score"] for h in flat_hits] == pytest.approx([h["score"] for h in ivf_hits], abs=1e-5)


# -- IVF-PQ vs exact on a larger synthetic collection (nprobe < nlist: truly approximate) --------


def test_ivfpq_with_rerank_matches_exact_on_clustered_vectors(tmp_path):
    vectors = clustered_vectors(300, 10, seed=1)
    settings = Settings(home=tmp_path / "store", flat_max=1000)
    catalog, ids = synthetic_catalog(settings.catalog_url, vectors)
    store = Store(settings, catalog)
    index, notes = store.vector_index()
    assert notes == []
    assert index.kind == "ivfpq" and index.ntotal == len(vectors)
    assert index.header.nprobe < index.header.nlist  # only part of the lists is scanned
    service = SearchService(store, encoder=None, index=index)

    all_ids, stored = catalog.vectors.fetch(ids)  # as the catalog holds them (float16)
    rng = np.random.default_rng(7)
    for row in rng.choice(len(vectors), size=12, replace=False):
        q = stored[np.flatnonzero(all_ids == ids[row])[0]]
        expected = exact_top(all_ids, stored, q, 10)
        got = service.search(SearchRequest(image_id=int(ids[row]), k=10)).hits
        assert [h.id for h in got] == expected
        assert got[0].id == ids[row] and got[0].score > 0.999
        cluster = set(ids[(row // 10) * 10 : (row // 10) * 10 + 10].tolist())
        assert {h.id for h in got} == cluster

        # A folder filter ranks exactly within the folder and still fills k.
        folder = f"/syn/c{(row // 10 + 1) % 300:04d}/"
        filtered = service.search(SearchRequest(image_id=int(ids[row]), k=10, folder=folder)).hits
        assert len(filtered) == 10 and all(h.path.startswith(folder) for h in filtered)
    catalog.close()


# -- VectorIndex on its own -------------------------------------------------------------------


@pytest.mark.parametrize(
    "layout", [Layout(IndexKind.FLAT), Layout(IndexKind.IVFPQ, nlist=8, pq_m=16)], ids=["flat", "ivfpq"]
)
def test_vector_index_save_load_round_trip(tmp_path, layout):
    vectors = clustered_vectors(40, 10, seed=3)
    ids = np.arange(1000, 1000 + len(vectors), dtype=np.int64)
    index = VectorIndex.empty(layout, DIM, "m:1", watermark=17)
    index.train(vectors)
    index.upsert(ids, vectors)
    path = tmp_path / "sub" / "vectors.faiss"
    index.save(path)
    assert sorted(os.listdir(path.parent)) == ["vectors.faiss"]  # the temp file was renamed away

    loaded = VectorIndex.load(path)
    assert loaded.header == index.header
    assert (loaded.kind, loaded.header.watermark, loaded.header.model_id) == (layout.kind, 17, "m:1")
    assert type(loaded.kind) is IndexKind  # typed again after the JSON header, not a bare string
    assert loaded.ntotal == len(vectors)
    s1, i1 = index.search(vectors[:5], 10)
    s2, i2 = loaded.search(vectors[:5], 10)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_allclose(s1, s2)
    if layout.kind == "flat":
        assert list(i2[:, 0]) == list(ids[:5])

    # upsert replaces a vector instead of duplicating it; remove drops it.
    loaded.upsert(ids[:1], vectors[-1:])
    assert loaded.ntotal == len(vectors)
    loaded.remove(ids[:2])
    assert loaded.ntotal == len(vectors) - 2
    assert not set(loaded.search(vectors[:2], 20)[1].ravel()) & {int(ids[0]), int(ids[1])}


def test_an_index_file_of_an_unknown_kind_is_rejected(tmp_path):
    index = VectorIndex.empty(Layout(IndexKind.FLAT), DIM, "m:1")
    path = tmp_path / "vectors.faiss"
    index.save(path)
    data = path.read_bytes()
    assert data.count(b'"kind": "flat"') == 1
    path.write_bytes(data.replace(b'"kind": "flat"', b'"kind": "hnsw"'))  # same length: only the kind is wrong
    with pytest.raises(IndexFileError, match="damaged"):
        VectorIndex.load(path)
    with pytest.raises(IndexFileError):
        VectorIndex.read_header(path)


@pytest.mark.parametrize("mapped", [False, True], ids=["read", "mapped"])
def test_vector_index_load_rejects_missing_garbage_and_truncated(tmp_path, mapped):
    with pytest.raises(IndexFileError):
        VectorIndex.load(tmp_path / "missing.faiss", mapped=mapped)
    garbage = tmp_path / "garbage.faiss"
    garbage.write_bytes(b"this is not an index at all" * 10)
    with pytest.raises(IndexFileError, match="not a clipsearch index"):
        VectorIndex.load(garbage, mapped=mapped)
    empty = tmp_path / "empty.faiss"
    empty.write_bytes(b"")
    with pytest.raises(IndexFileError, match="not a clipsearch index"):
        VectorIndex.load(empty, mapped=mapped)

    index = VectorIndex.empty(Layout("flat"), DIM, "m:1")
    index.upsert(np.arange(50, dtype=np.int64), clustered_vectors(5, 10))
    good = tmp_path / "good.faiss"
    index.save(good)
    data = good.read_bytes()
    for cut in (10, 40, len(data) // 2, len(data) - 7):
        bad = tmp_path / f"cut{cut}.faiss"
        bad.write_bytes(data[:cut])
        with pytest.raises(IndexFileError):
            VectorIndex.load(bad, mapped=mapped)


def test_choose_layout_threshold():
    assert choose_layout(30, DIM, flat_max=30).kind == "flat"
    big = choose_layout(31, DIM, flat_max=30)
    assert big.kind == "ivfpq" and big.nlist >= 1 and DIM % big.pq_m == 0
    large = choose_layout(1_000_000, 512, flat_max=50_000)
    assert large.kind == "ivfpq" and 1000 <= large.nlist <= 65_536 and 512 % large.pq_m == 0


@pytest.mark.parametrize("n", [60_000, 1_000_000, 10_000_000, 100_000_000, 1_000_000_000])
def test_training_sample_grows_with_the_lists_and_stays_bounded(n):
    from clipsearch.vectors.policy import MIN_TRAIN_PER_LIST, TRAIN_SAMPLE_BYTES, training_size

    layout = choose_layout(n, 512, flat_max=50_000)
    sample = training_size(layout, n, 512)
    # Every k-means centroid (IVF lists, and the 16 entries of each 4-bit PQ codebook) gets
    # FAISS's floor of points, at every size: a fixed cap left 32 per list at 10M.
    assert sample >= MIN_TRAIN_PER_LIST * max(layout.nlist, 16) and sample <= n
    if n <= 200_000:
        assert sample == n  # small collections train on everything
    elif MIN_TRAIN_PER_LIST * layout.nlist * 512 * 4 <= TRAIN_SAMPLE_BYTES:
        # The float32 sample stays within its memory bound unless the floor itself exceeds it.
        assert sample * 512 * 4 <= TRAIN_SAMPLE_BYTES
    assert sample >= min(n, 64 * layout.nlist, TRAIN_SAMPLE_BYTES // (512 * 4))


def test_training_sample_sizes_at_known_points():
    from clipsearch.vectors.policy import training_size

    def size(n: int, dim: int = 512) -> int:
        return training_size(choose_layout(n, dim, flat_max=50_000), n, dim)

    assert size(1_000_000) == 200_000  # 2,000 lists: the sample section 3's recall was measured with
    assert size(10_000_000) == 404_736  # 6,324 lists x 64
    assert size(100_000_000) == 2**31 // (512 * 4)  # the memory bound (52 per list) under 64 per list
    assert size(1_000_000_000) == 39 * 63_245  # the floor beats the bound at the list ceiling
    assert size(30_000_000, dim=1024) == 524_288  # a wider model: the same bytes, fewer vectors


# -- rebuild and catch-up from the catalog ------------------------------------------------------


@pytest.fixture
def syn(tmp_path):
    vectors = clustered_vectors(6, 10, seed=5)
    url = f"sqlite:///{tmp_path / 'cat.db'}"
    catalog, ids = synthetic_catalog(url, vectors)
    yield catalog, ids, vectors, tmp_path / "vectors.faiss", tmp_path / "cat.db"
    catalog.close()


def test_deleted_index_file_is_rebuilt(syn):
    catalog, ids, vectors, path, _ = syn
    index, notes = open_index(catalog, path, SYN_MODEL, flat_max=1000)
    assert path.is_file() and index.ntotal == len(vectors) and notes == []
    path.unlink()
    again, notes = open_index(catalog, path, SYN_MODEL, flat_max=1000)
    assert path.is_file()
    assert again.ntotal == len(vectors) and again.header.watermark == catalog.facts.current_seq()
    assert int(again.search(vectors[7:8], 1)[1][0, 0]) == ids[7]


def test_corrupt_index_file_is_rebuilt_with_a_note(syn):
    catalog, ids, vectors, path, db = syn
    open_index(catalog, path, SYN_MODEL, flat_max=1000)
    before = dump_sqlite(db)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])

    index, notes = open_index(catalog, path, SYN_MODEL, flat_max=1000)
    assert len(notes) == 1 and "rebuilt" in notes[0] and str(path) in notes[0]
    assert index.ntotal == len(vectors)
    assert int(index.search(vectors[12:13], 1)[1][0, 0]) == ids[12]
    assert dump_sqlite(db) == before  # the catalog is untouched
    assert VectorIndex.load(path).ntotal == len(vectors)  # and the rebuilt file was saved
    assert open_index(catalog, path, SYN_MODEL, flat_max=1000)[1] == []


def test_index_file_check_reads_only_the_header_yet_catches_damage(syn):
    # `clipsearch index` judges the saved file by its header (loading a large index costs more
    # than the rest of an unchanged run), so the header must expose truncation and garbage.
    catalog, _ids, _vectors, path, _ = syn
    open_index(catalog, path, SYN_MODEL, flat_max=1000)
    assert index_file_current(catalog, path, SYN_MODEL)
    assert not index_file_current(catalog, path, "another-model")
    data = path.read_bytes()
    for damaged in (data[:-10], data[:20], b"CLIPSIDX" + b"\xff" * 64, b"CLIPSIDX" + os.urandom(64), b""):
        path.write_bytes(damaged)
        assert not index_file_current(catalog, path, SYN_MODEL)
    path.unlink()
    assert not index_file_current(catalog, path, SYN_MODEL)


def test_temp_files_left_by_a_killed_save_are_removed(syn):
    catalog, _ids, _vectors, path, _ = syn
    stale, busy = path.with_name(path.name + "abc.tmp"), path.with_name(path.name + "def.tmp")
    for tmp in (stale, busy):
        tmp.write_bytes(b"half an index")
    # A save in progress holds a lock on its temp file; a killed one's lock went with it.
    with open(busy, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        open_index(catalog, path, SYN_MODEL, flat_max=1000)  # saves the index
    assert not stale.exists(), "a temp file from a killed save must not pile up, however young"
    assert busy.exists(), "a temp file another process is writing must stay"


def test_index_for_another_model_or_from_the_future_is_rebuilt(syn):
    catalog, ids, vectors, path, _ = syn
    stale = VectorIndex.empty(Layout("flat"), DIM, "other:model", watermark=catalog.facts.current_seq())
    stale.save(path)
    index, notes = open_index(catalog, path, SYN_MODEL, flat_max=1000)
    assert any("another model" in n for n in notes) and index.ntotal == len(vectors)
    future = VectorIndex.empty(Layout("flat"), DIM, SYN_MODEL, watermark=catalog.facts.current_seq() + 50)
    future.save(path)
    index, notes = open_index(catalog, path, SYN_MODEL, flat_max=1000)
    assert any("newer than the catalog" in n for n in notes) and index.ntotal == len(vectors)
    assert index.header.watermark == catalog.facts.current_seq()


def test_catch_up_applies_new_catalog_writes(syn, monkeypatch):
    catalog, ids, vectors, path, _ = syn
    index, _ = open_index(catalog, path, SYN_MODEL, flat_max=1000)
    mark = index.header.watermark
    assert mark == catalog.facts.current_seq() == len(vectors)

    extra = clustered_vectors(2, 10, seed=99)
    n = len(vectors)
    catalog.writes.write([record(n + i, v) for i, v in enumerate(extra)], {}, model_id=SYN_MODEL)
    replacement = clustered_vectors(1, 1, seed=1234)[0]
    changed = record(3, replacement)
    catalog.writes.write([changed], {changed.path: int(ids[3])}, model_id=SYN_MODEL)  # re-embedded in place
    failed = record(4, None, status="failed")
    catalog.writes.write([failed], {failed.path: int(ids[4])})  # content now undecodable: vector dropped
    catalog.writes.write([], {}, deleted=[int(ids[5]), int(ids[6])])
    assert catalog.facts.current_seq() > mark

    def no_rebuild(*_a, **_k):
        raise AssertionError("a current-format index must be caught up, not rebuilt")

    monkeypatch.setattr(vsync, "build_index", no_rebuild)
    caught, notes = open_index(catalog, path, SYN_MODEL, flat_max=1000)
    assert notes == []
    assert caught.header.watermark == catalog.facts.current_seq()
    assert caught.ntotal == n + len(extra) - 3
    present = set(caught.search(np.vstack([vectors, extra]), 100)[1].ravel().tolist())
    assert not present & {int(ids[4]), int(ids[5]), int(ids[6])}
    scores, found = caught.search(replacement[None, :], 1)
    assert int(found[0, 0]) == ids[3] and scores[0, 0] > 0.999

    # The caught-up file was saved: a fresh open reads it as current.
    reloaded = VectorIndex.load(path)
    assert reloaded.header.watermark == catalog.facts.current_seq() and reloaded.ntotal == caught.ntotal
    _, notes = open_index(catalog, path, SYN_MODEL, flat_max=1000)
    assert notes == []


def test_cli_rebuilds_a_damaged_or_deleted_index(photos, home):
    index_json(photos)
    status = status_json()
    path = home / "vectors.faiss"
    assert path.is_file()
    before = dump_sqlite(home / "catalog.db")

    path.write_bytes(path.read_bytes()[:200])
    result = ok(run_cli("status"))
    assert "note:" in result.stderr and "rebuilt" in result.stderr
    shown = dict(line.split(None, 1) for line in result.stdout.splitlines() if line.strip())
    assert int(shown["vectors"]) == status["vectors"] and shown["index_kind"] == "flat"
    assert VectorIndex.load(path).ntotal == status["vectors"]

    path.write_bytes(b"CLIPSIDX" + b"\x00" * 50)
    result = run_cli("query", "--image", photos / "img000.jpg", "-k", "1", "--json")
    assert result.exit_code == 0 and "rebuilt" in result.stderr
    assert '"rank": 1' in result.stdout

    path.unlink()
    assert status_json()["vectors"] == status["vectors"]
    assert path.is_file()
    assert dump_sqlite(home / "catalog.db") == before


def test_large_collections_are_not_retrained_on_every_open():
    """The retrain yardstick is the collection size at training, not the (capped) sample size."""
    from clipsearch.vectors.policy import needs_rebuild, training_size

    big = 1_000_000
    layout = choose_layout(big, 512, flat_max=50_000)
    sample = training_size(layout, big, 512)
    assert sample < big  # the sample is far below the collection
    header = IndexHeader(
        "ivfpq", 512, "m", 0, trained_on=sample, built_for=big, nlist=layout.nlist, factory=layout.factory
    )
    assert not needs_rebuild(header, big, flat_max=50_000)
    assert not needs_rebuild(header, int(1.5 * big), flat_max=50_000)
    assert needs_rebuild(header, 5 * big, flat_max=50_000)
    # An index laid out by an older policy (here: before the layout was recorded) is rebuilt once.
    assert needs_rebuild(replace(header, factory=""), big, flat_max=50_000)
    assert needs_rebuild(replace(header, factory="IVF4472,PQ64x4fs"), big, flat_max=50_000)
