"""The SQL catalog on SQLite (and PostgreSQL in CI): schema by Alembic, vectors, sequence counter and tombstones."""

from __future__ import annotations

import sqlite3
from datetime import datetime

import numpy as np
import pytest
import sqlalchemy
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from clipsearch.catalog import Catalog, ImageRecord, Move, migrate
from clipsearch.catalog.engine import make_engine, safe_url
from clipsearch.catalog.migrate import current_revision, head_revision
from clipsearch.catalog.schema import Base
from clipsearch.errors import ModelMismatchError, StoreError

DIM = 16


def unit(seed: int, dim: int = DIM) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


def rec(name: str, seed: int | None, status: str = "ok", **kw) -> ImageRecord:
    return ImageRecord(
        path=f"/photos/{name}",
        root="/photos",
        size=kw.pop("size", 1000 + (seed or 0)),
        mtime_ns=kw.pop("mtime_ns", 5),
        content_hash=kw.pop("content_hash", f"hash-{name}-{seed}"),
        status=status,
        vector=None if seed is None else unit(seed),
        **kw,
    )


@pytest.fixture
def db(tmp_path):
    return tmp_path / "store" / "catalog.db"


@pytest.fixture
def catalog(backend):
    # `backend`: SQLite, and in CI also PostgreSQL (tests/conftest.py).
    cat = Catalog.open(backend)
    cat.facts.bind_model("m:test", "m:test", DIM)
    yield cat
    cat.close()


def ids_by_name(catalog: Catalog) -> dict[str, int]:
    return {m.path.rsplit("/", 1)[1]: m.id for m in catalog.results.meta(range(1, 1000)).values()}


def test_open_creates_schema_at_alembic_head(db):
    catalog = Catalog.open(f"sqlite:///{db}")
    try:
        assert db.is_file()
        assert current_revision(catalog.engine) == head_revision() == "0006"
        tables = set(inspect(catalog.engine).get_table_names())
        assert {
            "images",
            "store_meta",
            "tombstones",
            "image_tags",
            "generations",
            "generation_vectors",
            "alembic_version",
        } <= tables
        con = sqlite3.connect(db)
        assert con.execute("SELECT version_num FROM alembic_version").fetchall() == [(head_revision(),)]
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        con.close()
        assert catalog.facts.model() is None and catalog.facts.current_seq() == 0
    finally:
        catalog.close()
    # Reopening an up-to-date store is a no-op that keeps the data.
    again = Catalog.open(f"sqlite:///{db}")
    again.facts.set("probe", "kept")
    again.close()
    third = Catalog.open(f"sqlite:///{db}")
    assert third.facts.get("probe") == "kept"
    third.close()


def test_models_and_migrations_agree(backend):
    catalog = Catalog.open(backend)
    try:
        with catalog.engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
            diff = compare_metadata(ctx, Base.metadata)
        assert diff == []
    finally:
        catalog.close()


def test_unopenable_catalog_is_a_store_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot open the catalog"):
        Catalog.open(f"sqlite:///{blocker / 'sub' / 'catalog.db'}")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        # No password: shown exactly as given (an '@' in a SQLite path is part of the path).
        ("sqlite:////photos/me@home/catalog.db", "sqlite:////photos/me@home/catalog.db"),
        ("sqlite:///relative/cat.db", "sqlite:///relative/cat.db"),
        ("postgresql+psycopg://alice@db.example:5432/photos", "postgresql+psycopg://alice@db.example:5432/photos"),
        ("postgresql+psycopg://db.example/photos", "postgresql+psycopg://db.example/photos"),
        # A password: hidden, and nothing else changes.
        (
            "postgresql+psycopg://alice:hunter2@db.example:5432/photos",
            "postgresql+psycopg://alice:***@db.example:5432/photos",
        ),
        (
            "postgresql+psycopg://alice:hunter2@db.example/photos?sslmode=require",
            "postgresql+psycopg://alice:***@db.example/photos?sslmode=require",
        ),
        # '@' in a password, escaped as URLs require, or typed raw: no part of it shows.
        ("postgresql+psycopg://alice:p%40ss@db.example/photos", "postgresql+psycopg://alice:***@db.example/photos"),
        ("postgresql+psycopg://alice:p@ss@db.example/photos", "postgresql+psycopg://alice:***@db.example/photos"),
        ("postgresql+psycopg://:hunter2@db.example/photos", "postgresql+psycopg://:***@db.example/photos"),
    ],
)
def test_safe_url_hides_the_password_and_nothing_else(url, shown):
    assert safe_url(url) == shown


