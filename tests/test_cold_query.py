"""A one-shot `clipsearch query` maps the index file instead of reading it: the same answers.

The cold CLI process (a real subprocess) is compared with the long-running kind of search service
(the index read into memory, as the server and the UI hold it) on stores large enough for each
layout, and a mapped index is checked to catch up with the catalog like a read one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import MODEL

from clipsearch.catalog import Catalog, ImageRecord
from clipsearch.models import load_encoder
from clipsearch.search import SearchRequest, SearchService
from clipsearch.settings import Settings
from clipsearch.store import Store
from clipsearch.vectors import VectorIndex, open_index

TEXTS = ("a red square", "two blue circles on grey", "a dog on a beach")


def clustered(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n // 10, dim))
    x = np.repeat(centres, 10, axis=0) + 0.3 * rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def write_rows(catalog: Catalog, vectors: np.ndarray, start: int = 0) -> None:
    records = [
        ImageRecord(
            path=f"/syn/{(start + i) // 100:03d}/img{start + i:05d}.jpg",
            root="/syn",
            size=1000 + start + i,
            mtime_ns=start + i,
            content_hash=f"h{start + i:08d}",
            status="ok",
            width=64,
            height=48,
            vector=v,
        )
        for i, v in enumerate(vectors)
    ]
    catalog.writes.write(records, {}, model_id=MODEL)


def model_store(home, n: int, flat_max: int) -> Store:
    """A store bound to the test model holding n clustered vectors (written directly: no images to decode)."""
    dim = load_encoder(MODEL, device="cpu").dim
    store = Store.open(Settings(home=home, flat_max=flat_max))
    store.catalog.facts.bind_model(MODEL, MODEL, dim)
    write_rows(store.catalog, clustered(n, dim, seed=5))
    return store


def cold_query_json(home, text: str, flat_max: int) -> dict:
    """`clipsearch query TEXT -k 10 --json` as a new process, as a user runs it."""
    env = dict(os.environ, CLIPSEARCH_HOME=str(home), CLIPSEARCH_FLAT_MAX=str(flat_max))
    out = subprocess.run(
        [sys.executable, "-m", "clipsearch", "query", text, "-k", "10", "--json", "--no-server"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "note:" not in out.stderr  # the saved index was used as it is (no rebuild, no catch-up)
    return json.loads(out.stdout)


@pytest.mark.parametrize("kind", ["ivfpq", "flat"])
def test_a_cold_cli_query_answers_as_the_in_process_service(tmp_path, kind):
    n = 2000
    flat_max = 100 if kind == "ivfpq" else n
    store = model_store(tmp_path / "home", n, flat_max)
    index, notes = store.vector_index()  # built and saved: the CLI process finds its file current
    assert (index.kind, index.ntotal, notes) == (kind, n, [])
    if kind == "ivfpq":
        assert index.header.nprobe < index.header.nlist  # truly approximate, then re-ranked
    assert SearchService.open(store, mapped=True).index.mapped  # what `clipsearch query` opens
    service = SearchService.open(store)
    assert not service.index.mapped  # the long-running kind reads the file into memory
    for text in TEXTS:
        cold = cold_query_json(store.settings.home, text, flat_max)
        warm = service.search(SearchRequest(text=text, k=10)).to_dict()
        assert len(cold["results"]) == 10
        assert cold["results"] == warm["results"]  # the same images, ranks and scores
    store.close()


@pytest.mark.parametrize("flat_max", [100, 10_000], ids=["ivfpq", "flat"])
def test_a_mapped_index_catches_up_with_the_catalog_like_a_read_one(tmp_path, flat_max):
    dim = 32
    settings = Settings(home=tmp_path / "home", flat_max=flat_max)
    catalog = Catalog.open(settings.catalog_url)
    catalog.facts.bind_model(MODEL, MODEL, dim)
    vectors = clustered(1000, dim, seed=1)
    write_rows(catalog, vectors[:800])
    path = settings.index_path
    open_index(catalog, path, MODEL, flat_max)  # saved at the catalog's sequence number then
    write_rows(catalog, vectors[800:], start=800)  # committed after: both loads must catch up
    mapped, notes = open_index(catalog, path, MODEL, flat_max, save=False, mapped=True)
    read, _ = open_index(catalog, path, MODEL, flat_max, save=False)
    assert notes == [] and mapped.ntotal == read.ntotal == 1000
    assert not mapped.mapped  # it made its own copy before changing (a view of the file cannot change)
    np.testing.assert_array_equal(mapped.search(vectors[::50], 20)[1], read.search(vectors[::50], 20)[1])
    catalog.close()


@pytest.mark.parametrize("flat_max", [100, 10_000], ids=["ivfpq", "flat"])
def test_a_mapped_index_changes_only_its_own_copy(tmp_path, flat_max):
    vectors = clustered(600, 32, seed=2)
    ids = np.arange(1, 601, dtype=np.int64)
    catalog = Catalog.open(Settings(home=tmp_path / "home").catalog_url)
    catalog.facts.bind_model(MODEL, MODEL, 32)
    write_rows(catalog, vectors)
    path = tmp_path / "vectors.faiss"
    open_index(catalog, path, MODEL, flat_max)
    before = path.read_bytes()
    index, read = VectorIndex.load(path, mapped=True), VectorIndex.load(path)
    assert index.mapped
    np.testing.assert_array_equal(index.search(vectors[:5], 5)[1], read.search(vectors[:5], 5)[1])
    for changing in (index, read):
        changing.remove(ids[:100])
        changing.upsert(ids[100:101], vectors[:1])
    assert not index.mapped and index.ntotal == 500
    found = index.search(vectors[:10], 20)[1]
    np.testing.assert_array_equal(found, read.search(vectors[:10], 20)[1])
    assert 101 in found[0] and not set(found.ravel()) & set(ids[:100].tolist())
    assert path.read_bytes() == before  # the file is untouched
    catalog.close()
