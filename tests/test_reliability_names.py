"""Reliability: file names that are not valid UTF-8 (issue 15, case 9).

Archives from old cameras and Windows machines hold names in Latin-1 or Shift-JIS. They are indexed
on SQLite and PostgreSQL: the catalog keeps the exact bytes (`path_bytes`) and shows the name
with \\xNN escapes; the file is read by its original bytes; moves, deletions and results work.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from conftest import catalog_rows, index_json, pattern_image, query_json, save_image

from clipsearch.catalog import Catalog

NAMES = {b"caf\xe9.jpg": "caf\\xe9.jpg", b"\x82\xa0\x82\xa2.jpg": "\\x82\\xa0\\x82\\xa2.jpg"}


def _write(folder: bytes, name: bytes, seed: int) -> bytes:
    os.makedirs(folder, exist_ok=True)
    path = folder + b"/" + name
    buf = Path(os.fsdecode(folder)) / "staging.jpg"
    save_image(pattern_image(seed), buf)
    os.rename(buf, path)
    return path


@pytest.fixture
def archive(tmp_path) -> Path:
    folder = tmp_path / "archive"
    base = os.fsencode(folder)
    for seed, name in enumerate(NAMES):
        _write(base, name, seed)
    _write(base + b"/\xc4lbum", b"ok.jpg", 7)  # a folder whose name is not UTF-8
    save_image(pattern_image(0), folder / "plain-copy.jpg")  # the same bytes as caf\xe9.jpg
    return folder


def test_undecodable_names_are_indexed_losslessly(archive, home, backend):
    summary = index_json(archive)
    assert summary["failed"] == 0 and summary["new"] == 4, summary["failures"]
    rows = catalog_rows(home)
    base = str(archive)
    shown = {p[len(base) + 1 :]: r for p, r in rows.items()}
    assert set(shown) == {*NAMES.values(), "\\xc4lbum/ok.jpg", "plain-copy.jpg"}
    for raw, escaped in NAMES.items():
        row = shown[escaped]
        assert row["status"] == "ok" and row["path_bytes"] == os.fsencode(archive) + b"/" + raw
    assert shown["plain-copy.jpg"]["path_bytes"] is None
    # Read by the original bytes: the same content under a UTF-8 name has the very same vector.
    assert shown["caf\\xe9.jpg"]["embedding"] == shown["plain-copy.jpg"]["embedding"]

    # Results show the escaped name; the catalog's metadata opens the real file.
    hits = query_json("--image", archive / "plain-copy.jpg", "-k", "2")
    assert {Path(h["path"]).name for h in hits} == {"caf\\xe9.jpg", "plain-copy.jpg"}
    catalog = Catalog.open(backend)
    try:
        metas = catalog.results.meta([r["id"] for r in rows.values()])
    finally:
        catalog.close()
    for meta in metas.values():
        assert os.path.isfile(meta.fs_path)

    # A second run finds everything unchanged; a rename and a deletion are followed.
    assert index_json(archive)["unchanged"] == 4
    os.rename(os.fsencode(archive) + b"/caf\xe9.jpg", os.fsencode(archive) + b"/caf\xe8.jpg")
    os.unlink(os.fsencode(archive) + b"/\x82\xa0\x82\xa2.jpg")
    later = index_json(archive)
    assert (later["moved"], later["removed"]) == (1, 1)
    moved = catalog_rows(home)[f"{base}/caf\\xe8.jpg"]
    assert moved["path_bytes"] == os.fsencode(archive) + b"/caf\xe8.jpg"
    shutil.rmtree(archive)
