"""A re-index whose walk matches the last complete run's skips reading the catalog (indexer/walks.py),
and reads it again whenever anything changed the image rows since."""

from __future__ import annotations

import json
import os

import sqlalchemy
from conftest import PHOTOS_COUNT, catalog_rows, catalog_url, index_json, make_photos

from clipsearch.catalog.facts import ROWS_SEQ_KEY
from clipsearch.indexer import walks


def _execute(home, sql: str, **params) -> None:
    engine = sqlalchemy.create_engine(catalog_url(home))
    try:
        with engine.begin() as con:
            con.execute(sqlalchemy.text(sql), params)
    finally:
        engine.dispose()


def _rows_seq(home) -> int:
    engine = sqlalchemy.create_engine(catalog_url(home))
    try:
        with engine.connect() as con:
            return int(
                con.execute(sqlalchemy.text(f"SELECT value FROM store_meta WHERE key = '{ROWS_SEQ_KEY}'")).scalar()
            )
    finally:
        engine.dispose()


def test_a_matching_walk_plans_without_reading_the_rows(backend, home, photos):
    assert index_json(photos)["new"] == PHOTOS_COUNT
    assert index_json(photos)["unchanged"] == PHOTOS_COUNT
    # A row deleted behind clipsearch's back, without moving the rows counter: only a run that
    # reads the rows would notice (and index the file again), so this one shows the shortcut taken.
    _execute(home, "DELETE FROM images WHERE path = :path", path=str(photos / "img003.jpg"))
    again = index_json(photos)
    assert (again["new"], again["unchanged"]) == (0, PHOTOS_COUNT)
    # Every write to image rows moves the counter: then the next run reads the rows again.
    _execute(
        home, "UPDATE store_meta SET value = :value WHERE key = :key", value=str(_rows_seq(home) + 1), key=ROWS_SEQ_KEY
    )
    later = index_json(photos)
    assert (later["new"], later["unchanged"]) == (1, PHOTOS_COUNT - 1)
    assert str(photos / "img003.jpg") in catalog_rows(home)


def test_rows_another_run_changed_are_read_again(backend, home, photos, tmp_path):
    """Another home on the same catalog (another machine on a shared database) followed a rename
    that was then undone: this home's last walk matches the disk again, the rows do not."""
    index_json(photos)
    index_json(photos)
    other = {"CLIPSEARCH_HOME": str(tmp_path / "other-home"), "DATABASE_URL": backend}
    first, renamed = photos / "img004.jpg", photos / "renamed.jpg"
    os.rename(first, renamed)
    assert index_json(photos, env=other)["moved"] == 1
    os.rename(renamed, first)  # a rename keeps the file's size and times: the disk is as this home last saw it
    back = index_json(photos)
    assert (back["moved"], back["unchanged"]) == (1, PHOTOS_COUNT - 1)
    rows = catalog_rows(home)
    assert str(first) in rows and str(renamed) not in rows


def test_a_changed_walk_reads_the_rows(backend, home, photos):
    index_json(photos)
    index_json(photos)
    (photos / "img001.jpg").unlink()
    os.utime(photos / "img000.jpg", ns=(0, 10**9))
    later = index_json(photos)
    assert (later["removed"], later["updated"] + later["unchanged"]) == (1, PHOTOS_COUNT - 1)
    assert index_json(photos)["unchanged"] == PHOTOS_COUNT - 1


def test_records_are_kept_for_the_folders_walked_last(home, photos, tmp_path, monkeypatch):
    monkeypatch.setattr(walks, "MAX_RECORDS", 2)
    others = [tmp_path / "a", tmp_path / "b"]
    for folder in others:
        make_photos(folder, 2, seed=len(folder.name) + 7)
    # The last runs over `others` write nothing: the counter stays where the record of `photos` has it.
    for folder in [*others, photos, photos, *others]:
        index_json(folder)
    # But that record is the oldest, and gone: the next run reads the rows (and sees the one deleted).
    _execute(home, "DELETE FROM images WHERE path = :path", path=str(photos / "img003.jpg"))
    assert index_json(photos)["new"] == 1
    # A file named on the command line is compared with its row; it leaves no record behind.
    before = json.loads((home / walks.WALKS_NAME).read_text())["walks"]
    index_json(photos / "img003.jpg")
    index_json(photos / "img003.jpg")
    assert json.loads((home / walks.WALKS_NAME).read_text())["walks"] == before
