"""Combined queries: --plus/--minus terms with weights, example images, and the compact form."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import index_json, make_photos, ok, run_cli

from clipsearch.errors import QueryError
from clipsearch.models import bundled_models
from clipsearch.search import QueryTerm, parse_query, split_query, split_weight
from clipsearch.synthetic import generate_corpus, read_labels


def query_result(*args) -> dict:
    return json.loads(ok(run_cli("query", *args, "--json")).stdout)


def _ids(result: dict) -> list[int]:
    return [hit["id"] for hit in result["results"]]


# -- the compact form, parsed -----------------------------------------------------------------


def test_compact_form_splits_on_standalone_operators():
    assert split_query("golden retriever") == [(1, "golden retriever")]
    assert split_query("2:cat + ./pool.jpg - fruit") == [(1, "2:cat"), (1, "./pool.jpg"), (-1, "fruit")]
    assert split_query("- people + dogs") == [(-1, "people"), (1, "dogs")]
    assert split_query("cat \u2212 dog") == [(1, "cat"), (-1, "dog")]  # the typographic minus
    # Hyphens and signs inside words are text.
    assert split_query("a t-shirt, +1 and -2") == [(1, "a t-shirt, +1 and -2")]
    assert split_query("   ") == []
    for bad in ("a + + b", "a -", "+"):
        with pytest.raises(QueryError, match="no term after it"):
            split_query(bad)


def test_weights():
    assert split_weight("2:snow") == (2.0, "snow")
    assert split_weight("0.5 : people  at  a party") == (0.5, "people at a party")
    assert split_weight("snow") == (1.0, "snow")
    assert split_weight("12:30 meeting")[0] == 12.0  # a number then a colon is always a weight
    for bad, message in (("0:x", "positive"), ("2:", "empty query term"), ("  ", "empty query term")):
        with pytest.raises(QueryError, match=message):
            split_weight(bad)
    plus, minus = parse_query("2:cat + 0.5:dog - 3:fish")
    assert [(t.text, t.weight) for t in plus] == [("cat", 2.0), ("dog", 0.5)]
    assert [(t.text, t.weight) for t in minus] == [("fish", 3.0)]
    with pytest.raises(QueryError):
        QueryTerm(text="a", image_id=3)


# -- through the CLI, on random weights ---------------------------------------------------------


@pytest.fixture
def indexed(tmp_path, home):
    folder = tmp_path / "photos"
    make_photos(folder, 12, seed=3)
    assert index_json(folder)["new"] == 12
    return folder


def test_plus_and_minus_are_the_weighted_sum_of_normalised_terms(indexed):
    from clipsearch.models import load_encoder

    probe = indexed / "img004.jpg"
    result = query_result("a dog", "--plus", "2:snow", "--minus", "0.5:people", "--plus", probe, "-k", "12")
    assert result["terms"] == [
        {"kind": "text", "value": "a dog", "weight": 1.0},
        {"kind": "text", "value": "snow", "weight": 2.0},
        {"kind": "image", "value": str(probe), "weight": 1.0},
        {"kind": "text", "value": "people", "weight": -0.5},
    ]
    # The same ranking and scores, recomputed by hand from the stored vectors.
    encoder = load_encoder("random:cs-tiny", device="cpu")
    texts = encoder.encode_texts(["a dog", "snow", "people"])
    image = query_result("--image", probe, "-k", "1")["results"][0]
    assert image["path"] == str(probe.resolve())
    q = texts[0] + 2 * texts[1] - 0.5 * texts[2]
    everything = query_result("--image", probe, "-k", "12")["results"]
    from clipsearch.settings import Settings
    from clipsearch.store import Store

    store = Store.open(Settings.from_env())
    try:
        ids, vectors = store.catalog.vectors.fetch([h["id"] for h in everything])
        own = dict(zip(ids.tolist(), vectors, strict=True))[image["id"]]
        q = q + own / np.linalg.norm(own)
        q /= np.linalg.norm(q)
        expected = sorted(zip((vectors @ q).tolist(), ids.tolist(), strict=True), reverse=True)
    finally:
        store.close()
    assert _ids(result) == [i for _, i in expected]
    assert np.allclose([h["score"] for h in result["results"]], [s for s, _ in expected], atol=2e-3)


def test_compact_form_equals_the_options(indexed):
    probe = indexed / "img008.png"
    compact = query_result(f"2:a red pattern + {probe} - 0.5:green", "-k", "8")
    options = query_result("2:a red pattern", "--plus", probe, "--minus", "0.5:green", "-k", "8")
    assert _ids(compact) == _ids(options)
    assert [t["weight"] for t in compact["terms"]] == [2.0, 1.0, -0.5]
    assert [t["kind"] for t in compact["terms"]] == ["text", "image", "text"]
    # A plain query is one text term, as before.
    assert query_result("a red pattern", "-k", "1")["terms"] == [
        {"kind": "text", "value": "a red pattern", "weight": 1.0}
    ]
    # Text output names the terms on stderr and keeps stdout to rank, score, path.
    shown = ok(run_cli("query", "a red pattern - green", "-k", "2"))
    assert "query: a red pattern - green" in shown.stderr
    assert len(shown.stdout.strip().splitlines()) == 2


def test_an_image_term_ranks_like_an_example_image(indexed):
    probe = indexed / "img002.png"
    assert _ids(query_result("--plus", probe, "-k", "5")) == _ids(query_result("--image", probe, "-k", "5"))
    # Subtracting an example pushes it to the bottom.
    pushed = query_result("a photo", "--minus", f"3:{probe}", "-k", "12")["results"]
    assert pushed[-1]["path"] == str(probe.resolve())


def test_bad_terms_are_one_line_errors(indexed, tmp_path):
    cases = [
        (("a dog", "--minus", "a dog"), "cancel each other out"),
        (("--minus", "people"), "only has terms to exclude"),
        (("a dog", "--plus", "0:snow"), "must be a positive number"),
        (("a dog", "--plus", "2:"), "empty query term"),
        (("a dog + ",), "no term after it"),
        (("a dog", "--plus", tmp_path / "missing.jpg"), "no such image file"),
    ]
    junk = tmp_path / "junk.jpg"
    junk.write_text("not a picture")
    cases.append((("a dog", "--plus", junk), "junk.jpg"))
    for args, message in cases:
        result = run_cli("query", *args)
        assert result.exit_code == 1, (args, result.stdout)
        lines = [line for line in result.stderr.splitlines() if not line.startswith("warning:")]
        assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], (args, result.stderr)


def test_a_word_that_is_also_a_file_name_stays_text(indexed, monkeypatch):
    monkeypatch.chdir(indexed)
    (indexed / "snow").write_bytes(b"not a picture, and not asked for as one")
    assert query_result("a dog", "--plus", "snow", "-k", "1")["terms"][1]["kind"] == "text"


# -- on the bundled model: terms move concepts in and out of the results --------------------------

_SEED = 4243  # not a seed training, the model card, the demo or other tests use
_N = 200


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    if "shapes-mini" not in bundled_models():
        pytest.skip("the bundled model is not installed")
    root = tmp_path_factory.mktemp("shapes")
    generate_corpus(root / "photos", _N, seed=_SEED, split="heldout")
    ok(run_cli("--home", root / "store", "index", root / "photos", "--model", "shapes-mini", "--device", "cpu"))
    return root, read_labels(root / "photos")


def _top(shapes, *args) -> list[dict]:
    root, labels = shapes
    result = json.loads(ok(run_cli("--home", root / "store", "query", *args, "-k", "10", "--json")).stdout)
    return [labels[Path(hit["path"]).name] for hit in result["results"]]


@pytest.mark.parametrize("base, colour", [("circles", "red"), ("squares", "red"), ("squares", "blue")])
def test_plus_brings_a_colour_in_and_minus_takes_it_out(shapes, base, colour):
    shape = base[:-1]
    plain = _top(shapes, base)
    more = _top(shapes, base, "--plus", colour)
    fewer = _top(shapes, base, "--minus", colour)

    def count(top):
        return sum(scene["colour"] == colour for scene in top)

    assert count(more) >= count(plain) + 3 and count(more) >= 4, (count(plain), count(more))
    assert count(fewer) <= min(count(plain), 1), (count(plain), count(fewer))
    # Taking the colour out keeps the shape asked for.
    assert sum(scene["shape"] == shape for scene in fewer) >= 8
    assert _top(shapes, f"{base} - {colour}") == fewer


@pytest.mark.parametrize("base, shape", [("a red shape", "circle"), ("a blue shape", "star")])
def test_plus_brings_a_shape_in_and_minus_keeps_it_out(shapes, base, shape):
    plain = _top(shapes, base)
    more = _top(shapes, base, "--plus", shape)
    fewer = _top(shapes, base, "--minus", shape)
    assert sum(s["shape"] == shape for s in more) >= sum(s["shape"] == shape for s in plain) + 4
    assert sum(s["shape"] == shape for s in fewer) == 0
