"""Who may call the API: the token rule off loopback, the Host check, and the record's permissions."""

from __future__ import annotations

import os
import stat

import pytest
from apiserver import run_serve, start
from conftest import index_json

TOKEN = "t0ken-for-tests-0123456789"


@pytest.fixture
def indexed(home, photos):
    index_json(photos)
    return home


def test_other_addresses_need_a_token(indexed):
    refused = run_serve(indexed, "--host", "0.0.0.0")
    assert refused.returncode == 1
    assert "needs a token" in refused.stderr and "CLIPSEARCH_API_TOKEN" in refused.stderr
    short = run_serve(indexed, "--host", "0.0.0.0", env={"CLIPSEARCH_API_TOKEN": "short"})
    assert short.returncode == 1 and "too short" in short.stderr
    assert not (indexed / "server.json").exists()


def test_every_request_without_the_token_is_refused(indexed):
    server = start(indexed, "--host", "0.0.0.0", env={"CLIPSEARCH_API_TOKEN": TOKEN})
    try:
        assert server.token == TOKEN
        probes = [
            ("GET", "/healthz"),
            ("GET", "/docs"),
            ("GET", "/openapi.json"),
            ("GET", "/api/status"),
            ("GET", "/api/search?q=x"),
            ("POST", "/api/search"),
            ("GET", "/api/images/1"),
            ("GET", "/api/images/1/thumbnail"),
            ("GET", "/api/images/1/similar"),
            ("GET", "/nope"),
        ]
        for bad in (None, "wrong-token-0123456789", TOKEN[:-1], TOKEN + "x"):
            with server.client(token=bad) as http:
                for method, path in probes:
                    got = http.request(method, path, json={"q": "x"} if method == "POST" else None)
                    assert got.status_code == 401, (bad, method, path, got.text)
                    assert "token" in got.json()["error"]
                    assert got.headers["www-authenticate"].startswith("Bearer")
        with server.client(headers={"Authorization": f"Basic {TOKEN}"}, token=None) as http:
            assert http.get("/healthz").status_code == 401
        with server.client() as http:
            assert http.get("/healthz").status_code == 200
            assert http.get("/api/search", params={"q": "x"}).status_code == 200
            assert http.get("/api/images/1").status_code == 200
    finally:
        server.stop()


def test_record_is_private_and_removed_on_stop(indexed):
    server = start(indexed, env={"CLIPSEARCH_API_TOKEN": TOKEN})
    record = indexed / "server.json"
    assert stat.S_IMODE(os.stat(record).st_mode) == 0o600
    assert server.stop() == 0
    assert not record.exists()
    again = start(indexed)
    try:
        second = run_serve(indexed)
        assert second.returncode == 1 and "already runs" in second.stderr
    finally:
        again.stop()
