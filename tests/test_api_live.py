"""The API while things change: index runs committing batches, and the CLI using a running server."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

from apiserver import start
from conftest import MODEL, catalog_rows, index_json, make_photos

from clipsearch.api.record import catalog_key
from clipsearch.settings import Settings

QUERIES = 1000


def cli(home, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "clipsearch", "--home", str(home), *args]
    return subprocess.run(command, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=120)


PAUSED_AFTER = 5  # batches of 4: the run stops itself with 14 + 20 vectors in the store


def _stopped(process: subprocess.Popen) -> bool:
    with open(f"/proc/{process.pid}/stat", encoding="ascii") as fh:
        return fh.read().rpartition(")")[2].split()[0] == "T"


def test_queries_while_an_index_run_commits_batches(backend, home, photos, tmp_path):
    index_json(photos)
    more = tmp_path / "more"
    make_photos(more, 120, seed=7)
    server = start(home)
    try:
        # The run stops itself (SIGSTOP) after a committed batch, so the test sees a state between the
        # first and the last commit however fast the machine is (an idle CI run committed all 30
        # batches between two samples), then lets it go on.
        pause = {"CLIPSEARCH_FAULT": f"batch-committed:{PAUSED_AFTER}", "CLIPSEARCH_FAULT_SIGNAL": "STOP"}
        indexer = subprocess.Popen(
            [sys.executable, "-m", "clipsearch", "index", str(more), "--model", MODEL, "--batch-size", "4", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **pause},
        )
        errors, paused_vectors, i = [], None, 0
        with server.client() as http:
            # At least QUERIES queries, and on until the run has ended (however slow a shared machine is).
            while i < QUERIES or indexer.poll() is None:
                if i % 2:
                    got = http.get("/api/search", params={"q": f"photo {i}", "k": 5})
                else:
                    got = http.post("/api/search", json={"q": f"photo {i}", "k": 5})
                if got.status_code != 200 or len(got.json()["results"]) != 5:
                    errors.append((got.status_code, got.text))
                if paused_vectors is None and indexer.poll() is None and _stopped(indexer):
                    paused_vectors = http.get("/api/status").json()["vectors"]
                    indexer.send_signal(signal.SIGCONT)
                i += 1
            out, err = indexer.communicate(timeout=60)
            assert indexer.returncode == 0, err
            assert json.loads(out)["new"] == 120
            assert errors == []
            # Batches became searchable while the run went on, not only at its end.
            assert paused_vectors == 14 + 4 * PAUSED_AFTER
            status = http.get("/api/status").json()
            assert status["images"] == status["vectors"] == 14 + 120
            rows = catalog_rows(home)
            target = rows[str(more / "img118.jpg")]["id"]
            hits = http.get(f"/api/images/{target}/similar", params={"k": 1}).json()["results"]
            assert hits[0]["id"] == target
    finally:
        server.stop()


def test_cli_query_goes_through_a_running_server(backend, home, photos):
    index_json(photos)
    local = cli(home, "query", "a photo", "-k", "5", "--json", "--no-server")
    local_text = cli(home, "query", "a photo", "-k", "5", "--no-server")
    example = photos / "img004.jpg"
    local_image = cli(home, "query", "--image", str(example), "-k", "3", "--json", "--no-server")
    combined = ("query", "a photo - 2:red", "--plus", "green", "-k", "4", "--json")
    local_combined = cli(home, *combined, "--no-server")
    server = start(home, "--access-log")
    try:
        served_combined = cli(home, *combined)
        # A term that may name a file is read by this process, not sent.
        by_path = cli(home, "query", "a photo", "--plus", str(example), "-k", "2", "--json")
        served = cli(home, "query", "a photo", "-k", "5", "--json")
        served_text = cli(home, "query", "a photo", "-k", "5")
        served_image = cli(home, "query", "--image", str(example), "-k", "3", "--json")
        bad = cli(home, "query", "a photo", "-k", "0")
        time.sleep(0.2)
        log = server.output()
    finally:
        server.stop()
    assert served.returncode == 0, served.stderr
    assert json.loads(served.stdout) == json.loads(local.stdout)
    assert served_text.stdout == local_text.stdout
    assert json.loads(served_image.stdout) == json.loads(local_image.stdout)
    assert json.loads(served_combined.stdout) == json.loads(local_combined.stdout)
    assert by_path.returncode == 0 and json.loads(by_path.stdout)["terms"][1]["kind"] == "image"
    assert "random weights" in served.stderr
    assert bad.returncode == 1 and "k must be" in bad.stderr
    assert log.count('"POST /api/search HTTP/1.1" 200') == 4, log
    assert log.count('"POST /api/search HTTP/1.1" 400') == 1, log


def _record(home, pid: int, host: str | None = None) -> None:
    key = catalog_key(Settings.from_env(home).catalog_url)
    data = {
        "url": "http://127.0.0.1:9",
        "pid": pid,
        "token": None,
        "catalog": key,
        "host": host or socket.gethostname(),
    }
    (home / "server.json").write_text(json.dumps(data))


def test_stale_record_is_ignored_and_removed(home, photos):
    index_json(photos)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _record(home, dead.pid)
    got = cli(home, "query", "a photo", "-k", "2", "--json")
    assert got.returncode == 0, got.stderr
    assert len(json.loads(got.stdout)["results"]) == 2
    assert not (home / "server.json").exists()


def test_records_the_cli_cannot_use_are_left_alone(home, photos):
    """A live pid that does not answer (a reused pid) falls back in-process; another machine's record
    (a store shared between containers) is neither used nor removed."""
    index_json(photos)
    _record(home, os.getpid())
    got = cli(home, "query", "a photo", "-k", "2", "--json")
    assert got.returncode == 0, got.stderr
    assert len(json.loads(got.stdout)["results"]) == 2
    assert "searching in this process" in got.stderr
    assert (home / "server.json").exists()
    _record(home, 999_999_999, host="another-container")
    got = cli(home, "query", "a photo", "-k", "2", "--json")
    assert got.returncode == 0 and "searching in this process" not in got.stderr
    assert (home / "server.json").exists()
