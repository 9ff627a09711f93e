"""Reliability: who may write a catalog at once (issue 15, cases 5 and 6).

The index lock belongs to the catalog, not to the home: two homes sharing one DATABASE_URL
exclude each other. Overlapping roots in one command are walked once.
"""

from __future__ import annotations

import pytest
from conftest import MODEL, catalog_rows, index_json, make_photos, run_cli
from sqlalchemy import create_engine

from clipsearch.lock import index_lock


def test_two_homes_sharing_one_catalog_share_its_lock(tmp_path, monkeypatch, backend):
    folder = tmp_path / "photos"
    make_photos(folder, 3)
    shared = backend if backend.startswith("postgresql") else f"sqlite:///{tmp_path / 'shared' / 'catalog.db'}"
    monkeypatch.setenv("DATABASE_URL", shared)
    engine = create_engine(shared)
    try:
        # Home A's run holds the lock (its lock_path argument is home A's fallback).
        with index_lock(engine, tmp_path / "home-a" / "index.lock", [str(folder.resolve())]):
            result = run_cli("--home", tmp_path / "home-b", "index", folder, "--model", MODEL)
    finally:
        engine.dispose()
    assert result.exit_code == 1
    assert "another `clipsearch index`" in result.stderr and "wait" in result.stderr
    assert catalog_rows(tmp_path) == {}
    monkeypatch.setenv("CLIPSEARCH_HOME", str(tmp_path / "home-b"))
    assert index_json(folder)["new"] == 3


@pytest.mark.parametrize("twice", [False, True])
def test_overlapping_roots_in_one_command_on_both_databases(tmp_path, home, backend, twice):
    folder = tmp_path / "photos"
    make_photos(folder / "a", 3)
    make_photos(folder / "b", 2, seed=1)
    args = (folder, folder) if twice else (folder / "a", folder)
    assert index_json(*args)["new"] == 5
    assert index_json(*args)["unchanged"] == 5
    assert len(catalog_rows(home)) == 5
