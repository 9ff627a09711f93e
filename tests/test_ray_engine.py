"""`clipsearch index --engine ray` on a real local Ray cluster (2 CPUs, started once per module).

The Ray engine must write what the local engine writes: same rows, same vectors, same answers,
on SQLite and PostgreSQL; a second run changes nothing; a model worker killed mid-run is
restarted and no row is lost or doubled; path lists (text, CSV, Parquet; local paths and
fsspec URLs) are sources like folders.
"""

from __future__ import annotations

import csv
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import (
    MODEL,
    catalog_rows,
    index_json,
    make_photos,
    ok,
    pattern_image,
    query_json,
    reset_postgres,
    run_cli,
    save_image,
)

ray = pytest.importorskip("ray")

RAY = ("--engine", "ray", "--batch-size", "4")
# Columns that may differ between two correct runs: row ids, write times, the sequence numbers.
_RUN_COLUMNS = {"id", "indexed_at", "vec_seq"}


@pytest.fixture(scope="module", autouse=True)
def ray_cluster():
    """One small local cluster for the module: starting Ray costs seconds, so tests share it."""
    ray.init(
        num_cpus=2,
        object_store_memory=200 * 2**20,
        include_dashboard=False,
        logging_level=logging.WARNING,
        log_to_driver=False,
    )
    yield
    ray.shutdown()


def _comparable(rows: dict[str, dict]) -> dict[str, dict]:
    return {path: {k: v for k, v in row.items() if k not in _RUN_COLUMNS} for path, row in rows.items()}


def _fresh_store(backend: str, home: Path) -> None:
    if backend.startswith("postgresql"):
        reset_postgres(backend)
    else:
        for name in ("catalog.db", "catalog.db-wal", "catalog.db-shm", "vectors.faiss"):
            (home / name).unlink(missing_ok=True)


def test_same_rows_vectors_and_answers_as_the_local_engine(backend, photos, home):
    (photos / "broken.jpg").write_bytes(b"not a jpeg at all")
    local = index_json(photos)
    local_rows = catalog_rows(home)
    local_hits = query_json("a photo", "-k", "10")
    _fresh_store(backend, home)

    remote = index_json(photos, *RAY)
    rows = catalog_rows(home)
    for key in ("new", "updated", "moved", "removed", "unchanged", "failed", "failures"):
        assert remote[key] == local[key], key
    assert remote["failed"] == 1 and "broken.jpg" in remote["failures"][0]["path"]
    # Same rows, column for column, vectors to the bit: both engines embed in the same fixed-shape calls.
    assert _comparable(rows) == _comparable(local_rows)
    hits = query_json("a photo", "-k", "10")
    assert [h["path"] for h in hits] == [h["path"] for h in local_hits]

    again = index_json(photos, *RAY)
    # Failed files are unchanged files too: they are read again only once they change.
    assert (again["new"], again["updated"], again["unchanged"], again["failed"]) == (0, 0, len(rows), 0)
    assert _comparable(catalog_rows(home)) == _comparable(rows)


def test_moves_deletions_and_failures_follow_the_local_semantics(photos, home):
    index_json(photos)  # indexed by the local engine: the engines share one store format
    (photos / "img000.jpg").rename(photos / "renamed.jpg")
    (photos / "img001.jpg").unlink()
    (photos / "img003.jpg").write_bytes(b"\xff\xd8 truncated")
    before = catalog_rows(home)

    summary = index_json(photos, *RAY)
    assert (summary["moved"], summary["removed"], summary["updated"], summary["failed"]) == (1, 1, 0, 1)
    assert summary["failures"][0]["path"].endswith("img003.jpg")
    rows = catalog_rows(home)
    moved = rows[str(photos.resolve() / "renamed.jpg")]
    assert moved["id"] == before[str(photos.resolve() / "img000.jpg")]["id"]  # kept its row and vector
    assert moved["embedding"] == before[str(photos.resolve() / "img000.jpg")]["embedding"]
    assert str(photos.resolve() / "img001.jpg") not in rows


