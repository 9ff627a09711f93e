"""How the API behaves under repeated and concurrent use: keep-alive latency, shared work, freshness."""

from __future__ import annotations

import http.client
import socket
import time
from urllib.parse import urlsplit

import pytest
from apiserver import start
from conftest import MODEL, make_photos, ok, run_cli

from clipsearch.api.server import bind


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server on a small SQLite store."""
    root = tmp_path_factory.mktemp("perf")
    make_photos(root / "photos", 12)
    home = root / "home"
    ok(run_cli("index", root / "photos", "--model", MODEL, "--json", env={"CLIPSEARCH_HOME": str(home)}))
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
