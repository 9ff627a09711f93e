"""Filter first, then rank: camera, file type, minimum size, folder and date, and --sort date."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import index_json, make_exif, ok, pattern_image, query_json, run_cli, save_image

import clipsearch.search.service as service_mod
from clipsearch.catalog import Catalog, ImageRecord
from clipsearch.search import SearchRequest, SearchService
from clipsearch.settings import Settings
from clipsearch.store import Store

pytestmark = pytest.mark.usefixtures("backend")


@pytest.fixture
def collection(tmp_path, home):
    """24 images: 6 Canon JPEGs (128x96), 6 Fujifilm JPEGs (64x48), 8 PNGs (32x32), 4 WebPs (200x50)."""
    folder = tmp_path / "photos"
    for i in range(6):
        exif = make_exif(taken=f"2020:0{i + 1}:01 12:00:00", make="Canon", model="Canon EOS 5D")
        save_image(pattern_image(100 + i, size=(128, 96)), folder / "canon" / f"c{i}.jpg", exif)
        exif = make_exif(taken=f"2021:0{i + 1}:01 12:00:00", make="FUJIFILM", model="X-T3")
        save_image(pattern_image(200 + i, size=(64, 48)), folder / "fuji" / f"f{i}.JPG", exif)
    for i in range(8):
        save_image(pattern_image(300 + i, size=(32, 32)), folder / "png" / f"p{i}.png")
    for i in range(4):
        save_image(pattern_image(400 + i, size=(200, 50)), folder / "webp" / f"w{i}.webp")
    assert index_json(folder)["new"] == 24
    return folder


def _names(hits) -> list[str]:
    return [Path(h["path"]).name for h in hits]


def _assert_filter_ranks_like_restriction(probe, predicate, *filter_args, k: int = 5):
    """The filtered ranking is the unfiltered ranking restricted to the matching images."""
    everything = query_json("--image", probe, "-k", "24")
    expected = [h["id"] for h in everything if predicate(h)]
    got = query_json("--image", probe, "-k", str(k), *filter_args)
    assert [h["id"] for h in got] == expected[:k], filter_args
    return got


def test_camera_type_and_size_filters(collection):
    probe = collection / "png" / "p1.png"
    hits = _assert_filter_ranks_like_restriction(probe, lambda h: h["camera"] == "Canon EOS 5D", "--camera", "canon")
    assert len(hits) == 5
    hits = _assert_filter_ranks_like_restriction(
        probe, lambda h: h["camera"] == "FUJIFILM X-T3", "--camera", "x-t3", k=10
    )
    assert len(hits) == 6  # all of them when fewer than k match
    assert query_json("--image", probe, "--camera", "Nikon") == []

    is_png = lambda h: h["path"].endswith(".png")  # noqa: E731
    hits = _assert_filter_ranks_like_restriction(probe, is_png, "--type", "png", k=8)
    assert len(hits) == 8 and hits[0]["path"] == str(probe.resolve())
    # jpeg covers .jpg in any case; types combine with commas or by repeating the option.
    assert len(query_json("--image", probe, "-k", "24", "--type", "jpeg")) == 12
    assert len(query_json("--image", probe, "-k", "24", "--type", "jpg,webp")) == 16
    assert len(query_json("--image", probe, "-k", "24", "--type", "png", "--type", "webp")) == 12

    wide = _assert_filter_ranks_like_restriction(probe, lambda h: h["width"] >= 100, "--min-width", "100", k=20)
    assert {h["width"] for h in wide} == {128, 200} and len(wide) == 10
    tall = query_json("--image", probe, "-k", "24", "--min-height", "90")
    assert {(h["width"], h["height"]) for h in tall} == {(128, 96)}
    both = query_json("--image", probe, "-k", "24", "--min-width", "60", "--camera", "fujifilm")
    assert len(both) == 6 and set(_names(both)) == {f"f{i}.JPG" for i in range(6)}


def test_bad_filters_are_one_line_errors(collection):
    for args, message in (
        (("--type", "raw"), "unknown file type 'raw': use one of jpeg, png"),
        (("--sort", "size"), "unknown sort 'size'"),
        (("--min-width", "-3"), "min-width must be 0 or more"),
    ):
        result = run_cli("query", "a photo", *args)
        assert result.exit_code == 1 and result.stdout == ""
        lines = [line for line in result.stderr.splitlines() if not line.startswith("warning:")]
        assert len(lines) == 1 and message in lines[0], result.stderr


def test_sort_by_date_orders_the_top_matches(collection):
    probe = collection / "canon" / "c2.jpg"
    by_score = query_json("--image", probe, "-k", "8")
    by_date = query_json("--image", probe, "-k", "8", "--sort", "date")
    assert {h["id"] for h in by_date} == {h["id"] for h in by_score}  # the same top matches
    dated = [h["taken_at"] for h in by_date if h["taken_at"]]
    assert dated == sorted(dated) and len(dated) >= 1
    undated = [h for h in by_date if not h["taken_at"]]
    assert by_date[len(dated) :] == undated  # undated ones last, still in score order
    assert [h["rank"] for h in undated] == sorted(h["rank"] for h in undated)
    newest = query_json("--image", probe, "-k", "8", "--sort", "date-desc")
    assert [h["taken_at"] for h in newest if h["taken_at"]] == dated[::-1]
    # Ranks stay the relevance ranks.
    assert {h["rank"] for h in by_date} == set(range(1, 9))


def test_folder_filter_accepts_relative_paths_and_says_when_it_is_empty(collection, monkeypatch, tmp_path):
    monkeypatch.chdir(collection)
    probe = collection / "png" / "p0.png"
    hits = query_json("--image", probe, "-k", "24", "--folder", "fuji")
    assert len(hits) == 6 and all(h["path"].startswith(str(collection / "fuji") + "/") for h in hits)
    assert len(query_json("--image", probe, "-k", "24", "--folder", "./webp/")) == 4

    (tmp_path / "unindexed").mkdir()
    result = ok(run_cli("query", "--image", probe, "--folder", tmp_path / "unindexed", "--json"))
    assert json.loads(result.stdout)["results"] == []
    assert f"note: no indexed images under {tmp_path / 'unindexed'}/" in result.stderr
    assert "clipsearch index" in result.stderr
    # A folder that has images, all filtered out by another filter, is not called empty.
    result = ok(run_cli("query", "--image", probe, "--folder", "fuji", "--camera", "canon"))
    assert result.stdout.strip() == "no results" and "no indexed images" not in result.stderr


# -- broad filters on an approximate index --------------------------------------------------------

DIM = 32


def _synthetic_store(tmp_path, n: int) -> tuple[Store, np.ndarray, np.ndarray]:
    """n clustered vectors; row i is i*10 px wide, on camera "cam{i % 5}"; an IVF-PQ index."""
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((n // 10, DIM))
    x = np.repeat(centres, 10, axis=0) + 0.3 * rng.standard_normal((n, DIM))
    vectors = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    settings = Settings(home=tmp_path / "store", flat_max=500)
    catalog = Catalog.open(settings.catalog_url)
    catalog.facts.bind_model("test:synthetic", "test:synthetic", DIM)
    records = [
        ImageRecord(
            path=f"/syn/{i:05d}.jpg",
            root="/syn",
            size=1,
            mtime_ns=i,
            content_hash=f"h{i}",
            status="ok",
            width=i,
            height=10,
            camera=f"cam{i % 5}",
            vector=v,
        )
        for i, v in enumerate(vectors)
    ]
    catalog.writes.write(records, {}, model_id="test:synthetic")
    ids, stored = catalog.vectors.fetch(range(1, n + 1))
    return Store(settings, catalog), ids, stored


def test_broad_filters_widen_the_approximate_search_and_fill_k(tmp_path, monkeypatch, backend):
    if not backend.startswith("sqlite"):
        pytest.skip("one backend is enough for the ranking logic")
    store, ids, stored = _synthetic_store(tmp_path, 3000)
    index, _ = store.vector_index()
    assert index.kind == "ivfpq"
    monkeypatch.setattr(service_mod, "EXACT_FILTER_MAX", 10)  # every filter below counts as broad
    service = SearchService(store, encoder=None, index=index)
    widths = {int(i): int(i) - 1 for i in ids}  # ids are 1-based, row i has width i
    for row, camera, min_width, k in ((17, "cam2", 1500, 50), (900, None, 2990, 30), (5, "cam4", 2900, 20)):
        q = stored[row]
        match = np.array(
            [
                (camera is None or f"cam{widths[int(i)] % 5}" == camera) and widths[int(i)] >= (min_width or 0)
                for i in ids
            ]
        )
        expected = [int(i) for i in ids[match][np.argsort(-(stored[match] @ q), kind="stable")][:k]]
        request = SearchRequest(image_id=int(ids[row]), k=k, camera=camera, min_width=min_width)
        result = service.search(request)
        got = [h.id for h in result.hits]
        if camera == "cam2":  # a tenth of the images match: a wider candidate pool finds k of them
            assert "exact_fallback_ms" not in result.timings
        assert len(got) == min(k, int(match.sum()))  # k whenever k match
        assert set(got) <= set(ids[match].tolist())  # only matching images
        # Exact scores over approximate candidates: the best ones exactly, most of the rest (the
        # index's own recall on these loose synthetic clusters, not the filter, bounds the tail).
        assert got[:3] == expected[:3]
        assert len(set(got) & set(expected)) >= 0.6 * len(expected)
