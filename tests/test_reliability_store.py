"""Reliability: the store itself (issue 15, cases 1, 5 and 8).

Disk space, configuration mistakes and damaged or read-only stores end in a clear message or
keep working; a kill during schema setup and concurrent first runs leave a usable store.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy
from conftest import MODEL, catalog_rows, index_json, make_photos, ok, query_json, run_cli, status_json

from clipsearch.catalog import Catalog, ImageRecord


def test_thumbnails_stop_before_the_disk_fills(tmp_path, home, monkeypatch):
    folder = tmp_path / "photos"
    make_photos(folder, 6)
    monkeypatch.setenv("CLIPSEARCH_DISK_RESERVE_MB", str(1 << 40))  # more than any disk has free
    result = ok(run_cli("index", folder, "--model", MODEL))
    assert "thumbnails paused" in result.stderr and "CLIPSEARCH_DISK_RESERVE_MB" in result.stderr
    assert not list((home / "thumbs").rglob("*.jpg"))
    assert len(catalog_rows(home)) == 6  # the catalog got every row
    # With space again, the next run makes the missing thumbnails.
    monkeypatch.setenv("CLIPSEARCH_DISK_RESERVE_MB", "0")
    summary = index_json(folder)
    assert summary["notes"] == [] and summary["new"] == 0
    assert len(list((home / "thumbs").rglob("*.jpg"))) == 6


# -- schema setup: a kill part-way, and concurrent first runs (cases 1 and 5) ---------------------


def _cli(home: Path, *args: str, **env: str) -> subprocess.Popen:
    full_env = {**os.environ, "CLIPSEARCH_HOME": str(home), **env}
    return subprocess.Popen(
        [sys.executable, "-m", "clipsearch", *args],
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_kill_during_schema_setup_leaves_a_usable_store(tmp_path, home, backend):
    folder = tmp_path / "photos"
    make_photos(folder, 3)
    proc = _cli(home, "index", str(folder), "--model", MODEL, CLIPSEARCH_FAULT="schema-migrated")
    _out, err = proc.communicate(timeout=300)
    assert proc.returncode == -9, err
    if backend.startswith("sqlite"):
        # Nothing half-made under the catalog's name: the draft is the killed process's own.
        assert not (home / "catalog.db").exists()
    for command in (["status", "--json"], ["db", "upgrade"]):
        assert ok(run_cli(*command)).exit_code == 0
    assert index_json(folder)["new"] == 3


def test_concurrent_first_runs_wait_for_one_schema(tmp_path, home, backend):
    """Simultaneous first runs on a new store: one creates the schema, the others use it."""
    folders = []
    for i in range(4):
        folders.append(tmp_path / f"photos{i}")
        make_photos(folders[-1], 3, seed=i)
    procs = [_cli(home, "index", str(f), "--model", MODEL, "--json") for f in folders]
    results = [(p.wait(timeout=600), *p.communicate()) for p in procs]
    for code, _out, err in results:
        # SQLite stores take one run at a time: the others are refused with the lock message.
        assert code == 0 or "another `clipsearch index`" in err, err
        assert "already exists" not in err and "duplicate key" not in err
    assert any(code == 0 for code, _, _ in results)
    rows = catalog_rows(home)
    done = sum(json.loads(out)["new"] for code, out, _ in results if code == 0)
    assert len(rows) == done
    seqs = [r["vec_seq"] for r in rows.values()]
    assert len(seqs) == len(set(seqs)), "two vectors share a sequence number"
    status = status_json()
    assert status["vectors"] == status["images"] == done


def test_the_sequence_counter_is_locked_even_on_a_new_catalog(backend):
    """A writer that holds the counter makes a second writer wait (on a fresh PostgreSQL catalog
    there used to be no row to lock, so both took the same numbers)."""
    if not backend.startswith("postgresql"):
        pytest.skip("SQLite has one writer at a time anyway")
    catalog = Catalog.open(backend)
    holder = sqlalchemy.create_engine(backend)
    try:
        with holder.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT value FROM store_meta WHERE key = 'vector_seq' FOR UPDATE"))
            rows = conn.execute(sqlalchemy.text("SELECT count(*) FROM store_meta WHERE key = 'vector_seq'")).scalar()
            assert rows == 1
            writer = threading.Thread(
                target=catalog.writes.write, args=([_record("/a.jpg")], {}), kwargs={"model_id": "m"}
            )
            writer.start()
            assert _waits_for_a_lock(holder), "the second writer did not wait for the counter"
            conn.execute(sqlalchemy.text("UPDATE store_meta SET value = '1' WHERE key = 'vector_seq'"))
            conn.commit()
        writer.join(timeout=60)
        assert catalog.facts.current_seq() == 2
    finally:
        holder.dispose()
        catalog.close()


def test_simultaneous_first_runs_bind_the_model_once(backend):
    """Two first runs both find no model; the one that waits for the counter then finds the other's
    binding (it used to insert it again: a duplicate key in store_meta)."""
    if not backend.startswith("postgresql"):
        pytest.skip("SQLite stores take one index run at a time")
    catalog = Catalog.open(backend)
    holder = sqlalchemy.create_engine(backend)
    found: list = []
    try:
        with holder.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT value FROM store_meta WHERE key = 'vector_seq' FOR UPDATE"))
            binder = threading.Thread(target=lambda: found.append(catalog.facts.bind_model("m@1", "m", 4)))
            binder.start()
            assert _waits_for_a_lock(holder), "the second first run did not wait for the counter"
            first = json.dumps({"model_id": "m@1", "spec": "first", "dim": 4})
            conn.execute(sqlalchemy.text("INSERT INTO store_meta (key, value) VALUES ('model', :v)"), {"v": first})
            conn.commit()
        binder.join(timeout=60)
        assert [m.spec for m in found] == ["first"]
    finally:
        holder.dispose()
        catalog.close()


def _record(path: str) -> ImageRecord:
    return ImageRecord(path, "/", 1, 1, "00", status="ok", vector=np.ones(4, dtype=np.float32) / 2)


def _waits_for_a_lock(engine, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(
                sqlalchemy.text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
            ).scalar()
            if waiting:
                return True
            time.sleep(0.05)
    return False


# -- damaged, read-only and misconfigured stores (case 8) ------------------------------------------


def test_a_zero_byte_catalog_is_refused_not_started_over(tmp_path, home):
    folder = tmp_path / "photos"
    make_photos(folder, 2)
    home.mkdir(parents=True)
    (home / "catalog.db").write_bytes(b"")
    for args in (["status"], ["query", "a photo"], ["index", str(folder)]):
        result = run_cli(*args)
        assert result.exit_code == 1
        assert "is empty (0 bytes)" in result.stderr and "delete it to start a new" in result.stderr
    assert (home / "catalog.db").stat().st_size == 0  # left for the user to restore


def test_a_read_only_home_answers_queries(tmp_path, home):
    folder = tmp_path / "photos"
    make_photos(folder, 4)
    index_json(folder)
    want = query_json("--image", folder / "img001.jpg", "-k", "2")
    # The home mounted read-only in a private mount namespace: only the query process sees it so.
    script = 'mount --bind "$0" "$0" && mount -o remount,ro,bind "$0" "$0" && exec "$@"'
    probe = subprocess.run(["unshare", "-m", "sh", "-c", script, str(home), "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a read-only mount here: {probe.stderr.decode().strip()}")
    args = [sys.executable, "-m", "clipsearch", "query", "--image", str(folder / "img001.jpg"), "-k", "2", "--json"]
    env = {**os.environ, "CLIPSEARCH_HOME": str(home)}
    proc = subprocess.run(
        ["unshare", "-m", "sh", "-c", script, str(home), *args], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert [h["path"] for h in json.loads(proc.stdout)["results"]] == [h["path"] for h in want]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql+psycopg://me:secret@127.0.0.1:fivefour/db", "not a valid database URL"),
        ("postgresql+psycopg2://me:secret@127.0.0.1/db", "needs the Python driver 'psycopg2'"),
        ("nosuchdb://me:secret@host/db", "database kind clipsearch cannot use"),
        ("postgresql+psycopg://me:se@cret@127.0.0.1:54329/db", "write it as %40"),
    ],
)
def test_bad_database_urls_get_one_clear_line_without_the_password(home, monkeypatch, url, expected):
    monkeypatch.setenv("DATABASE_URL", url)
    result = run_cli("status")
    assert result.exit_code == 1
    assert expected in result.stderr
    assert result.stderr.count("\n") == 1 and "please report it" not in result.stderr
    assert "secret" not in result.stderr and "cret" not in result.stderr