def test_path_lists_local_and_fsspec_urls(tmp_path, home):
    import pyarrow as pa
    import pyarrow.parquet as pq

    images = make_photos(tmp_path / "pool", 6)
    listing = tmp_path / "lists" / "batch.csv"
    listing.parent.mkdir()
    with listing.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "caption"])
        writer.writerow([os.path.relpath(images[0], listing.parent), "relative to the list"])
        writer.writerow([str(images[1]), "absolute"])
        writer.writerow([f"local://{images[2]}", "an fsspec URL"])
        writer.writerow([f"local://{tmp_path / 'pool' / 'gone.jpg'}", "a missing object"])
    summary = index_json(listing, *RAY)
    assert (summary["new"], summary["failed"]) == (3, 1)
    assert "gone.jpg" in summary["failures"][0]["path"]
    rows = catalog_rows(home)
    assert {r["root"] for r in rows.values()} == {str(listing)}
    url_row = rows[f"local://{images[2]}"]
    assert url_row["status"] == "ok" and url_row["embedding"]

    pq.write_table(pa.table({"path": [str(images[1]), str(images[3])]}), tmp_path / "lists" / "more.parquet")
    summary = index_json(tmp_path / "lists" / "more.parquet", *RAY)
    # Listed elsewhere already: not new. Rows of the CSV stay (another list's root).
    assert (summary["new"], summary["unchanged"], summary["removed"]) == (1, 1, 0)

    listing.write_text(f"path\n{images[1]}\n")
    summary = index_json(listing, *RAY)
    assert (summary["unchanged"], summary["removed"]) == (1, 3)  # the CSV's other rows left with it


def test_text_lists_and_bad_sources(tmp_path, home):
    from clipsearch.indexer.ray_sources import read_path_list

    listing = tmp_path / "batch.txt"
    listing.write_text("# a comment\n/abs/a.jpg\n\nrel/b.jpg\n/abs/a.jpg\ns3://bucket/c.jpg\n")
    assert read_path_list(str(listing)) == ["/abs/a.jpg", str(tmp_path / "rel" / "b.jpg"), "s3://bucket/c.jpg"]

    (tmp_path / "nopath.csv").write_text("file\nx.jpg\n")
    result = run_cli("index", tmp_path / "nopath.csv", "--model", MODEL, *RAY)
    assert result.exit_code == 1 and "needs a header row with a `path` column" in result.stderr
    result = run_cli("index", "s3://bucket/photos", "--model", MODEL, *RAY)
    assert result.exit_code == 1 and "must be a path list" in result.stderr
    result = run_cli("index", tmp_path / "missing.parquet", "--model", MODEL, *RAY)
    assert result.exit_code == 1 and "no such path list" in result.stderr


def _raylet_children(pattern: str) -> list:
    """Processes of *this* test session's Ray cluster whose command line contains `pattern`."""
    import psutil
    from ray._private import worker

    raylet = worker._global_node.all_processes["raylet"][0].process.pid
    found = []
    for proc in psutil.Process(raylet).children(recursive=True):
        try:
            if proc.status() != psutil.STATUS_ZOMBIE and pattern in " ".join(proc.cmdline()):
                found.append(proc)
        except psutil.NoSuchProcess:
            pass  # ended while we looked
    return found


