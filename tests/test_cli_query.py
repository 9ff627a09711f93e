"""`clipsearch query` and `clipsearch status` through the real CLI."""

from __future__ import annotations

import json
import subprocess

import pytest
from conftest import (
    MODEL,
    PHOTOS_COUNT,
    catalog_rows,
    catalog_url,
    index_json,
    make_photos,
    ok,
    query_json,
    run_cli,
    status_json,
)

# Every test runs on SQLite and, in CI, again on PostgreSQL (see the `backend` fixture).
pytestmark = pytest.mark.usefixtures("backend")


@pytest.fixture
def indexed(tmp_path, home):
    """A store holding two folders: photos/alpha (8 images) and photos/beta (12 images)."""
    folder = tmp_path / "photos"
    make_photos(folder / "alpha", 8, seed=1, prefix="a")
    make_photos(folder / "beta", 12, seed=2, prefix="b")
    summary = index_json(folder)
    assert summary["new"] == 20
    return folder


def _one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("warning:")]
    assert len(lines) == 1, f"expected a one-line message, got:\n{text}"
    return lines[0]


def _assert_sorted(hits):
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert [h["rank"] for h in hits] == list(range(1, len(hits) + 1))


def test_query_by_image_ranks_itself_first(indexed, home):
    rows = catalog_rows(home)
    for probe in (indexed / "alpha" / "a003.jpg", indexed / "beta" / "b005.png", indexed / "beta" / "b010.jpg"):
        hits = query_json("--image", probe, "-k", "5")
        assert len(hits) == 5
        top = hits[0]
        assert top["path"] == str(probe.resolve())
        assert top["id"] == rows[str(probe.resolve())]["id"]
        assert top["score"] > 0.99
        assert all(h["score"] < top["score"] for h in hits[1:])
        assert len({h["id"] for h in hits}) == 5
        _assert_sorted(hits)


def test_json_fields_and_text_output(indexed, home):
    rows = catalog_rows(home)
    hits = query_json("a red and green pattern", "-k", "20")
    assert len(hits) == 20
    _assert_sorted(hits)
    for hit in hits:
        assert {"id", "path", "score", "width", "height"} <= set(hit)
        row = rows[hit["path"]]
        assert hit["id"] == row["id"]
        assert (hit["width"], hit["height"]) == (64, 48) == (row["width"], row["height"])
        assert isinstance(hit["score"], float) and -1.0 <= hit["score"] <= 1.001

    result = ok(run_cli("query", "a red and green pattern", "-k", "3"))
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 3
    for rank, (line, hit) in enumerate(zip(lines, hits, strict=False), start=1):
        r, score, path = line.split(None, 2)
        assert int(r) == rank and path == hit["path"]
        assert abs(float(score) - hit["score"]) < 1e-3


def test_k_is_honoured(indexed):
    for k in (1, 3, 7):
        hits = query_json("--image", indexed / "alpha" / "a000.jpg", "-k", str(k))
        assert len(hits) == k
    assert len(query_json("anything", "-k", "100")) == 20
    # Paging: offset continues where the first page stopped.
    full = query_json("--image", indexed / "alpha" / "a000.jpg", "-k", "6")
    page2 = query_json("--image", indexed / "alpha" / "a000.jpg", "-k", "3", "--offset", "3")
    assert [h["id"] for h in page2] == [h["id"] for h in full[3:]]
    assert [h["rank"] for h in page2] == [4, 5, 6]
    bad = run_cli("query", "x", "-k", "0")
    assert bad.exit_code != 0 and _one_line(bad.stderr).startswith("error:")


def test_image_and_text_combined(indexed):
    probe = indexed / "beta" / "b001.jpg"
    hits = query_json("a photo", "--image", probe, "-k", "5")
    assert len(hits) == 5
    _assert_sorted(hits)
    image_only = query_json("--image", probe, "-k", "1")[0]
    assert hits[0]["score"] < image_only["score"]  # the text pulls the query away from the picture


