"""Killing an index run at any moment loses no finished work and never corrupts the store."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import numpy as np
from conftest import catalog_rows, default_sigint, index_argv, index_json, make_photos, query_json, status_json

TRIALS = 20
PHOTOS = 240


def _start(folder: Path, home: Path) -> subprocess.Popen:
    env = {**os.environ, "CLIPSEARCH_HOME": str(home)}
    return subprocess.Popen(
        index_argv(folder, "--batch-size", "8", "--workers", "1"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    )


def _snapshot(home: Path) -> dict[str, tuple]:
    """path -> (status, content hash, vector) : what must match an uninterrupted run."""
    return {
        path: (
            r["status"],
            r["content_hash"],
            np.frombuffer(r["embedding"], dtype=np.float16) if r["embedding"] else None,
        )
        for path, r in catalog_rows(home).items()
    }


def _assert_same_store(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for path, (status, digest, vector) in want.items():
        g_status, g_digest, g_vector = got[path]
        assert (g_status, g_digest) == (status, digest), path
        if vector is None:
            assert g_vector is None
        else:
            # Batches differ between runs; float16 storage absorbs the tiny numeric differences.
            assert float(np.dot(g_vector.astype(np.float32), vector.astype(np.float32))) > 0.999, path


def test_sigkill_at_random_moments_then_resume(tmp_path, monkeypatch):
    folder = tmp_path / "photos"
    make_photos(folder, PHOTOS, seed=3)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")

    reference_home = tmp_path / "reference"
    monkeypatch.setenv("CLIPSEARCH_HOME", str(reference_home))
    index_json(folder)
    want = _snapshot(reference_home)
    want_hits = [h["path"] for h in query_json("--image", folder / "img007.jpg", "-k", "5")]

    home = tmp_path / "killed"
    rng = random.Random(1234)
    for _trial in range(TRIALS):
        proc = _start(folder, home)
        time.sleep(rng.uniform(0.2, 4.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        proc.communicate()
        if (home / "vectors.faiss").exists() and rng.random() < 0.3:
            # Damage the cache as a crash mid-write might; the catalog must still be whole.
            (home / "vectors.faiss").write_bytes(b"CLIPSIDX" + os.urandom(64))

    monkeypatch.setenv("CLIPSEARCH_HOME", str(home))
    index_json(folder)  # the run after the crashes completes
    got = _snapshot(home)
    _assert_same_store(got, want)
    rows = catalog_rows(home)
    assert len({r["path"] for r in rows.values()}) == len(rows)  # no duplicates
    status = status_json()
    assert status["vectors"] == status["images"] == PHOTOS and status["failed"] == 1
    assert [h["path"] for h in query_json("--image", folder / "img007.jpg", "-k", "5")] == want_hits


def _hold_write_lock_once_bound(proc: subprocess.Popen, db: Path) -> sqlite3.Connection:
    """The catalog's write lock, taken once the run has bound its model (so it is mid-run).

    Checked while holding the lock, so the run cannot move on between the check and the hold:
    its next write then waits for the lock (SQLite's busy timeout), and it cannot finish.
    """
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if db.exists():
            con = sqlite3.connect(db, timeout=30, isolation_level=None)
            try:
                con.execute("BEGIN IMMEDIATE")
                if con.execute("SELECT 1 FROM store_meta WHERE key = 'model'").fetchone():
                    return con
                con.execute("ROLLBACK")
            except sqlite3.OperationalError:  # no tables yet
                pass
            con.close()
        time.sleep(0.005)
    raise AssertionError(f"the run never bound its model (exit {proc.poll()})")


def test_ctrl_c_stops_cleanly_with_a_resume_message(tmp_path, monkeypatch):
    folder = tmp_path / "photos"
    make_photos(folder, PHOTOS, seed=4)
    home = tmp_path / "home"
    proc = _start(folder, home)
    con = _hold_write_lock_once_bound(proc, home / "catalog.db")
    try:
        (images,) = con.execute("SELECT count(*) FROM images").fetchone()
        assert images < PHOTOS, "the run must still have batches to write"
        proc.send_signal(signal.SIGINT)
        time.sleep(0.5)  # the run is waiting for the lock: the interrupt lands mid-run
    finally:
        con.execute("ROLLBACK")
        con.close()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "resume by running the same command" in err
    assert "Traceback" not in err
    monkeypatch.setenv("CLIPSEARCH_HOME", str(home))
    done_before = len(catalog_rows(home))
    summary = index_json(folder)
    assert summary["new"] == PHOTOS - done_before
    assert status_json()["images"] == PHOTOS
