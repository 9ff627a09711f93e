"""The synthetic shapes world: determinism, splits, and captions that agree with the pictures."""

from __future__ import annotations

import random

import numpy as np
import pytest
from PIL import Image

from clipsearch.synthetic import (
    COLOURS,
    SHAPES,
    generate_corpus,
    heldout_combinations,
    make_item,
    read_labels,
    render,
    sample_scene,
    seen_combinations,
)
from clipsearch.synthetic.draw import _polygon


def _files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_same_seed_same_corpus_whatever_the_workers(tmp_path):
    generate_corpus(tmp_path / "a", 40, seed=3, workers=1)
    generate_corpus(tmp_path / "b", 40, seed=3, workers=2)
    assert _files(tmp_path / "a") == _files(tmp_path / "b")


def test_different_seed_or_split_differs():
    assert make_item(3, "train", 0) != make_item(4, "train", 0)
    assert make_item(3, "train", 0) != make_item(3, "heldout", 0)


def test_corpus_layout(tmp_path):
    generate_corpus(tmp_path, 12, seed=1, size=96)
    pngs = sorted(tmp_path.glob("*.png"))
    assert [p.name for p in pngs] == [f"{i:05d}.png" for i in range(12)]
    for png in pngs:
        assert Image.open(png).size == (96, 96)
        lines = png.with_suffix(".txt").read_text().splitlines()
        assert 1 <= len(lines) <= 3 and all(lines)
    assert set(read_labels(tmp_path)) == {p.name for p in pngs}


def test_train_split_never_contains_heldout_combinations():
    held = set(heldout_combinations())
    pairs = {(s.colour, s.shape) for s in (sample_scene(random.Random(i), "train") for i in range(3000))}
    assert not pairs & held
    assert pairs == set(seen_combinations())
    assert len(held) >= 5 and held.isdisjoint(seen_combinations())


def test_heldout_split_covers_every_pair():
    pairs = {(s.colour, s.shape) for s in (sample_scene(random.Random(i), "heldout") for i in range(4000))}
    assert pairs == {(c, s) for c in COLOURS for s in SHAPES}


def test_unknown_split_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown split"):
        generate_corpus(tmp_path, 2, seed=0, split="test")


def _says_the_count(text: str, scene) -> bool:
    """A count word, or (v2) each object named, or "another" / "two more" after the first."""
    number = {1: ("a ", "one "), 2: ("two ",), 3: ("three ",)}[scene.count]
    if any(f" {n}" in f" {text}" for n in number):
        return True
    named = sum(w == scene.shape for w in text.replace(",", "").split())
    follow = {2: "another", 3: "two more"}.get(scene.count)
    return named == scene.count or bool(follow and f" {follow} " in text)


@pytest.mark.parametrize("style", ["v1", "v2"])
@pytest.mark.parametrize("index", range(60))
def test_captions_agree_with_the_scene(index, style):
    scene, texts = make_item(5, "heldout", index, style)
    for text in texts:
        words = text.split()
        assert any(w.startswith(scene.shape) for w in words), text
        assert not any(w.startswith(s) for s in SHAPES if s != scene.shape for w in words), text
        assert not any(c in words for c in COLOURS if c not in (scene.colour, scene.background)), text
        assert _says_the_count(text, scene) or (style == "v2" and scene.count > 1), text  # v2 may name one of them
        if scene.count > 1:
            assert "corner" not in text and " centre" not in text
        if style == "v1":  # v1 always leads with the count word
            assert any(f" {n}" in f" {text}" for n in {1: ("a ", "one "), 2: ("two ",), 3: ("three ",)}[scene.count])


def test_v2_captions_name_single_objects_in_multi_object_scenes():
    """The fine-tune's point: "a red circle" also describes a picture of two or three red circles."""
    texts = [
        (scene, t) for i in range(400) for scene, ts in [make_item(0, "train", i, "v2")] if scene.count > 1 for t in ts
    ]
    named = [t for scene, t in texts if f"a {scene.colour} {scene.shape}" in t]
    assert 0.2 < len(named) / len(texts) < 0.7
    assert make_item(0, "train", 3, "v1")[0] == make_item(0, "train", 3, "v2")[0]  # same picture either way
    with pytest.raises(ValueError, match="caption style"):
        make_item(0, "train", 3, "v3")


def test_some_captions_leave_colour_out():
    texts = [t for i in range(300) for t in make_item(0, "train", i)[1]]
    without = [t for t, i in zip(texts, range(len(texts)), strict=False) if not any(c in t.split() for c in COLOURS)]
    assert 0.05 < len(without) / len(texts) < 0.3


def test_rendered_object_has_its_colour_and_lies_on_the_canvas():
    rng = random.Random(7)
    for _ in range(30):
        scene = sample_scene(rng, "heldout")
        pixels = np.asarray(render(scene, 128)).reshape(-1, 3).astype(int)
        target = np.array(COLOURS[scene.colour]) + np.array(scene.jitter)
        close = (np.abs(pixels - np.clip(target, 0, 255)).max(axis=1) <= 2).mean()
        assert close > 0.01, scene  # the objects cover a visible part of the picture


def test_single_object_sits_in_its_named_region():
    rng = random.Random(11)
    for _ in range(200):
        scene = sample_scene(rng, "heldout")
        if scene.position is None:
            continue
        x, y = scene.centres[0]
        if "left" in scene.position:
            assert x < 1 / 3
        if "right" in scene.position:
            assert x > 2 / 3
        if scene.position.startswith("top"):
            assert y < 1 / 3
        if scene.position.startswith("bottom"):
            assert y > 2 / 3


def test_polygons_are_centred_shapes():
    for shape in SHAPES:
        if shape == "circle":
            continue
        points = np.array(_polygon(shape, 0.0, 0.0, 1.0, 0.0))
        assert np.abs(points).max() <= 1.3
        assert np.abs(points.mean(axis=0)).max() < 0.3
