"""Queries keep working, and stay consistent with committed work, while an index run writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from conftest import MODEL, catalog_rows, index_json, make_photos

from clipsearch.search import SearchRequest, SearchService
from clipsearch.settings import Settings
from clipsearch.store import Store

pytestmark = pytest.mark.usefixtures("backend")


def test_queries_during_an_index_run(tmp_path, home):
    seed_folder, big = tmp_path / "seed", tmp_path / "big"
    make_photos(seed_folder, 4, seed=1)
    make_photos(big, 160, seed=2)
    index_json(seed_folder)  # the store has a model and something to find from the start

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "clipsearch",
            "index",
            str(big),
            "--model",
            MODEL,
            "--batch-size",
            "4",
            "--workers",
            "1",
        ],
        env={**os.environ},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    store = Store.open(Settings.from_env())
    service = SearchService.open(store)
    seen_counts, errors = [], []
    cli = None
    deadline = time.monotonic() + 120
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                result = service.search(SearchRequest(text="a photo", k=500))
            except Exception as exc:  # any error here ("database is locked" included) fails the test
                errors.append(repr(exc))
                break
            ids = [h.id for h in result.hits]
            if cli is None and len(ids) > 4:
                # The CLI, as a separate process, queries too while batches land.
                cli = subprocess.Popen(
                    [sys.executable, "-m", "clipsearch", "query", "a photo", "-k", "3", "--json"],
                    env={**os.environ},
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            assert len(ids) == len(set(ids)), "a vector appeared twice in the results"
            seen_counts.append(len(ids))
            time.sleep(0.05)
        out, err = proc.communicate(timeout=120)
        if cli is not None:
            cli_out, cli_err = cli.communicate(timeout=120)
            if cli.returncode != 0 or len(json.loads(cli_out)["results"]) != 3:
                errors.append(f"CLI query failed during the run: {cli_err}")
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not errors, errors
    assert proc.returncode == 0, err
    assert "160 new" in out
    # Results grew as batches committed, never shrank, and the end state is complete.
    assert seen_counts == sorted(seen_counts)
    assert seen_counts[0] >= 4
    assert any(4 < c < 164 for c in seen_counts), f"no query ran while batches were landing: {seen_counts}"
    final = service.search(SearchRequest(text="a photo", k=500))
    assert len(final.hits) == 164 == len(catalog_rows(home))
    store.close()
