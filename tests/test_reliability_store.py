"""Reliability: the store itself (issue 15, cases 1, 5 and 8).

Disk space, configuration mistakes and damaged or read-only stores end in a clear message or
keep working; a kill during schema setup and concurrent first runs leave a usable store.
"""

from __future__ import annotations

from conftest import MODEL, catalog_rows, index_json, make_photos, ok, run_cli


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