def test_a_killed_model_worker_is_restarted_and_no_row_is_lost_or_doubled(tmp_path, home):
    from clipsearch.indexer.ray_engine import RayOptions, run_index_ray
    from clipsearch.settings import Settings
    from clipsearch.store import Store

    folder = tmp_path / "photos"
    make_photos(folder, 40)
    store = Store.open(Settings.from_env())
    killed: list[int] = []
    seen_after: set[int] = set()
    stop = threading.Event()

    def kill_first_worker() -> None:
        # SIGKILL the model worker as soon as it exists, before it has produced anything: every
        # row must then come through the worker Ray restarts and the tasks it retries.
        while not stop.is_set() and not killed:
            for proc in _raylet_children("EmbedActor"):
                os.kill(proc.pid, signal.SIGKILL)
                killed.append(proc.pid)
            time.sleep(0.05)

    def on_progress(_n: int) -> None:
        seen_after.update(p.pid for p in _raylet_children("EmbedActor"))

    def load():
        encoder = store.load_encoder(MODEL, "cpu")
        store.bind(encoder)
        return encoder

    killer = threading.Thread(target=kill_first_worker, daemon=True)
    killer.start()
    try:
        summary = run_index_ray(
            store.catalog, load, [str(folder)], store.settings, RayOptions(batch_size=2), on_progress=on_progress
        )
    finally:
        stop.set()
        killer.join()
        store.close()
    assert killed, "no model worker was found to kill"
    assert seen_after - set(killed), "the model worker was not restarted"
    assert (summary.new, summary.failed) == (40, 0)
    rows = catalog_rows(home)
    assert len(rows) == 40 and all(r["embedding"] for r in rows.values())
    assert len({r["path"] for r in rows.values()}) == 40

    # The same collection through the local engine gives the same vectors, to the bit.
    local_home = tmp_path / "local-home"
    ok(run_cli("--home", local_home, "index", folder, "--model", MODEL))
    local_rows = catalog_rows(local_home)
    assert {p: r["embedding"] for p, r in rows.items()} == {p: r["embedding"] for p, r in local_rows.items()}


def test_without_ray_the_message_says_how_to_install_it(tmp_path):
    folder = tmp_path / "photos"
    save_image(pattern_image(1), folder / "a.jpg")
    code = (
        "import sys; sys.modules['ray'] = None; from clipsearch.cli import main; "
        f"sys.argv = ['clipsearch', 'index', {str(folder)!r}, '--engine', 'ray']; main()"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: --engine ray needs Ray") and "pip install 'clipsearch[ray]'" in lines[0]


def test_sharded_index_build_serves_like_a_local_build_and_catches_up(home):
    from clipsearch.catalog import ImageRecord
    from clipsearch.indexer import ray_faiss
    from clipsearch.settings import Settings
    from clipsearch.store import Store
    from clipsearch.vectors.sync import build_index, open_index

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(40, 64))
    vectors = centres[rng.integers(0, 40, 3000)] + 0.3 * rng.normal(size=(3000, 64))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    store = Store.open(Settings.from_env())
    cat = store.catalog
    cat.facts.bind_model(MODEL, MODEL, 64)
    records = [ImageRecord(f"/s/{i:05d}.jpg", "/s", 1, i, f"{i:064x}", "ok", vector=v) for i, v in enumerate(vectors)]
    cat.writes.write(records, {}, model_id=MODEL)
    try:
        sharded = ray_faiss.build_on_ray(cat, store.settings.catalog_url, MODEL, 500, shards=3, min_vectors=0)
        local = build_index(cat, MODEL, 500)
        assert sharded.header.kind == "ivfpq" and sharded.header.factory == local.header.factory
        assert (sharded.ntotal, sharded.header.watermark) == (3000, cat.facts.current_seq())
        # Self-queries: the approximate top-10 of each holds about as many exact neighbours either way.
        exact = np.argsort(-(vectors[:200] @ vectors.T), axis=1)[:, :10] + 1  # catalog ids start at 1
        hits = {name: index.search(vectors[:200], 10)[1] for name, index in (("sharded", sharded), ("local", local))}
        recall = {
            k: np.mean([len(set(a) & set(b)) / 10 for a, b in zip(v, exact, strict=True)]) for k, v in hits.items()
        }
        assert recall["sharded"] >= recall["local"] - 0.05 and recall["sharded"] > 0.3, recall

        sharded.save(store.settings.index_path)  # then the watermark logic takes over, unchanged
        more = [
            ImageRecord(f"/s/new{i}.jpg", "/s", 1, i, f"{10**6 + i:064x}", "ok", vector=v)
            for i, v in enumerate(vectors[:5])
        ]
        cat.writes.write(more, {}, model_id=MODEL)
        index, _notes = open_index(cat, store.settings.index_path, MODEL, 500)
        assert (index.ntotal, index.header.watermark) == (3005, cat.facts.current_seq())
    finally:
        store.close()
