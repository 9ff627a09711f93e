"""The HTTP API: a real `clipsearch serve` in a subprocess, called with httpx.

The answers are compared with the CLI's on SQLite and PostgreSQL (the `backend` fixture); the
probes of error codes share one SQLite server per module, since they do not touch the catalog.
"""

from __future__ import annotations

import io
import json
import os
import struct
import zlib
from urllib.parse import urlsplit

import pytest
from apiserver import indexed_home, raw_get, start
from conftest import catalog_rows, index_json, ok, query_json, run_cli, status_json
from PIL import Image


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One server on a small SQLite store, for the tests that only probe it."""
    root = tmp_path_factory.mktemp("shared")
    home = indexed_home(root, 6)
    server = start(home, "--allow-host", "photos.lan")
    yield server
    server.stop()


def test_search_endpoints_answer_as_the_cli_does(backend, home, photos):
    index_json(photos)
    rows = catalog_rows(home)
    server = start(home)
    try:
        with server.client() as http:
            _check_search(http, photos)
            _check_upload(http, photos)
            _check_images(http, photos, rows)
            _check_changed_originals(http, photos, rows)
    finally:
        server.stop()


def _check_search(http, photos) -> None:
    assert http.get("/healthz").json() == {"ok": True, "loaded": True, "text_calls": 0, "texts_encoded": 0}
    assert http.get("/api/status").json() == status_json()
    got = http.get("/api/search", params={"q": "a photo", "k": 5})
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["results"] == query_json("a photo", "-k", "5", "--no-server")
    assert [h["rank"] for h in body["results"]] == [1, 2, 3, 4, 5]
    assert {"encode_ms", "total_ms"} <= set(body["timings"])
    assert any("random weights" in w for w in body["warnings"])
    assert http.post("/api/search", json={"q": "a photo", "k": 5}).json()["results"] == body["results"]
    page2 = http.get("/api/search", params={"q": "a photo", "k": 5, "offset": 5}).json()["results"]
    assert page2 == query_json("a photo", "-k", "5", "--offset", "5", "--no-server")
    combined = [("q", "a photo + 2:red - blue"), ("plus", "green"), ("minus", "0.5:dark"), ("k", "4")]
    answer = http.get("/api/search", params=combined).json()
    cli = run_cli(
        "query", "a photo + 2:red - blue", "--plus", "green", "--minus", "0.5:dark", "-k", "4", "--json", "--no-server"
    )
    assert {name: answer[name] for name in ("terms", "prompts", "results", "notes")} == json.loads(ok(cli).stdout)
    # raw=false averages text terms with the model's prompt templates, as `query --prompts` does.
    prompted = http.post("/api/search", json={"q": "a photo - blue", "k": 4, "raw": False}).json()
    cli = run_cli("query", "a photo - blue", "-k", "4", "--prompts", "--json", "--no-server")
    assert prompted["prompts"]["used"] is True and prompted["results"] == json.loads(ok(cli).stdout)["results"]
    assert http.get("/api/search", params={"q": "a photo", "raw": "true"}).json()["prompts"]["used"] is False
    assert [t["weight"] for t in answer["terms"]] == [1, 2, 1, -1, -0.5]
    exif = str(photos / "exif")
    filtered = {"q": "a photo", "k": 20, "folder": exif, "after": "2020-01-01", "min_score": -1}
    hits = http.get("/api/search", params=filtered).json()["results"]
    assert [h["path"] for h in hits] == [str(photos / "exif" / "rotated.jpg")]
    cli_args = ("--folder", exif, "--after", "2020-01-01", "--min-score", "-1", "--no-server")
    assert hits == query_json("a photo", "-k", "20", *cli_args)


def _check_upload(http, photos) -> None:
    example = photos / "img004.jpg"
    alone = http.post("/api/search", files={"image": ("x.jpg", example.read_bytes(), "image/jpeg")}, data={"k": "3"})
    assert alone.status_code == 200, alone.text
    hits = alone.json()["results"]
    assert hits[0]["path"] == str(example) and hits[0]["score"] > 0.99
    assert hits == query_json("--image", example, "-k", "3", "--no-server")
    both = http.post("/api/search", files={"image": ("x.jpg", example.read_bytes())}, data={"q": "a photo", "k": "4"})
    assert both.json()["results"] == query_json("a photo", "--image", example, "-k", "4", "--no-server")


def _check_images(http, photos, rows) -> None:
    row = rows[str(photos / "img002.png")]
    original = http.get(f"/api/images/{row['id']}")
    assert original.status_code == 200
    assert original.content == (photos / "img002.png").read_bytes()
    assert original.headers["content-type"] == "image/png"
    assert original.headers["x-content-type-options"] == "nosniff"
    thumb = http.get(f"/api/images/{row['id']}/thumbnail")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(thumb.content)).size) <= 320
    similar = http.get(f"/api/images/{row['id']}/similar", params={"k": 3}).json()["results"]
    assert similar[0]["id"] == row["id"] and similar[0]["score"] > 0.999


def _check_changed_originals(http, photos, rows) -> None:
    """A file that is no longer the indexed one is never sent (clipsearch.originals decides)."""
    changed = photos / "img000.jpg"
    changed.write_bytes(changed.read_bytes() + b"\0")
    assert http.get(f"/api/images/{rows[str(changed)]['id']}").status_code == 409
    gone = photos / "img001.jpg"
    gone.unlink()
    assert http.get(f"/api/images/{rows[str(gone)]['id']}").status_code == 404
    swapped = photos / "img003.jpg"
    st = swapped.stat()
    secret = photos.parent / "secret.txt"
    secret.write_bytes(b"s" * st.st_size)
    os.utime(secret, ns=(st.st_atime_ns, st.st_mtime_ns))
    swapped.unlink()
    swapped.symlink_to(secret)
    got = http.get(f"/api/images/{rows[str(swapped)]['id']}")
    assert got.status_code == 409 and b"sss" not in got.content


def test_unknown_ids_and_paths_are_404(shared):
    with shared.client() as http:
        for probe in ("999999", "0", "-1", "abc", "1.0", "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "..%2F..%2Fetc%2Fpasswd"):
            for suffix in ("", "/thumbnail", "/similar"):
                got = http.get(f"/api/images/{probe}{suffix}")
                assert got.status_code == 404, (probe, suffix, got.text)
                assert "error" in got.json() and "root:" not in got.text
        assert http.get("/api/images/1").status_code == 200
        missing = http.get("/no/such/endpoint")
        assert missing.status_code == 404 and "error" in missing.json()
        assert "error" in http.delete("/api/search").json()


BAD_QUERIES = [
    ({}, "empty query"),
    ({"q": "   "}, "empty query"),
    ({"q": "x", "k": 0}, "k must be"),
    ({"q": "x", "k": "ten"}, "'k'"),
    ({"q": "x", "offset": -1}, "offset"),
    ({"q": "x", "after": "last tuesday"}, "'after'"),
    ({"q": "x", "colour": "red"}, "unknown parameter 'colour'"),
    ({"q": "x", "min_score": "high"}, "'min_score'"),
]


def test_bad_queries_are_400_with_a_message(shared):
    with shared.client() as http:
        for params, message in BAD_QUERIES:
            for got in (http.get("/api/search", params=params), http.post("/api/search", json=params)):
                assert got.status_code == 400, (params, got.text)
                assert message in got.json()["error"], (params, got.text)
        assert http.get("/api/search", params={"q": "x", "k": 2}).status_code == 200


def test_bad_bodies_and_uploads_are_400(shared):
    with shared.client() as http:
        assert http.post("/api/search", content=b"q=x", headers={"content-type": "text/plain"}).status_code == 400
        bad_json = http.post("/api/search", content=b"{not json", headers={"content-type": "application/json"})
        assert bad_json.status_code == 400 and "JSON" in bad_json.json()["error"]
        assert http.post("/api/search", json=["a", "list"]).status_code == 400
        not_image = http.post("/api/search", files={"image": ("x.jpg", b"this is not a picture")})
        assert not_image.status_code == 400 and "not an image" in not_image.json()["error"]
        wrong_field = http.post("/api/search", files={"photo": ("x.jpg", b"abc")})
        assert wrong_field.status_code == 400


def _png_bomb(width: int, height: int) -> bytes:
    """A valid greyscale PNG of width x height zero pixels: little to send, width*height bytes to decode."""
    raw = zlib.compress(b"".join(b"\x00" + bytes(width) for _ in range(height)), 9)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def test_upload_bombs_are_413(shared):
    with shared.client() as http:
        bomb = _png_bomb(8_000, 8_000)  # 64 megapixels in ~60 KB
        assert len(bomb) < 200_000
        got = http.post("/api/search", files={"image": ("bomb.png", bomb)})
        assert got.status_code == 413 and "megapixels" in got.json()["error"]
        huge = os.urandom(21 * 1024 * 1024)
        got = http.post("/api/search", files={"image": ("big.jpg", huge)})
        assert got.status_code == 413
        # Chunked (no Content-Length): counted while it streams.
        head = b'--x\r\nContent-Disposition: form-data; name="image"; filename="big.jpg"\r\n\r\n'
        chunks = (head + huge[i : i + 65536] if i == 0 else huge[i : i + 65536] for i in range(0, len(huge), 65536))
        got = http.post("/api/search", content=chunks, headers={"content-type": "multipart/form-data; boundary=x"})
        assert got.status_code == 413
        assert http.get("/healthz").status_code == 200  # still serving


def test_docs_and_openapi(shared):
    with shared.client() as http:
        docs = http.get("/docs")
        assert docs.status_code == 200 and "swagger" in docs.text.lower()
        spec = http.get("/openapi.json").json()
        names = {p["name"] for p in spec["paths"]["/api/search"]["get"]["parameters"]}
        assert {"q", "k", "offset", "folder", "after", "before", "min_score"} <= names
        paths = {"/api/images/{image_id}", "/api/images/{image_id}/thumbnail", "/api/images/{image_id}/similar"}
        assert paths | {"/api/status", "/healthz"} <= set(spec["paths"])


def test_empty_store_answers_503_until_indexed(backend, home, photos):
    ok(run_cli("status"))  # creates the store
    server = start(home)
    try:
        with server.client() as http:
            assert http.get("/healthz").json() == {"ok": True, "loaded": False}
            got = http.get("/api/search", params={"q": "a photo"})
            assert got.status_code == 503 and "clipsearch index" in got.json()["error"]
            assert http.get("/api/status").json()["images"] == 0
            index_json(photos)
            got = http.get("/api/search", params={"q": "a photo", "k": 3})
            assert got.status_code == 200 and len(got.json()["results"]) == 3
    finally:
        server.stop()


def test_host_header_is_checked(shared):
    server = shared
    port = urlsplit(server.url).port
    for host in (
        f"127.0.0.1:{port}",
        f"localhost:{port}",
        "localhost",
        f"[::1]:{port}",
        f"photos.lan:{port}",
        "192.168.1.20",
    ):
        status, _ = raw_get(server.url, "/healthz", {"Host": host})
        assert status == 200, host
    for host in ("evil.example", f"evil.example:{port}", "localhost.evil.example", "photos.lan.evil.example", ""):
        status, body = raw_get(server.url, "/api/search?q=x", {"Host": host})
        assert status == 400 and b"Host" in body, host


def test_raw_traversal_paths_never_reach_a_file(shared):
    server = shared
    for path in (
        "/api/images/../../../../etc/passwd",
        "/api/images/1/../../../../etc/passwd",
        "/api/images/%2e%2e/%2e%2e/etc/passwd",
        "/api/images//etc/passwd",
        "/../../etc/passwd",
    ):
        status, body = raw_get(server.url, path)
        assert status in (400, 404), (path, status)
        assert b"root:" not in body
