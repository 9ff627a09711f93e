"""Bulk catalog writes: a batch of new rows is one executemany (SQLite) or one COPY (PostgreSQL),
not a statement or an ORM object per row; the Ray driver commits every WRITE_ROWS rows (or
WRITE_SECONDS), not every model batch."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import event

from clipsearch.catalog import Catalog, ImageRecord

DIM = 16
N = 1_000


def _records(n: int, start: int = 0) -> list[ImageRecord]:
    rng = np.random.default_rng(start)
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return [
        ImageRecord(f"/bulk/{start + i:05d}.jpg", "/bulk", 100 + i, 7, f"h{start + i}", "ok", width=4, vector=v)
        for i, v in enumerate(vectors)
    ]


def test_a_batch_of_new_rows_is_one_bulk_statement(backend):
    catalog = Catalog.open(backend)
    catalog.facts.bind_model("m:bulk", "m:bulk", DIM)
    inserts: list[tuple[bool, int]] = []

    def seen(_conn, _cursor, statement, parameters, _context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO IMAGES"):
            inserts.append((executemany, len(parameters) if executemany else 1))

    event.listen(catalog.engine, "before_cursor_execute", seen)
    records = _records(N)
    catalog.writes.write(records, {}, model_id="m:bulk")
    event.remove(catalog.engine, "before_cursor_execute", seen)
    if catalog.engine.dialect.name == "postgresql":
        assert inserts == []  # COPY FROM STDIN, past SQLAlchemy's statement layer
    else:
        assert inserts == [(True, N)]  # one executemany of a plain INSERT
    # Every row arrived whole: its metadata, its vector (float16) and its place in the sequence.
    ids, vectors = catalog.vectors.fetch(list(range(1, N + 1)))
    assert len(ids) == N and catalog.facts.current_seq() == N
    expected = np.stack([r.vector for r in records]).astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(vectors[np.argsort(ids)], expected)
    meta = catalog.results.meta([1, N])
    assert (meta[1].path, meta[N].path, meta[N].width) == ("/bulk/00000.jpg", f"/bulk/{N - 1:05d}.jpg", 4)
    catalog.close()


def test_the_ray_driver_commits_in_write_batches_not_model_batches(home, monkeypatch, tmp_path):
    pytest.importorskip("ray")
    from conftest import MODEL

    from clipsearch.imaging import ImageInfo
    from clipsearch.indexer import ray_engine
    from clipsearch.indexer.ray_stages import Embedded
    from clipsearch.indexer.scan import FoundFile
    from clipsearch.indexer.summary import IndexSummary
    from clipsearch.settings import Settings
    from clipsearch.store import Store

    store = Store.open(Settings(home=home))
    encoder = store.load_encoder(MODEL, "cpu")
    store.bind(encoder)
    trace = tmp_path / "points.txt"
    monkeypatch.setenv("CLIPSEARCH_FAULT_TRACE", str(trace))

    def commits() -> int:
        return trace.read_text().split().count("batch-committed") if trace.exists() else 0

    def feed(writer, n: int, start: int) -> None:
        for i in range(start, start + n):
            f = FoundFile(f"/ray/{i:04d}.jpg", "/ray", 10, 1)
            v = np.ones(encoder.dim, dtype=np.float32) / np.sqrt(encoder.dim)
            writer.add_decoded(Embedded(f, f"c{i}", ImageInfo(8, 8, None, None, None), v), None)

    monkeypatch.setattr(ray_engine, "WRITE_SECONDS", 3600.0)
    writer = ray_engine._VectorWriter(store.catalog.writes, encoder, 4, IndexSummary())  # model batch: 4
    feed(writer, 2 * ray_engine.WRITE_ROWS + 10, 0)
    assert commits() == 2  # one per WRITE_ROWS rows, not one per 4
    writer.flush()
    assert commits() == 3 and store.catalog.facts.stats().images == 2 * ray_engine.WRITE_ROWS + 10
    # A slow cluster still commits at least every WRITE_SECONDS.
    monkeypatch.setattr(ray_engine, "WRITE_SECONDS", 0.0)
    feed(writer, 3, 5_000)
    assert commits() == 6
    store.close()
