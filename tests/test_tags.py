"""Zero-shot tags: `clipsearch tag`, `clipsearch tags`, `query --tag`, and tagging by the next index run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy
from conftest import index_json, make_photos, ok, run_cli

from clipsearch.models import bundled_models
from clipsearch.synthetic import SHAPES, generate_corpus, read_labels

_SEED = 5152  # not a seed training, the model card, the demo or other tests use
_N = 300


def _tag_rows(home: Path) -> dict[str, list[tuple[str, float]]]:
    """image path -> [(label, score)] straight from the catalog's tables."""
    engine = sqlalchemy.create_engine(f"sqlite:///{home / 'catalog.db'}")
    try:
        with engine.connect() as con:
            rows = con.execute(
                sqlalchemy.text("SELECT i.path, t.label, t.score FROM image_tags t JOIN images i ON i.id = t.image_id")
            ).all()
    finally:
        engine.dispose()
    found: dict[str, list[tuple[str, float]]] = {}
    for path, label, score in rows:
        found.setdefault(path, []).append((label, score))
    return found


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    if "shapes-mini" not in bundled_models():
        pytest.skip("the bundled model is not installed")
    root = tmp_path_factory.mktemp("tags")
    generate_corpus(root / "photos", _N, seed=_SEED, split="heldout")
    ok(run_cli("--home", root / "home", "index", root / "photos", "--model", "shapes-mini", "--device", "cpu"))
    return root


def test_tagging_the_held_out_set_by_shape_is_accurate(shapes):
    home = shapes / "home"
    result = json.loads(ok(run_cli("--home", home, "tag", "--labels", ",".join(SHAPES), "--json")).stdout)
    assert result["labels"] == list(SHAPES) and result["images"] == _N and result["threshold"] == 0.5
    labels = read_labels(shapes / "photos")
    tags = _tag_rows(home)
    assert sum(result["counts"].values()) == sum(len(t) for t in tags.values())
    # Threshold 0.5 of a softmax: at most one tag per image, with its probability as the score.
    assert all(len(t) == 1 and 0.5 <= t[0][1] <= 1.0 for t in tags.values())
    correct = sum(labels[Path(p).name]["shape"] == t[0][0] for p, t in tags.items())
    assert len(tags) >= 0.95 * _N
    assert correct / _N >= 0.9, (correct, len(tags))  # docs/model-card.md: 0.932 on 600 held-out images

    # `query --tag` keeps only images with that tag, ranked by the query.
    stars = json.loads(
        ok(run_cli("--home", home, "query", "a red shape", "--tag", "star", "-k", "300", "--json")).stdout
    )
    tagged_stars = {p for p, t in tags.items() if t[0][0] == "star"}
    assert {h["path"] for h in stars["results"]} == tagged_stars and result["counts"]["star"] == len(tagged_stars)

    listed = ok(run_cli("--home", home, "tags")).stdout
    assert f"{_N} images, 6 labels" in listed
    assert "  star " in listed and str(result["counts"]["star"]) in listed
    assert json.loads(ok(run_cli("--home", home, "tags", "--json")).stdout)["counts"] == result["counts"]


def test_new_images_are_tagged_by_the_next_index_run(tmp_path, home):
    photos = tmp_path / "photos"
    make_photos(photos, 6, seed=1)
    index_json(photos)
    assert "no tags yet" in ok(run_cli("tags")).stdout
    first = json.loads(ok(run_cli("tag", "--labels", "red, green ,blue", "--threshold", "0", "--json")).stdout)
    assert first["labels"] == ["red", "green", "blue"] and first["threshold"] == 0.0
    assert sum(first["counts"].values()) == 18  # threshold 0: every label on every image
    make_photos(photos, 10, seed=1)  # four more
    summary = index_json(photos)
    assert (summary["new"], summary["tagged"]) == (4, 4)
    assert len(_tag_rows(home)) == 10 and json.loads(ok(run_cli("tags", "--json")).stdout)["counts"]["red"] == 10
    # An unchanged re-index tags nothing; a new label set replaces the old tags.
    assert index_json(photos)["tagged"] == 0
    ok(run_cli("tag", "--labels", "cat,dog", "--prompt", "a photo of a {}", "--threshold", "0"))
    assert {label for tags in _tag_rows(home).values() for label, _ in tags} == {"cat", "dog"}
    assert "'a photo of a {}'" in ok(run_cli("tags")).stdout


def test_bad_tag_requests_are_one_line_errors(tmp_path, home):
    result = run_cli("tag", "--labels", "a,b")
    assert result.exit_code == 1 and "clipsearch index" in result.stderr  # an empty store
    make_photos(tmp_path / "photos", 3)
    index_json(tmp_path / "photos")
    for args, message in (
        (("--labels", "beach"), "at least two labels"),
        (("--labels", "a,b", "--prompt", "a photo"), "needs exactly one {}"),
        (("--labels", "a,b", "--threshold", "1.5"), "between 0 and 1"),
        (("--labels", "a,b", "--model", "random:ViT-B-32"), "this store was indexed with model"),
    ):
        result = run_cli("tag", *args)
        lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert result.exit_code == 1 and len(lines) == 1 and message in lines[0], (args, result.stderr)
