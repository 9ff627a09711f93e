"""How the API behaves under repeated and concurrent use: keep-alive latency, shared work, freshness."""

from __future__ import annotations

import http.client
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest
from apiserver import indexed_home, start
from conftest import MODEL, catalog_rows, make_photos, ok, run_cli

from clipsearch.api.server import bind


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server on a small SQLite store."""
    root = tmp_path_factory.mktemp("perf")
    home = indexed_home(root, 12)
    srv = start(home)
    yield srv
    srv.stop()


def test_listening_socket_turns_nagle_off():
    sock = bind("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP  # asyncio sets TCP_NODELAY only on such sockets
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        sock.close()


def test_keep_alive_responses_do_not_wait_for_delayed_acks(server):
    # With Nagle on, each response's body waited for the client's delayed ACK of its head: >= 40 ms
    # per request on one keep-alive connection once the first few (quick-ACKed) are past: the median of 20 shows it.
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    times = []
    try:
        for _ in range(20):
            t = time.perf_counter()
            conn.request("GET", "/healthz")
            response = conn.getresponse()
            assert response.status == 200
            response.read()
            times.append(time.perf_counter() - t)
    finally:
        conn.close()
    assert sorted(times)[10] < 0.02, [round(t * 1000, 1) for t in times]


QUERIES = ["a photo", "red + blue", "2:green - dark", "a bright square", "pattern", "grey - red", "noise", "tiles"]


def _search(http, i: int, text: str) -> dict:
    # GET and POST alike, with a second term and a filter now and then: every path goes through the engine.
    if i % 2:
        got = http.get("/api/search", params={"q": text, "k": 6})
    else:
        got = http.post("/api/search", json={"q": text, "k": 6, "offset": i % 3})
    assert got.status_code == 200, got.text
    return got.json()


def _hits(answer: dict) -> list[tuple]:
    return [(h["rank"], h["id"], h["path"]) for h in answer["results"]]


def test_concurrent_clients_get_the_same_answers_as_serial_ones(server):
    work = [(i, QUERIES[i % len(QUERIES)]) for i in range(48)]
    with server.client() as http:
        start = http.get("/healthz").json()
        serial = {i: _search(http, i, text) for i, text in work}
        middle = http.get("/healthz").json()
    concurrent: dict[int, dict] = {}

    def client(mine):
        with server.client() as http:
            for i, text in mine:
                concurrent[i] = _search(http, i, text)

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(client, [work[j::6] for j in range(6)]))
    assert len(concurrent) == len(work)
    with server.client() as http:
        end = http.get("/healthz").json()
    # The same texts were encoded either way; serially one model call per request, concurrently no more.
    assert middle["text_calls"] - start["text_calls"] == len(work)
    assert end["texts_encoded"] - middle["texts_encoded"] == middle["texts_encoded"] - start["texts_encoded"]
    assert end["text_calls"] - middle["text_calls"] <= len(work)
    for i, _text in work:
        assert _hits(concurrent[i]) == _hits(serial[i]), i
        scores = [h["score"] for h in concurrent[i]["results"]]
        assert scores == pytest.approx([h["score"] for h in serial[i]["results"]], abs=1e-5)
        assert concurrent[i]["terms"] == serial[i]["terms"]


def test_an_index_run_is_seen_by_the_next_request(server, tmp_path):
    # The engine checks the catalog's change counter on every request (no restart, no delay).
    with server.client() as http:
        before = http.get("/api/status").json()["vectors"]
        make_photos(tmp_path / "new", 3, seed=99, prefix="new")
        env = {"CLIPSEARCH_HOME": str(server.home)}
        ok(run_cli("index", tmp_path / "new", "--model", MODEL, "--json", env=env))
        new_ids = [r["id"] for p, r in catalog_rows(server.home).items() if "/new/" in p]
        assert len(new_ids) == 3
        hits = http.get(f"/api/images/{new_ids[0]}/similar", params={"k": 1}).json()["results"]
        assert hits[0]["id"] == new_ids[0]
        assert http.get("/api/status").json()["vectors"] == before + 3
