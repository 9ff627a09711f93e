"""`clipsearch reembed`: a second model's vectors beside the first, the switch, resume after a kill, --drop.

Every command runs as the real CLI in a subprocess, on SQLite and (with
CLIPSEARCH_TEST_DATABASE_URL) PostgreSQL. The store starts on `random:cs-tiny` (dim 64) and moves
to the bundled `shapes-mini` (dim 128), so a query answered with the wrong generation fails loudly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import sqlalchemy
from conftest import MODEL, _select, catalog_rows, index_argv, make_photos

from clipsearch.models import model_id_for

NEW = "shapes-mini"
NEW_ID = model_id_for(NEW)


def cli(home: Path, *args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "CLIPSEARCH_HOME": str(home), **(env or {})}
    argv = [sys.executable, "-m", "clipsearch", *args]
    done = subprocess.run(argv, env=full_env, capture_output=True, text=True, timeout=300)
    if check:
        assert done.returncode == 0, f"{args}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def index(home: Path, folder: Path) -> None:
    full_env = {**os.environ, "CLIPSEARCH_HOME": str(home)}
    done = subprocess.run(index_argv(folder), env=full_env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def status(home: Path) -> dict:
    return json.loads(cli(home, "status", "--json").stdout)


def query(home: Path, text: str = "a red square") -> list[tuple[str, float]]:
    out = json.loads(cli(home, "query", text, "-k", "5", "--json").stdout)
    return [(r["path"], round(r["score"], 4)) for r in out["results"]]


def vectors(home: Path) -> dict[str, tuple[str, bytes | None, str | None]]:
    return {p: (r["status"], r["embedding"], r["model_id"]) for p, r in catalog_rows(home).items()}


def reference_store(home: Path, photos: Path, model: str, then: str | None = None) -> dict:
    """A separate SQLite store of `photos` (whatever the backend under test): its rows by path."""
    sqlite = {"DATABASE_URL": ""}
    cli(home, "index", str(photos), "--model", model, env=sqlite)
    if then:
        cli(home, "reembed", "--model", then, env=sqlite)
    engine = sqlalchemy.create_engine(f"sqlite:///{home / 'catalog.db'}")
    with engine.connect() as con:
        rows = con.execute(sqlalchemy.text("SELECT path, status, embedding, model_id FROM images")).all()
    engine.dispose()
    return {path: (status, blob, model_id) for path, status, blob, model_id in rows}


def query_of(home: Path, env: dict | None = None) -> list[tuple[str, float]]:
    out = json.loads(cli(home, "query", "a red square", "-k", "5", "--json", env=env).stdout)
    return [(r["path"], round(r["score"], 4)) for r in out["results"]]


def test_reembed_switches_queries_to_the_new_model_and_status_shows_both(backend, home, tmp_path):
    photos = tmp_path / "photos"
    make_photos(photos, 10)
    index(home, photos)
    assert cli(home, "index", str(photos), "--model", NEW, check=False).stderr.count("clipsearch reembed --model") == 1
    gone = photos / "img004.jpg"
    gone.unlink()  # still in the catalog: the new model cannot read it, and says why

    done = cli(home, "reembed", "--model", NEW, "--json")
    summary = json.loads(done.stdout)
    assert (summary["embedded"], summary["failed"], summary["model"]) == (9, 1, NEW_ID)
    assert summary["failures"][0]["path"] == str(gone) and "cannot read" in summary["failures"][0]["reason"]

    info = status(home)
    assert (info["model"], info["dim"], info["images"], info["failed"], info["vectors"]) == (NEW_ID, 128, 9, 1, 9)
    gens = [(g["model"], g["state"], g["embedded"], g["total"]) for g in info["generations"]]
    assert gens == [(NEW_ID, "active", 9, 9), (MODEL, "retired", 10, 9)]
    assert "generation   random:cs-tiny  retired" in cli(home, "status").stdout
    rows = catalog_rows(home)
    assert rows[str(gone)]["status"] == "failed" and "cannot read" in rows[str(gone)]["error"]

    # The same as a store indexed with the new model from the start: vectors and query results.
    fresh = tmp_path / "fresh-home"
    want = reference_store(fresh, photos, NEW)
    for path, (_status, blob, _model) in want.items():
        assert rows[path]["embedding"] == blob, path
    assert query(home) == query_of(fresh, {"DATABASE_URL": ""})


def test_queries_keep_the_old_model_during_a_reembed_and_a_killed_run_resumes_to_the_same_store(
    backend, home, tmp_path
):
    photos = tmp_path / "photos"
    make_photos(photos, 12)
    index(home, photos)
    before = query(home)

    killed = cli(
        home,
        "reembed",
        "--model",
        NEW,
        "--batch-size",
        "4",
        "--workers",
        "1",
        env={"CLIPSEARCH_FAULT": "reembed-batch-committed:2"},
        check=False,
    )
    assert killed.returncode == -9
    info = status(home)
    assert info["model"] == MODEL and info["dim"] == 64
    gens = [(g["model"], g["state"], g["embedded"], g["total"]) for g in info["generations"]]
    assert gens == [(MODEL, "active", 12, 12), (NEW_ID, "building", 8, 12)]
    assert query(home) == before  # queries still answer with the old model's vectors
    refused = cli(home, "reembed", "--model", "random:cs-shapes-rn16", check=False)
    assert refused.returncode == 1 and f"a reembed to {NEW_ID} is under way (8 of 12 images)" in refused.stderr

    # An index run meanwhile (old model): its new image is embedded by the resumed reembed too.
    make_photos(photos, 1, seed=7, prefix="late")
    index(home, photos)
    assert status(home)["generations"][1]["total"] == 13
    resumed = json.loads(cli(home, "reembed", "--model", NEW, "--json").stdout)
    assert (resumed["embedded"], resumed["failed"]) == (5, 0)

    # The same vectors as an uninterrupted reembed of the same photos.
    want = reference_store(tmp_path / "reference", photos, MODEL, then=NEW)
    got = vectors(home)
    assert got.keys() == want.keys() and len(got) == 13
    for path, row in want.items():
        assert got[path] == row, path
    assert all(model == NEW_ID for _status, _blob, model in got.values())


def test_drop_frees_the_old_generation_rows_and_index_file(backend, home, tmp_path):
    photos = tmp_path / "photos"
    make_photos(photos, 6)
    index(home, photos)
    cli(home, "tag", "--labels", "square,circle")
    # Killed right after the switch committed, before moving the index files and re-tagging.
    killed = cli(home, "reembed", "--model", NEW, env={"CLIPSEARCH_FAULT": "reembed-switched"}, check=False)
    assert killed.returncode == -9 and (home / "vectors.next.faiss").is_file()
    assert status(home)["model"] == NEW_ID  # the switch is done; opening the index moved the files
    assert not (home / "vectors.next.faiss").exists()
    assert "re-tagged 6 images" in cli(home, "reembed", "--model", NEW).stdout
    # The labels were embedded again by the new model: the next index run tags its new image.
    make_photos(photos, 1, seed=5, prefix="late")
    assert "tagged: 1 new" in cli(home, "index", str(photos)).stdout
    assert json.loads(cli(home, "tags", "--json").stdout)["images"] == 7
    old_file = home / "vectors.gen1.faiss"
    assert old_file.is_file() and (home / "vectors.faiss").is_file()
    assert _select(home, "SELECT COUNT(*) AS n FROM generation_vectors")[0]["n"] == 6

    refused = cli(home, "reembed", "--drop", NEW, check=False)
    assert refused.returncode == 1 and "is the store's active model" in refused.stderr
    assert (
        "dropped the retired generation of random:cs-tiny (6 vectors)" in cli(home, "reembed", "--drop", MODEL).stdout
    )
    assert _select(home, "SELECT COUNT(*) AS n FROM generation_vectors")[0]["n"] == 0
    assert not old_file.exists()
    assert [g["model"] for g in status(home)["generations"]] == [NEW_ID]
    assert len(query(home)) == 5 and status(home)["images"] == 7
    missing = cli(home, "reembed", "--drop", MODEL, check=False)
    assert missing.returncode == 1 and "has no generation of random:cs-tiny" in missing.stderr


def test_the_model_id_status_prints_is_accepted_by_model_and_a_wrong_hash_is_refused(home, tmp_path):
    photos = tmp_path / "photos"
    make_photos(photos, 4)
    shown = cli(home, "index", str(photos), "--model", NEW_ID)
    assert "indexed: 4 new" in shown.stdout
    assert status(home)["model"] == NEW_ID
    assert len(json.loads(cli(home, "query", "a circle", "--model", NEW_ID, "--json").stdout)["results"]) == 4
    wrong = NEW_ID[:-1] + ("0" if NEW_ID[-1] != "0" else "1")
    refused = cli(home, "query", "a circle", "--model", wrong, check=False)
    assert refused.returncode == 1
    assert refused.stderr.strip().count("\n") == 0
    assert f"the weights found for {NEW} are {NEW_ID}, not hash {wrong.rsplit('@', 1)[1]}" in refused.stderr


def test_a_running_service_answers_with_the_old_model_until_the_switch_then_with_the_new(backend, home, tmp_path):
    """The one search service behind the UI and the HTTP API notices the switch on its next search."""
    from clipsearch.api.engine import ApiEngine
    from clipsearch.search import SearchRequest
    from clipsearch.settings import Settings
    from clipsearch.store import Store

    photos = tmp_path / "photos"
    make_photos(photos, 6)
    index(home, photos)
    store = Store.open(Settings.from_env())
    api = ApiEngine(store)
    try:
        first = api.search(SearchRequest(text="a red square", k=3))
        assert api.service().encoder.model_id == MODEL and api.status()["model"] == MODEL
        cli(home, "reembed", "--model", NEW, "--batch-size", "2", "--workers", "1")
        after = api.search(SearchRequest(text="a red square", k=3))
        assert api.service().encoder.model_id == NEW_ID and api.service().index.header.model_id == NEW_ID
        assert [h.path for h in after.hits] == [p for p, _ in query(home)][:3]
        assert [round(h.score, 4) for h in after.hits] != [round(h.score, 4) for h in first.hits]
        info = api.status()
        assert (info["model"], info["dim"], info["vectors"]) == (NEW_ID, 128, 6)
    finally:
        store.close()


def test_a_store_from_revision_0005_keeps_every_vector_as_generation_one(backend):
    """The migration: existing vectors become the active generation in place, and a switch keeps them."""
    from sqlalchemy import text

    from clipsearch.catalog import Catalog, migrate
    from clipsearch.catalog.engine import make_engine
    from clipsearch.catalog.generations import GenerationResult

    engine = make_engine(backend)
    migrate.upgrade(engine, "0005")
    blobs = [np.random.default_rng(i).standard_normal(16).astype(np.float16).tobytes() for i in range(3)]
    with engine.begin() as con:
        con.execute(
            text("INSERT INTO store_meta (key, value) VALUES ('model', :v)"),
            {"v": '{"model_id": "m:old", "spec": "m:old", "dim": 16}'},
        )
        con.execute(text("UPDATE store_meta SET value = '3' WHERE key = 'vector_seq'"))
        for i, blob in enumerate(blobs, start=1):
            con.execute(
                text(
                    "INSERT INTO images (path, root, content_hash, size, mtime_ns, status, embedding, model_id, "
                    "vec_seq) VALUES (:p, '/p', :h, 10, 5, 'ok', :b, 'm:old', :i)"
                ),
                {"p": f"/p/{i}.jpg", "h": f"h{i}", "b": blob, "i": i},
            )
    engine.dispose()
    catalog = Catalog.open(backend)
    try:
        [gen] = catalog.generations.all()
        assert (gen.id, gen.model_id, gen.state, gen.embedded, gen.total, gen.dim) == (1, "m:old", "active", 3, 3, 16)
        ids, vectors = catalog.vectors.fetch([1, 2, 3])
        assert vectors[np.argsort(ids)].astype(np.float16).tobytes() == b"".join(blobs)
        # A second generation takes id 2 (PostgreSQL's serial was moved past the migrated row).
        new = catalog.generations.start("m:new", "m:new", 8)
        assert new.id == 2 and (new.embedded, new.total) == (0, 3)
        pending = catalog.generations.pending(new.id)
        catalog.generations.write(
            new.id, [GenerationResult(p.id, p.vec_seq, np.full(8, 0.5, dtype=np.float32)) for p in pending]
        )
        assert catalog.generations.switch(new.id) == 4
        assert catalog.facts.model().model_id == "m:new" and catalog.facts.dim() == 8
        states = {g.model_id: (g.state, g.embedded) for g in catalog.generations.all()}
        assert states == {"m:new": ("active", 3), "m:old": ("retired", 3)}
        with catalog.engine.connect() as con:
            rows = con.execute(text("SELECT image_id, embedding FROM generation_vectors WHERE generation_id = 1"))
            kept = {image_id: blob for image_id, blob in rows}
        assert [bytes(kept[i]) for i in (1, 2, 3)] == blobs  # the old vectors, bit for bit
    finally:
        catalog.close()


def test_what_an_index_run_commits_before_the_switch_is_embedded_by_the_new_model_too(backend, home, tmp_path):
    """The switch waits for a running index run and first embeds what it added."""
    import time

    from clipsearch.catalog import Catalog, FileStatus, ImageRecord
    from clipsearch.imaging import content_hash
    from clipsearch.lock import index_lock
    from clipsearch.settings import Settings

    photos = tmp_path / "photos"
    make_photos(photos, 5)
    index(home, photos)
    settings = Settings.from_env()
    catalog = Catalog.open(settings.catalog_url)
    try:
        with index_lock(catalog.engine, settings.lock_path, [str(photos)]):  # an index run, in progress
            full_env = {**os.environ, "CLIPSEARCH_HOME": str(home)}
            argv = [sys.executable, "-m", "clipsearch", "reembed", "--model", NEW, "--json"]
            run = subprocess.Popen(argv, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            deadline = time.monotonic() + 120
            while not any(g.state == "building" and g.embedded == 5 for g in catalog.generations.all()):
                assert run.poll() is None and time.monotonic() < deadline, run.communicate()
                time.sleep(0.2)
            time.sleep(1.0)
            assert run.poll() is None and catalog.facts.model().model_id == MODEL  # waiting for the lock
            # The index run commits one more image (with an old-model vector), then ends.
            late = make_photos(photos, 1, seed=9, prefix="late")[0]
            vector = np.random.default_rng(0).standard_normal(64).astype(np.float32)
            record = ImageRecord(
                str(late),
                str(photos),
                late.stat().st_size,
                late.stat().st_mtime_ns,
                content_hash(late.read_bytes()),
                FileStatus.OK,
                vector=vector / np.linalg.norm(vector),
            )
            catalog.writes.write([record], {}, model_id=MODEL)
        out, err = run.communicate(timeout=120)
        assert run.returncode == 0, err
        assert (json.loads(out)["embedded"], json.loads(out)["failed"]) == (6, 0)
    finally:
        catalog.close()
    rows = catalog_rows(home)
    assert rows[str(late)]["status"] == "ok" and rows[str(late)]["model_id"] == NEW_ID
    assert len(rows[str(late)]["embedding"]) == 128 * 2  # float16 of the new model's dim
    assert status(home)["vectors"] == 6