def test_folder_filter(indexed):
    beta = indexed / "beta"
    probe = indexed / "alpha" / "a002.png"  # an image outside the folder
    hits = query_json("--image", probe, "-k", "5", "--folder", beta)
    assert len(hits) == 5
    assert all(h["path"].startswith(str(beta.resolve()) + "/") for h in hits)
    _assert_sorted(hits)

    # k results when k exist there; all of them when fewer do.
    hits = query_json("--image", probe, "-k", "12", "--folder", beta)
    assert len(hits) == 12 and len({h["id"] for h in hits}) == 12
    hits = query_json("--image", probe, "-k", "50", "--folder", beta)
    assert len(hits) == 12

    # The filtered ranking equals the unfiltered ranking restricted to the folder.
    everything = query_json("--image", probe, "-k", "20")
    in_beta = [h["id"] for h in everything if h["path"].startswith(str(beta.resolve()) + "/")]
    assert [h["id"] for h in query_json("--image", probe, "-k", "4", "--folder", beta)] == in_beta[:4]

    alpha_hits = query_json("--image", probe, "-k", "3", "--folder", indexed / "alpha")
    assert alpha_hits[0]["path"] == str(probe.resolve())
    assert query_json("--image", probe, "--folder", indexed / "nowhere") == []


def test_folder_filter_through_a_symlinked_path(indexed, tmp_path, home):
    """A folder indexed through a symlink is filtered by the same path the user indexed."""
    link = tmp_path / "linked"
    link.symlink_to(indexed / "beta", target_is_directory=True)
    summary = index_json(link)
    assert summary["new"] == 12  # indexed under the link's path
    hits = query_json("--image", indexed / "alpha" / "a001.jpg", "-k", "5", "--folder", link)
    assert len(hits) == 5
    assert all(h["path"].startswith(str(link) + "/") for h in hits)


def test_capture_date_filters(photos, home):
    index_json(photos)
    after = query_json("anything", "-k", "10", "--after", "2020-01-01")
    assert [h["path"].rsplit("/", 1)[1] for h in after] == ["rotated.jpg"]
    assert after[0]["taken_at"].startswith("2021-06-15T10:30:00") and after[0]["camera"] == "Canon EOS 5D"
    assert (after[0]["width"], after[0]["height"]) == (48, 64)
    before = query_json("anything", "-k", "10", "--before", "2020-01-01")
    assert [h["path"].rsplit("/", 1)[1] for h in before] == ["upright.jpg"]
    both = query_json("anything", "-k", "10", "--after", "2019-01-01", "--before", "2022-01-01")
    assert len(both) == 2


def test_min_score(indexed):
    probe = indexed / "alpha" / "a004.jpg"
    everything = query_json("--image", probe, "-k", "20")
    assert everything[5]["score"] > everything[6]["score"]
    threshold = (everything[5]["score"] + everything[6]["score"]) / 2
    hits = query_json("--image", probe, "-k", "20", "--min-score", str(threshold))
    assert len(hits) == 6
    assert all(h["score"] >= threshold for h in hits)
    assert [h["id"] for h in hits] == [h["id"] for h in everything if h["score"] >= threshold]

    only_self = query_json("--image", probe, "-k", "20", "--min-score", "0.999")
    assert [h["path"] for h in only_self] == [str(probe.resolve())]
    assert query_json("--image", probe, "--min-score", "1.5") == []
    assert ok(run_cli("query", "--image", probe, "--min-score", "1.5")).stdout.strip() == "no results"


def test_empty_query_is_an_error(indexed):
    for args in (("",), ("   ",), ()):
        result = run_cli("query", *args)
        assert result.exit_code != 0
        message = _one_line(result.stderr)
        assert message.startswith("error:") and "empty query" in message
        assert result.stdout == ""


def test_query_image_errors(indexed, tmp_path):
    result = run_cli("query", "--image", tmp_path / "missing.jpg")
    assert result.exit_code != 0
    assert "no such file" in _one_line(result.stderr)
    junk = tmp_path / "junk.jpg"
    junk.write_text("not a picture")
    result = run_cli("query", "--image", junk)
    assert result.exit_code != 0
    assert "junk.jpg" in _one_line(result.stderr)


def test_query_on_an_empty_store_says_to_run_index(home, tmp_path):
    result = run_cli("query", "a dog on a beach")
    assert result.exit_code != 0
    message = _one_line(result.stderr)
    assert "clipsearch index" in message

    # A store that has a model but no images (an empty folder was indexed) says the same.
    (tmp_path / "empty").mkdir()
    assert index_json(tmp_path / "empty")["new"] == 0
    result = run_cli("query", "a dog on a beach")
    assert result.exit_code != 0
    assert "clipsearch index" in _one_line(result.stderr)


def test_status_fields(photos, home):
    empty = status_json()
    assert empty["model"] is None and empty["images"] == 0 and empty["vectors"] == 0
    assert empty["home"] == str(home.resolve())

    (photos / "bad.jpg").write_bytes(b"")
    index_json(photos)
    status = status_json()
    assert status["model"] == MODEL
    assert status["dim"] == 64
    assert status["images"] == PHOTOS_COUNT
    assert status["failed"] == 1
    assert status["vectors"] == PHOTOS_COUNT
    assert status["index_kind"] == "flat"
    assert status["home"] == str(home.resolve())
    assert status["catalog"] == catalog_url(home)  # no password in these URLs: shown as they are
    assert (home / "vectors.faiss").is_file()

    text = ok(run_cli("status")).stdout
    assert MODEL in text and "flat" in text and str(home.resolve()) in text


