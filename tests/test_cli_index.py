"""`clipsearch index` through the real CLI on real SQLite stores and real FAISS."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import (
    MODEL,
    PHOTOS_COUNT,
    catalog_rows,
    index_json,
    make_photos,
    ok,
    pattern_image,
    query_json,
    run_cli,
    save_image,
    status_json,
    tombstone_ids,
)
from sqlalchemy import create_engine

from clipsearch.lock import index_lock
from clipsearch.settings import Settings

# Every test runs on SQLite and, in CI, again on PostgreSQL (see the `backend` fixture).
pytestmark = pytest.mark.usefixtures("backend")


def _one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("warning:")]
    assert len(lines) == 1, f"expected a one-line message, got:\n{text}"
    return lines[0]


def test_index_summary_line_and_catalog_rows(photos, home):
    result = ok(run_cli("index", photos, "--model", MODEL))
    lines = [line for line in result.stdout.splitlines() if line.startswith("indexed:")]
    assert len(lines) == 1
    line = lines[0]
    for part in (f"{PHOTOS_COUNT} new", "0 updated", "0 moved", "0 removed", "0 unchanged", "0 failed"):
        assert part in line, line
    assert "random weights" in result.stderr

    rows = catalog_rows(home)
    assert len(rows) == PHOTOS_COUNT
    assert {r["status"] for r in rows.values()} == {"ok"}
    assert all(r["embedding"] is not None and len(r["embedding"]) == 64 * 2 for r in rows.values())
    assert {r["model_id"] for r in rows.values()} == {MODEL}
    assert all(r["path"].startswith(str(photos.resolve())) for r in rows.values())

    # EXIF: orientation 6 swaps width/height; capture time and camera are recorded.
    rotated = rows[str(photos.resolve() / "exif" / "rotated.jpg")]
    assert (rotated["width"], rotated["height"], rotated["orientation"]) == (48, 64, 6)
    assert rotated["taken_at"].startswith("2021-06-15 10:30:00")
    assert rotated["camera"] == "Canon EOS 5D"  # make is not repeated when the model names it
    upright = rows[str(photos.resolve() / "exif" / "upright.jpg")]
    assert (upright["width"], upright["height"]) == (64, 48)
    assert upright["camera"] == "FUJIFILM X-T3"
    assert upright["taken_at"].startswith("2019-12-31 23:59:58")

    status = status_json()
    assert (status["images"], status["failed"], status["vectors"]) == (PHOTOS_COUNT, 0, PHOTOS_COUNT)


def test_corrupt_files_are_reported_and_the_rest_indexed(tmp_path, home):
    folder = tmp_path / "photos"
    good = make_photos(folder, 6)
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.jpg").write_text("this is not a picture\n")
    big = save_image(pattern_image(77, size=(256, 192), grid=(32, 24)), tmp_path / "big.jpg")
    data = big.read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: int(len(data) * 0.6)])
    (folder / "readme.txt").write_text("not an image extension: never looked at")

    result = ok(run_cli("index", folder, "--model", MODEL))
    assert "6 new" in result.stdout and "3 failed" in result.stdout
    failed_lines = [
        line for line in result.stdout.splitlines() if "failed:" in line and line.strip().startswith("failed:")
    ]
    assert len(failed_lines) == 3
    for name in ("empty.jpg", "notes.jpg", "truncated.jpg"):
        assert any(name in line for line in failed_lines), failed_lines

    rows = catalog_rows(home)
    failed = {Path(p).name: r for p, r in rows.items() if r["status"] == "failed"}
    assert set(failed) == {"empty.jpg", "notes.jpg", "truncated.jpg"}
    assert "0 bytes" in failed["empty.jpg"]["error"]
    assert "not a recognised image" in failed["notes.jpg"]["error"]
    assert "truncated" in failed["truncated.jpg"]["error"]
    assert all(r["embedding"] is None for r in failed.values())
    assert {Path(p).name for p, r in rows.items() if r["status"] == "ok"} == {p.name for p in good}

    status = status_json()
    assert (status["images"], status["failed"], status["vectors"]) == (6, 3, 6)
    listed = json.loads(ok(run_cli("status", "--json", "--failures")).stdout)["failures"]
    failures = {Path(f["path"]).name: f["reason"] for f in listed}
    assert set(failures) == {"empty.jpg", "notes.jpg", "truncated.jpg"}

    # A failed file that is fixed is picked up by the next run.
    save_image(pattern_image(4242), folder / "notes.jpg")
    summary = index_json(folder)
    assert (summary["updated"], summary["embedded"], summary["failed"]) == (1, 1, 0)
    assert catalog_rows(home)[str((folder / "notes.jpg").resolve())]["status"] == "ok"
    assert status_json()["vectors"] == 7


def test_rerun_on_unchanged_folder_embeds_nothing(photos, home):
    first = index_json(photos)
    assert (first["new"], first["embedded"], first["failed"]) == (PHOTOS_COUNT, PHOTOS_COUNT, 0)
    before = catalog_rows(home)

    second = index_json(photos)
    assert second["embedded"] == 0
    assert (second["new"], second["updated"], second["moved"], second["removed"], second["failed"]) == (0, 0, 0, 0, 0)
    assert second["unchanged"] == PHOTOS_COUNT
    after = catalog_rows(home)
    assert {p: r["vec_seq"] for p, r in after.items()} == {p: r["vec_seq"] for p, r in before.items()}


def test_rename_and_move_keep_id_and_vector(photos, home):
    index_json(photos)
    before = catalog_rows(home)
    old_a = photos / "img001.jpg"
    old_b = photos / "img004.jpg"
    new_a = photos / "renamed.jpg"
    new_b = photos / "deeper" / "moved" / "img004.jpg"
    new_b.parent.mkdir(parents=True)
    os.rename(old_a, new_a)
    shutil.move(old_b, new_b)

    summary = index_json(photos)
    assert summary["moved"] == 2
    assert (summary["new"], summary["removed"], summary["updated"], summary["embedded"]) == (0, 0, 0, 0)
    assert summary["unchanged"] == PHOTOS_COUNT - 2

    after = catalog_rows(home)
    assert len(after) == PHOTOS_COUNT
    for old, new in ((old_a, new_a), (old_b, new_b)):
        was, now = before[str(old.resolve())], after[str(new.resolve())]
        assert now["id"] == was["id"]
        assert now["embedding"] == was["embedding"]
        assert now["vec_seq"] == was["vec_seq"]
        assert str(old.resolve()) not in after
    assert tombstone_ids(home) == []

    hits = query_json("--image", new_a, "-k", "3")
    assert hits[0]["id"] == before[str(old_a.resolve())]["id"]
    assert hits[0]["path"] == str(new_a.resolve())
    assert status_json()["vectors"] == PHOTOS_COUNT


def test_delete_leaves_catalog_and_index(photos, home):
    index_json(photos)
    gone = photos / "img002.png"
    gone_id = catalog_rows(home)[str(gone.resolve())]["id"]
    query_json("--image", gone, "-k", "1")  # the index file now exists and is current
    gone_copy = gone.with_name("kept-for-query.bin")
    shutil.copy(gone, gone_copy)
    gone.unlink()

    summary = index_json(photos)
    assert summary["removed"] == 1
    assert (summary["new"], summary["embedded"], summary["unchanged"]) == (0, 0, PHOTOS_COUNT - 1)

    rows = catalog_rows(home)
    assert str(gone.resolve()) not in rows
    assert gone_id not in {r["id"] for r in rows.values()}
    assert gone_id in tombstone_ids(home)
    status = status_json()
    assert (status["images"], status["vectors"]) == (PHOTOS_COUNT - 1, PHOTOS_COUNT - 1)

    hits = query_json("--image", gone_copy, "-k", "100")
    assert len(hits) == PHOTOS_COUNT - 1
    assert gone_id not in {h["id"] for h in hits}
    assert str(gone.resolve()) not in {h["path"] for h in hits}

    # A new file after the delete never reuses the deleted id.
    save_image(pattern_image(9999), photos / "newcomer.jpg")
    index_json(photos)
    new_id = catalog_rows(home)[str((photos / "newcomer.jpg").resolve())]["id"]
    assert new_id > max(gone_id, *(r["id"] for r in rows.values()))
    hits = query_json("--image", photos / "newcomer.jpg", "-k", "1")
    assert hits[0]["id"] == new_id


def test_modified_file_is_re_embedded(photos, home):
    index_json(photos)
    target = photos / "img003.jpg"
    before = catalog_rows(home)[str(target.resolve())]
    save_image(pattern_image(31337, size=(80, 60)), target)

    summary = index_json(photos)
    assert (summary["updated"], summary["embedded"]) == (1, 1)
    assert (summary["new"], summary["moved"], summary["removed"]) == (0, 0, 0)
    assert summary["unchanged"] == PHOTOS_COUNT - 1

    after = catalog_rows(home)[str(target.resolve())]
    assert after["id"] == before["id"]
    assert after["content_hash"] != before["content_hash"]
    assert after["embedding"] != before["embedding"]
    assert (after["width"], after["height"]) == (80, 60)
    assert after["vec_seq"] > before["vec_seq"]

    hits = query_json("--image", target, "-k", "2")
    assert hits[0]["id"] == before["id"] and hits[0]["score"] > 0.99
    assert (hits[0]["width"], hits[0]["height"]) == (80, 60)
    assert status_json()["vectors"] == PHOTOS_COUNT


def test_touched_file_is_unchanged(photos, home):
    index_json(photos)
    target = photos / "img005.png"
    before = catalog_rows(home)[str(target.resolve())]
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))

    summary = index_json(photos)
    assert summary["embedded"] == 0
    assert summary["unchanged"] == PHOTOS_COUNT
    assert (summary["updated"], summary["new"], summary["moved"], summary["removed"]) == (0, 0, 0, 0)
    after = catalog_rows(home)[str(target.resolve())]
    assert (after["id"], after["embedding"], after["vec_seq"]) == (before["id"], before["embedding"], before["vec_seq"])
    assert after["mtime_ns"] == target.stat().st_mtime_ns  # recorded, so the next run skips it by stat

    third = index_json(photos)
    assert (third["embedded"], third["unchanged"]) == (0, PHOTOS_COUNT)


def test_interrupted_run_keeps_finished_batches_and_resumes(tmp_path, home, monkeypatch):
    import clipsearch.indexer.batch

    folder = tmp_path / "photos"
    make_photos(folder, 12, seed=3)
    real_embed = clipsearch.indexer.batch.BatchWriter._embed
    calls = {"n": 0}

    def embed_then_interrupt(self):
        if self._decoded:
            calls["n"] += 1
            if calls["n"] == 3:
                raise KeyboardInterrupt
        return real_embed(self)

    monkeypatch.setattr(clipsearch.indexer.batch.BatchWriter, "_embed", embed_then_interrupt)
    result = run_cli("index", folder, "--model", MODEL, "--batch-size", "4")
    assert result.exit_code == 130
    assert "interrupted" in result.stderr and "running the same command again" in result.stderr
    rows = catalog_rows(home)
    assert len(rows) == 8 and all(r["status"] == "ok" and r["embedding"] for r in rows.values())

    monkeypatch.setattr(clipsearch.indexer.batch.BatchWriter, "_embed", real_embed)
    summary = index_json(folder, "--batch-size", "4")
    assert (summary["new"], summary["unchanged"], summary["embedded"]) == (4, 8, 4)
    assert len(catalog_rows(home)) == 12
    assert status_json()["vectors"] == 12


def test_two_roots_in_one_run(tmp_path, home):
    folder = tmp_path / "photos"
    make_photos(folder / "a", 4, seed=1)
    make_photos(folder / "b", 5, seed=2)
    first = index_json(folder / "a", "--batch-size", "2")
    assert first["new"] == 4
    second = index_json(folder / "a", folder / "b", "--batch-size", "3")
    assert (second["new"], second["unchanged"], second["embedded"]) == (5, 4, 5)
    third = index_json(folder)  # the parent folder: everything already known
    assert (third["new"], third["unchanged"], third["embedded"], third["removed"]) == (0, 9, 0, 0)
    assert status_json()["vectors"] == 9


def test_folders_differing_only_in_case_stay_apart(tmp_path, home):
    # SQLite's LIKE ignores ASCII case: a prefix match by LIKE made re-indexing /photos
    # sweep everything under /Photos as deleted.
    make_photos(tmp_path / "Photos", 3, seed=1)
    make_photos(tmp_path / "photos", 2, seed=2)
    assert index_json(tmp_path / "Photos")["new"] == 3
    assert index_json(tmp_path / "photos")["new"] == 2
    again = index_json(tmp_path / "photos")
    assert (again["unchanged"], again["removed"]) == (2, 0)
    assert status_json()["vectors"] == 5
    hits = query_json("a picture", "--folder", str(tmp_path / "Photos"), "-k", "10")
    assert len(hits) == 3 and all(h["path"].startswith(str(tmp_path / "Photos") + os.sep) for h in hits)


def test_wrong_model_is_refused(photos, home):
    index_json(photos)
    before = catalog_rows(home)
    result = run_cli("index", photos, "--model", "random:ViT-B-32")
    assert result.exit_code != 0
    message = _one_line(result.stderr)
    assert "random:cs-tiny" in message and "random:ViT-B-32" in message
    assert "--home" in message  # says how to proceed
    assert "clipsearch reembed --model random:ViT-B-32" in message  # or how to move the store to it
    assert catalog_rows(home) == before

    result = run_cli("query", "a dog", "--model", "random:ViT-B-32")
    assert result.exit_code != 0
    message = _one_line(result.stderr)
    assert "random:cs-tiny" in message and "random:ViT-B-32" in message
    assert status_json()["model"] == MODEL


def test_missing_path_is_a_one_line_error(tmp_path, home):
    missing = tmp_path / "no-such-folder"
    result = run_cli("index", missing, "--model", MODEL)
    assert result.exit_code != 0
    message = _one_line(result.stderr)
    assert message.startswith("error:") and "no-such-folder" in message
    assert "Traceback" not in result.stderr + result.stdout
    # A failed run does not bind the fresh store to a model.
    status = status_json()
    assert (status["model"], status["images"]) == (None, 0)


def test_index_lock_refuses_a_second_index_run(photos, home, backend):
    settings = Settings.from_env()
    assert settings.home == home.resolve()
    engine = create_engine(backend)
    with index_lock(engine, settings.lock_path, [str(photos.resolve())]):
        result = run_cli("index", photos, "--model", MODEL)
    engine.dispose()
    assert result.exit_code != 0
    message = _one_line(result.stderr)
    assert "another `clipsearch index`" in message and "wait" in message
    if backend.startswith("sqlite"):
        assert str(os.getpid()) in message
    assert catalog_rows(home) == {}
    # Released: the next run goes ahead.
    assert index_json(photos)["new"] == PHOTOS_COUNT


def test_index_single_file_and_global_home_option(tmp_path, photos):
    other = tmp_path / "other-home"
    result = ok(run_cli("--home", other, "index", photos / "img000.jpg", "--model", MODEL, "--json"))
    assert '"new": 1' in result.stdout
    rows = catalog_rows(other)
    assert list(rows) == [str((photos / "img000.jpg").resolve())]
    assert ok(run_cli("--home", other, "status", "--json")).stdout.count('"images": 1') == 1


def test_random_vit_b_32_end_to_end(tmp_path, home):
    """The model the issue's checker uses: index, query by example, status."""
    folder = tmp_path / "photos"
    make_photos(folder, 6, seed=5)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 nope")
    summary = index_json(folder, "--model", "random:ViT-B-32")
    assert (summary["new"], summary["failed"]) == (6, 1)
    hits = query_json("--image", folder / "img002.png", "-k", "3")
    assert hits[0]["path"] == str((folder / "img002.png").resolve())
    assert hits[0]["score"] > 0.99
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    status = status_json()
    assert (status["model"], status["dim"], status["images"], status["failed"], status["vectors"]) == (
        "random:ViT-B-32",
        512,
        6,
        1,
        6,
    )


def test_postgres_runs_on_separate_folders_proceed_and_overlapping_ones_wait(tmp_path, backend):
    if not backend.startswith("postgresql"):
        pytest.skip("per-folder locks are a PostgreSQL feature; SQLite stores lock as a whole")
    a, b = tmp_path / "a", tmp_path / "b"
    make_photos(a, 3, seed=1)
    make_photos(b / "inner", 3, seed=2)
    settings = Settings.from_env()
    engine = create_engine(backend)
    try:
        with index_lock(engine, settings.lock_path, [str(b.resolve())]):
            assert index_json(a)["new"] == 3  # another folder: goes ahead
            inner = run_cli("index", b / "inner", "--model", MODEL)
            assert inner.exit_code != 0 and "another `clipsearch index`" in inner.stderr
        assert index_json(b / "inner")["new"] == 3
    finally:
        engine.dispose()