def test_a_catalog_that_cannot_be_reached_is_named_without_its_password(home):
    from conftest import run_cli

    url = "postgresql+psycopg://alice:hunter2@127.0.0.1:1/photos"  # nothing listens on port 1
    result = run_cli("status", env={"DATABASE_URL": url})
    assert result.exit_code == 1
    assert "cannot open the catalog at postgresql+psycopg://alice:***@127.0.0.1:1/photos" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout


def test_vectors_round_trip_as_float16(catalog):
    records = [
        rec(
            f"{i}.jpg",
            i,
            width=64,
            height=48,
            camera="Canon EOS 5D",
            taken_at=datetime(2021, 6, 15, 10, 30),
            orientation=6,
        )
        for i in range(30)
    ]
    catalog.writes.write(records, {}, model_id="m:test")
    ids, vectors = catalog.vectors.fetch(range(1, 31))
    assert vectors.dtype == np.float32 and vectors.shape == (30, DIM)
    expected = np.stack([unit(i) for i in range(30)])
    order = np.argsort(ids)
    np.testing.assert_allclose(vectors[order], expected, atol=1e-3)
    np.testing.assert_array_equal(vectors[order], expected.astype(np.float16).astype(np.float32))

    with catalog.engine.connect() as con:
        blobs = con.execute(text("SELECT embedding, model_id, vec_seq, status FROM images ORDER BY id")).all()
    assert all(len(b) == DIM * 2 for b, *_ in blobs)  # 2 bytes per component
    assert {m for _, m, _, _ in blobs} == {"m:test"}
    assert [s for _, _, s, _ in blobs] == list(range(1, 31))

    it_ids, it_vecs = zip(*catalog.vectors.changed(chunk=7), strict=False)
    assert sum(len(i) for i in it_ids) == 30
    np.testing.assert_array_equal(np.concatenate(it_ids), np.sort(ids))
    assert len(catalog.vectors.sample(10)) == 10

    meta = catalog.results.meta([ids[0]])[int(ids[0])]
    assert (meta.width, meta.height, meta.camera, meta.taken_at) == (
        64,
        48,
        "Canon EOS 5D",
        datetime(2021, 6, 15, 10, 30),
    )
    stats = catalog.facts.stats()
    assert (stats.images, stats.failed, stats.seq) == (30, 0, 30)


def test_sequence_tombstones_and_watermark_reads(catalog):
    catalog.writes.write(
        [rec("a.jpg", 1), rec("b.jpg", 2), rec("c.jpg", 3), rec("bad.jpg", None, status="failed", error="nope")],
        {},
        model_id="m:test",
    )
    ids = ids_by_name(catalog)
    assert catalog.facts.current_seq() == 3  # failed rows carry no vector and take no sequence number
    assert catalog.facts.failures() == [("/photos/bad.jpg", "nope")]
    assert catalog.facts.stats().failed == 1

    # b.jpg re-embedded (new content), c.jpg now fails to decode, a.jpg deleted.
    catalog.writes.write([rec("b.jpg", 20, content_hash="new")], {"/photos/b.jpg": ids["b.jpg"]}, model_id="m:test")
    assert catalog.facts.current_seq() == 4
    catalog.writes.write([rec("c.jpg", None, status="failed", error="truncated")], {"/photos/c.jpg": ids["c.jpg"]})
    assert catalog.facts.current_seq() == 5
    catalog.writes.write([], {}, deleted=[ids["a.jpg"]])
    assert catalog.facts.current_seq() == 6

    assert list(catalog.vectors.tombstones(0)) == [ids["c.jpg"], ids["a.jpg"]]
    assert list(catalog.vectors.tombstones(5)) == [ids["a.jpg"]]
    assert list(catalog.vectors.tombstones(3, up_to_seq=5)) == [ids["c.jpg"]]
    changed = [i for chunk, _ in catalog.vectors.changed(after_seq=3) for i in chunk]
    assert changed == [ids["b.jpg"]]
    assert [i for chunk, _ in catalog.vectors.changed(after_seq=0, up_to_seq=3) for i in chunk] == []  # b moved on
    all_now, vecs = catalog.vectors.fetch(ids.values())
    assert list(all_now) == [ids["b.jpg"]]
    np.testing.assert_allclose(vecs[0], unit(20), atol=1e-3)
    assert "a.jpg" not in ids_by_name(catalog)
    assert catalog.facts.stats().images == 1 and catalog.facts.stats().failed == 2

    # Ids are never reused after a delete (the FAISS cache keys vectors by id).
    catalog.writes.write([rec("d.jpg", 4)], {}, model_id="m:test")
    assert ids_by_name(catalog)["d.jpg"] > max(ids.values())