def test_database_url_overrides_the_catalog_location(photos, tmp_path, home):
    url = f"sqlite:///{tmp_path / 'elsewhere' / 'cat.db'}"
    env = {"DATABASE_URL": url}
    index_json(photos, env=env)
    status = json.loads(ok(run_cli("status", "--json", env=env)).stdout)
    assert status["catalog"] == url and status["images"] == PHOTOS_COUNT
    assert (tmp_path / "elsewhere" / "cat.db").is_file()
    assert not (home / "catalog.db").exists()


def test_a_home_that_is_a_file_is_a_one_line_error(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    for args in (("status",), ("query", "a dog")):
        result = run_cli("--home", blocker, *args)
        assert result.exit_code == 1
        assert (
            result.stderr.strip()
            == f"error: the store home {blocker} is a file, not a folder; pass --home with a folder"
        )


def test_odd_queries_get_answers_or_one_line_errors(indexed):
    long = query_json("dog " * 2500, "-k", "2")  # far past the context: truncated with a note, not an error
    assert len(long) == 2
    assert "end was ignored" in run_cli("query", "dog " * 2500, "-k", "1").stderr
    assert len(query_json("🐶 на пляже 海滩", "-k", "1")) == 1
    assert len(query_json("a\x07b\tc", "-k", "1")) == 1
    for k in ("0", "-5", "100000000"):
        result = run_cli("query", "a dog", "-k", k)
        assert result.exit_code == 1 and result.stderr.startswith("error: k must be between 1 and")
    blank = run_cli("query", "   ")
    assert blank.exit_code == 1 and "empty query" in blank.stderr


def test_a_read_only_home_answers_queries_and_refuses_indexing_in_one_line(indexed, home, tmp_path):
    if not str(catalog_url(home)).startswith("sqlite"):
        pytest.skip("a read-only home matters for SQLite stores")
    mount_point = tmp_path / "ro-home"
    mount_point.mkdir()
    # A read-only bind mount of the store (the tests run as root, for whom chmod does not bind).
    made = subprocess.run(["mount", "--bind", str(home), str(mount_point)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot make a bind mount here: {made.stderr.decode().strip()}")
    try:
        if subprocess.run(["mount", "-o", "remount,bind,ro", str(mount_point)], capture_output=True).returncode:
            pytest.skip("cannot remount read-only here")
        answered = ok(run_cli("--home", mount_point, "query", "a dog", "-k", "2", "--json"))
        assert len(json.loads(answered.stdout)["results"]) == 2
        result = run_cli("--home", mount_point, "index", tmp_path, "--model", MODEL)
        assert result.exit_code == 1
        line = result.stderr.strip()
        assert "\n" not in line and "read-only" in line and "Traceback" not in line
    finally:
        subprocess.run(["umount", str(mount_point)], capture_output=True)


def test_int8_text_encoder_is_opt_in_and_keeps_the_text_embeddings(indexed, monkeypatch):
    import numpy as np
    from conftest import pattern_image

    from clipsearch.models import load_encoder

    encoder = load_encoder(MODEL, device="cpu", runtime="torch")
    texts = ["a red square", "two blue circles on grey", "a photo of a dog on a beach", "ünïcödé 写真"]
    fp32, image = encoder.encode_texts(texts), encoder.encode_image(pattern_image(3))
    encoder.quantize_text_tower()
    assert np.sum(fp32 * encoder.encode_texts(texts), axis=1).min() >= 0.99
    assert np.allclose(encoder.encode_image(pattern_image(3)), image), "the image tower must stay as it was"

    plain = {h["id"]: h["score"] for h in query_json("a picture", "-k", "20")}  # all 20 images
    assert len(plain) == 20
    monkeypatch.setenv("CLIPSEARCH_TEXT_INT8", "1")
    quantized = query_json("a picture", "-k", "5")
    assert len(quantized) == 5
    _assert_sorted(quantized)
    # The flag took effect: the query vector changed, so every score moved a little ...
    assert all(h["score"] != plain[h["id"]] for h in quantized)
    # ... and the ranking kept its meaning.
    assert [h["score"] for h in quantized] == pytest.approx([plain[h["id"]] for h in quantized], abs=0.05)
