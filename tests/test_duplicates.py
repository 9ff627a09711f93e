"""`clipsearch duplicates`: planted copies (resized, re-encoded, cropped 5%, exact) are grouped,
distinct pictures are not; past the flat limit the IVF-PQ index finds the same groups."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import distinct_scenes, ok, run_cli
from PIL import Image

from clipsearch.catalog import Catalog, ImageRecord
from clipsearch.models import bundled_models
from clipsearch.search.duplicates import find_duplicates
from clipsearch.settings import Settings
from clipsearch.store import Store
from clipsearch.synthetic.draw import render


def _crop(img: Image.Image, fraction: float = 0.05) -> Image.Image:
    w, h = img.size
    dx, dy = round(w * fraction / 2), round(h * fraction / 2)
    return img.crop((dx, dy, w - dx, h - dy))


@pytest.mark.skipif("shapes-mini" not in bundled_models(), reason="the bundled model is not installed")
def test_planted_copies_are_grouped_and_distinct_pictures_are_not(tmp_path, home):
    photos = tmp_path / "photos"
    photos.mkdir()
    originals = [render(scene, 256) for scene in distinct_scenes(10)]
    for i, img in enumerate(originals):
        img.save(photos / f"orig{i}.png")
    planted = {}
    for i in range(3):  # three originals, each with four kinds of copy
        img = originals[i]
        img.resize((128, 128), Image.Resampling.BICUBIC).save(photos / f"small{i}.png")
        img.save(photos / f"reencoded{i}.jpg", quality=40)
        _crop(img).save(photos / f"cropped{i}.png")
        (photos / "copies").mkdir(exist_ok=True)
        shutil.copy(photos / f"orig{i}.png", photos / "copies" / f"orig{i}.png")
        planted[i] = {f"orig{i}.png", f"small{i}.png", f"reencoded{i}.jpg", f"cropped{i}.png", f"copies/orig{i}.png"}
    ok(run_cli("index", photos, "--model", "shapes-mini", "--device", "cpu"))

    groups = json.loads(ok(run_cli("duplicates", "--json")).stdout)
    found = [{str(Path(img["path"]).relative_to(photos)) for img in g["images"]} for g in groups]
    assert sorted(found, key=sorted) == sorted(planted.values(), key=sorted)
    for group in groups:
        assert group["count"] == 5 and group["bytes"] == sum(img["size"] for img in group["images"])
        first, rest = group["images"][0], group["images"][1:]
        assert (first["width"], first["height"]) == (256, 256) and first["score"] == pytest.approx(1.0, abs=1e-3)
        assert all(img["score"] >= 0.95 for img in rest)

    text = ok(run_cli("duplicates")).stdout
    assert text.startswith("3 groups of near-duplicates (12 images beyond the first of each group)")
    assert "group 1: 5 images" in text and str(photos / "cropped0.png") in text
    # A stricter threshold splits off the least similar copies; a threshold outside (0, 1] is refused.
    strict = json.loads(ok(run_cli("duplicates", "--threshold", "0.9999", "--json")).stdout)
    assert sum(g["count"] for g in strict) < 15
    bad = run_cli("duplicates", "--threshold", "1.5")
    assert bad.exit_code == 1 and "threshold" in bad.stderr


def test_no_duplicates_and_an_empty_store(tmp_path, home):
    result = run_cli("duplicates")
    assert result.exit_code == 1 and "clipsearch index" in result.stderr


def test_the_approximate_index_finds_the_planted_groups(tmp_path):
    """Past the flat limit the IVF-PQ index answers: the same groups as an exact all-pairs scan."""
    rng = np.random.default_rng(5)
    dim, n, groups = 64, 4000, 40
    base = rng.standard_normal((n, dim)).astype(np.float32)
    for g in range(groups):  # rows 100g .. 100g+3 are one picture and three close copies
        base[100 * g + 1 : 100 * g + 4] = base[100 * g] + 0.12 * rng.standard_normal((3, dim))
    vectors = base / np.linalg.norm(base, axis=1, keepdims=True)
    settings = Settings(home=tmp_path / "store", flat_max=1000)
    catalog = Catalog.open(settings.catalog_url)
    catalog.facts.bind_model("test:synthetic", "test:synthetic", dim)
    records = [
        ImageRecord(f"/syn/{i:05d}.jpg", "/syn", 1000 + i, i, f"h{i}", "ok", width=10, height=10, vector=v)
        for i, v in enumerate(vectors)
    ]
    catalog.writes.write(records, {}, model_id="test:synthetic")
    store = Store(settings, catalog)
    index, _ = store.vector_index()
    assert index.kind == "ivfpq"
    ids, stored = catalog.vectors.fetch(range(1, n + 1))
    sims = stored @ stored.T
    np.fill_diagonal(sims, 0)
    close = sims >= 0.95
    truth = {frozenset(ids[row].tolist()) | {int(i)} for i, row in zip(ids, close, strict=True) if row.any()}
    found = {frozenset(m.id for m in g.members) for g in find_duplicates(catalog, index, 0.95)}
    assert len(truth) == groups and found == truth
    catalog.close()
