"""Collapsing near-duplicates among search results (SearchRequest.collapse): planted resized,
re-encoded and exact copies fold into their best member, distinct pictures stay apart; the same
through `clipsearch query --collapse-duplicates`, /api/search?collapse=true and the web page.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from apiserver import start as start_server
from conftest import distinct_scenes, ok, run_cli
from PIL import Image
from streamlit.testing.v1 import AppTest

from clipsearch.models import bundled_models
from clipsearch.synthetic.draw import render

pytestmark = pytest.mark.skipif("shapes-mini" not in bundled_models(), reason="the bundled model is not installed")

APP = str(Path(__file__).resolve().parents[1] / "ui" / "app.py")
N_DISTINCT = 8
# Copies of orig0.png; the original (256x256, the most pixels; its exact copy's path sorts first) is kept.
COPIES = ("copies/orig0.png", "small0.png", "reencoded0.jpg")
GROUP = {"orig0.png", *COPIES}


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> tuple[Path, Path, str]:
    """Eight distinct pictures, three copies of the first; returns (photos, home, a query for the first)."""
    root = tmp_path_factory.mktemp("collapse")
    photos, home = root / "photos", root / "home"
    (photos / "copies").mkdir(parents=True)
    scenes = distinct_scenes(N_DISTINCT)
    for i, scene in enumerate(scenes):
        render(scene, 256).save(photos / f"orig{i}.png")
    original = Image.open(photos / "orig0.png")
    original.resize((128, 128), Image.Resampling.BICUBIC).save(photos / "small0.png")
    # (At full size a JPEG of flat shapes outweighs the PNG, and the biggest file would be kept.)
    original.resize((192, 192), Image.Resampling.BICUBIC).save(photos / "reencoded0.jpg", quality=40)
    shutil.copy(photos / "orig0.png", photos / "copies" / "orig0.png")
    ok(run_cli("--home", home, "index", photos, "--model", "shapes-mini", "--device", "cpu"))
    return photos, home, f"a {scenes[0].colour} {scenes[0].shape}"


def _names(photos: Path, results: list[dict]) -> list[str]:
    return [str(Path(hit["path"]).relative_to(photos)) for hit in results]


def _query(home: Path, text: str, *args: str) -> list[dict]:
    result = ok(run_cli("--home", home, "query", text, "--json", "--no-server", *args))
    return json.loads(result.stdout)["results"]


def test_query_collapses_planted_copies_into_the_best_member(planted):
    photos, home, text = planted
    plain = _names(photos, _query(home, text, "-k", "6"))
    assert set(plain[:4]) >= GROUP, plain  # uncollapsed, the four copies rank first, one per result

    hits = _query(home, text, "-k", "6", "--collapse-duplicates")
    names = _names(photos, hits)
    assert len(names) == 6 and len(set(names)) == 6
    first = hits[0]
    assert names[0] == "copies/orig0.png" and (first["width"], first["height"]) == (256, 256)
    assert set(_names(photos, first["duplicates"])) == GROUP - {"copies/orig0.png"}
    assert all(copy["score"] > 0 and copy["rank"] == 1 for copy in first["duplicates"])
    # Distinct pictures are results of their own, with nothing folded into them.
    for name, hit in zip(names[1:], hits[1:], strict=True):
        assert name.startswith("orig") and "duplicates" not in hit, name
    assert [hit["rank"] for hit in hits] == list(range(1, 7))

    # Paging counts groups: the second page starts after the group, never inside it.
    second = _names(photos, _query(home, text, "-k", "3", "--offset", "3", "--collapse-duplicates"))
    assert second == names[3:6]

    shown = ok(run_cli("--home", home, "query", text, "-k", "2", "--no-server", "--collapse-duplicates")).stdout
    assert "+3 near-duplicates:" in shown and str(photos / "small0.png") in shown


def test_the_http_api_collapses_too(planted):
    photos, home, text = planted
    server = start_server(home)
    try:
        with server.client() as client:
            answer = client.get("/api/search", params={"q": text, "k": 4, "collapse": "true"}).json()
            plain = client.get("/api/search", params={"q": text, "k": 4}).json()
    finally:
        server.stop()
    hits = answer["results"]
    assert _names(photos, hits)[0] == "copies/orig0.png"
    assert set(_names(photos, hits[0]["duplicates"])) == GROUP - {"copies/orig0.png"}
    assert not any("duplicates" in hit for hit in plain["results"])
    assert set(_names(photos, plain["results"])) == GROUP


def _cards(at: AppTest) -> list[str]:
    return [t.value.split(" · ", 1)[1] for t in at.text if " · " in t.value and t.value[:1].isdigit()]


def test_the_page_collapses_a_group_and_expands_it(planted, monkeypatch):
    photos, home, text = planted
    monkeypatch.setenv("CLIPSEARCH_HOME", str(home))
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["q"] = text
    at.query_params["n"] = "12"
    at.query_params["dups"] = "collapse"
    at.run()
    assert not at.exception, at.exception
    assert at.toggle(key="collapse").value is True
    cards = _cards(at)
    assert len(cards) == N_DISTINCT and cards[0] == "orig0.png" and cards.count("orig0.png") == 1
    assert not {"small0.png", "reencoded0.jpg"} & set(cards)
    groups = [e for e in at.expander if e.label.startswith("+")]
    assert [e.label for e in groups] == ["+3 near-duplicates"]  # distinct pictures are not grouped
    inside = [t.value for t in groups[0].text]
    assert inside[0] == "shown: 256x256, " + inside[0].split(", ", 1)[1]
    assert {line.split(" · ")[0] for line in inside[1:]} == {"orig0.png", "small0.png", "reencoded0.jpg"}

    at.toggle(key="collapse").set_value(False).run()  # off: every copy is a result of its own
    assert not at.exception, at.exception
    assert "dups" not in at.query_params
    assert {"small0.png", "reencoded0.jpg"} <= set(_cards(at))
    assert not [e for e in at.expander if e.label.startswith("+")]