def test_moves_keep_vector_and_sequence(catalog):
    catalog.writes.write([rec("a.jpg", 1)], {}, model_id="m:test")
    (row_id,) = ids_by_name(catalog).values()
    seq = catalog.facts.current_seq()
    catalog.writes.write([], {}, moves=[Move(row_id, "/elsewhere/z.jpg", "/elsewhere", 1001, 99)])
    meta = catalog.results.meta([row_id])[row_id]
    assert meta.path == "/elsewhere/z.jpg" and meta.size == 1001
    assert list(catalog.vectors.tombstones(0)) == []
    assert [i for chunk, _ in catalog.vectors.changed(after_seq=seq) for i in chunk] == []
    states = catalog.writes.file_states("/elsewhere", is_dir=True)
    assert list(states) == ["/elsewhere/z.jpg"] and states["/elsewhere/z.jpg"].mtime_ns == 99
    assert catalog.writes.file_states("/photos", is_dir=True) == {}
    assert catalog.writes.vectors_by_hash(["hash-a.jpg-1"]).keys() == {"hash-a.jpg-1"}


def test_file_states_respect_folder_boundaries(catalog):
    catalog.writes.write([rec("x/1.jpg", 1), rec("xy/2.jpg", 2)], {}, model_id="m:test")
    assert list(catalog.writes.file_states("/photos/x", is_dir=True)) == ["/photos/x/1.jpg"]
    assert list(catalog.writes.file_states("/photos/x/", is_dir=True)) == ["/photos/x/1.jpg"]
    assert list(catalog.writes.file_states("/photos/xy/2.jpg", is_dir=False)) == ["/photos/xy/2.jpg"]


def test_store_model_binding(catalog):
    assert catalog.facts.model().model_id == "m:test" and catalog.facts.dim() == DIM
    assert catalog.facts.bind_model("m:test", "m:test", DIM).dim == DIM
    with pytest.raises(ModelMismatchError) as info:
        catalog.facts.bind_model("m:other", "m:other", DIM)
    assert "m:test" in str(info.value) and "m:other" in str(info.value)


def test_a_store_from_the_previous_revision_upgrades_with_rows_and_vectors_intact(backend):
    engine = make_engine(backend)
    migrate.upgrade(engine, "0001")
    blob = unit(7).astype(np.float16).tobytes()
    with engine.begin() as con:
        con.execute(
            text("INSERT INTO store_meta (key, value) VALUES ('model', :v), ('vector_seq', '1')"),
            {"v": '{"model_id": "m:test", "spec": "m:test", "dim": 16}'},
        )
        con.execute(
            text(
                "INSERT INTO images (path, root, content_hash, size, mtime_ns, status, embedding, model_id, vec_seq) "
                "VALUES ('/p/a.jpg', '/p', 'h1', 10, 5, 'ok', :blob, 'm:test', 1), "
                "('/p/b.jpg', '/p', NULL, 0, 5, 'failed', NULL, NULL, 0)"
            ),
            {"blob": blob},
        )
    engine.dispose()
    catalog = Catalog.open(backend)  # upgrades on open
    try:
        assert current_revision(catalog.engine) == head_revision()
        assert "ix_images_status" in {ix["name"] for ix in inspect(catalog.engine).get_indexes("images")}
        ids, vectors = catalog.vectors.fetch(range(1, 10))
        assert len(ids) == 1
        np.testing.assert_array_equal(vectors[0], unit(7).astype(np.float16).astype(np.float32))
        assert catalog.facts.stats().images == 1 and catalog.facts.stats().failed == 1
        assert catalog.facts.model().model_id == "m:test"
        assert catalog.facts.failures() == [("/p/b.jpg", "")]
    finally:
        catalog.close()


def test_db_commands_show_and_apply_migrations(backend):
    from conftest import ok, run_cli

    engine = make_engine(backend)
    migrate.upgrade(engine, "0001")
    engine.dispose()
    before = ok(run_cli("db", "current")).stdout
    assert "revision 0001" in before and "needs `clipsearch db upgrade`" in before
    assert f"now at revision {head_revision()}" in ok(run_cli("db", "upgrade")).stdout
    assert "up to date" in ok(run_cli("db", "current")).stdout


def test_the_tests_row_reader_does_not_hide_a_broken_catalog(home):
    from conftest import catalog_rows

    assert catalog_rows(home) == {}  # no catalog yet: nothing in it, and none created
    assert not (home / "catalog.db").exists()
    home.mkdir(parents=True)
    (home / "catalog.db").write_bytes(b"not a database" * 100)
    with pytest.raises(sqlalchemy.exc.DatabaseError):
        catalog_rows(home)
