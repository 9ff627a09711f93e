"""Varied English captions for a Scene.

Each scene gets several phrasings; parts (size, colour, background, position) are
dropped at random so the text tower learns each word on its own. Colour is left out
of ~15% of captions, which in an earlier experiment helped shape to be learnt.

Two styles. "v1" (the first training run) always leads with the count ("two red
circles"), so a model trained on it learns "a red circle" as *one* red circle and ranks
single circles of other colours above two or three red ones. "v2" (the fine-tune) also
names every object of a multi-object scene ("a red circle and another red circle", "a red
circle, a red circle and a red circle"), leaves the count out or trailing ("red circles,
three of them"), or names just one of them ("a red circle", true of the picture, as a person
might caption it), so "a red circle" is learnt as present in those scenes too. "one red circle"
and the count words still say how many.
"""

from __future__ import annotations

import random

from clipsearch.synthetic.world import Scene

COLOURLESS_RATE = 0.15
CAPTION_STYLES = ("v1", "v2")
DEFAULT_STYLE = "v2"
# v2, scenes of 2-3 objects: how often the caption leads with the count as v1 does, and how often
# it names just one object ("a red circle"); the rest name each object or put the count after the noun.
COUNT_FIRST_RATE = 0.25
ONE_OF_THEM_RATE = 0.25
_COUNT_WORDS = {1: ("a", "one"), 2: ("two",), 3: ("three",)}
_POSITION_PHRASES = {
    "top left": "in the top left corner",
    "top": "at the top",
    "top right": "in the top right corner",
    "left": "on the left",
    "centre": "in the centre",
    "right": "on the right",
    "bottom left": "in the bottom left corner",
    "bottom": "at the bottom",
    "bottom right": "in the bottom right corner",
}


def plural(shape: str, count: int) -> str:
    if count == 1:
        return shape
    return shape + ("es" if shape.endswith(("x", "ss", "s")) else "s")


def _background_phrase(scene: Scene) -> str:
    if scene.texture == "plain":
        return f"a {scene.background} background"
    return f"a {scene.texture} {scene.background} background"


def _noun_phrase(scene: Scene, rng: random.Random, with_colour: bool) -> str:
    words = [rng.choice(_COUNT_WORDS[scene.count])]
    if rng.random() < 0.6:
        words.append(scene.size)
    if with_colour:
        words.append(scene.colour)
    words.append(plural(scene.shape, scene.count))
    return " ".join(words)


def _trailing_colour_phrase(scene: Scene, rng: random.Random) -> str:
    count = rng.choice(_COUNT_WORDS[scene.count])
    noun = plural(scene.shape, scene.count)
    return f"{count} {noun} coloured {scene.colour}" if scene.count == 1 else f"{count} {noun}, all {scene.colour}"


def _object(scene: Scene, size: bool, with_colour: bool) -> str:
    words = ["a"] + ([scene.size] if size else []) + ([scene.colour] if with_colour else []) + [scene.shape]
    return " ".join(words)


def _each_object_phrase(scene: Scene, rng: random.Random, with_colour: bool) -> str:
    """A multi-object scene without a leading count: every object named, or the count after the noun."""
    size = rng.random() < 0.4
    one = _object(scene, size, with_colour)
    rest = _object(scene, size, with_colour)[2:]  # without its article
    many = plural(rest, scene.count)
    others = {2: "another", 3: "two more"}[scene.count]
    number = {2: "two", 3: "three"}[scene.count]
    options = [
        " and ".join([one] * scene.count) if scene.count == 2 else f"{one}, {one} and {one}",
        f"{one} and {others} {rest if scene.count == 2 else many}",
        f"{many}, {number} of them",
        f"{one} next to {others} {rest if scene.count == 2 else many}",
    ]
    return rng.choice(options)


def _noun(scene: Scene, rng: random.Random, with_colour: bool, style: str) -> str:
    if style == "v2" and scene.count > 1:
        draw = rng.random()
        if draw >= COUNT_FIRST_RATE + ONE_OF_THEM_RATE:
            return _each_object_phrase(scene, rng, with_colour)
        if draw >= COUNT_FIRST_RATE:
            return _object(scene, rng.random() < 0.6, with_colour)
    if with_colour and rng.random() < 0.1:
        return _trailing_colour_phrase(scene, rng)
    return _noun_phrase(scene, rng, with_colour)


def caption(scene: Scene, rng: random.Random, style: str = DEFAULT_STYLE) -> str:
    """One caption for the scene, chosen among several templates of a style (see the module doc)."""
    if style not in CAPTION_STYLES:
        raise ValueError(f"unknown caption style {style!r}; use one of {', '.join(CAPTION_STYLES)}")
    with_colour = rng.random() >= COLOURLESS_RATE
    noun = _noun(scene, rng, with_colour, style)
    extras = []
    if scene.position is not None and rng.random() < 0.5:
        extras.append(_POSITION_PHRASES[scene.position])
    if rng.random() < 0.5:
        extras.append(rng.choice(("on", "against")) + " " + _background_phrase(scene))
    text = " ".join([noun] + extras)
    if rng.random() < 0.15:
        text = rng.choice(("a picture of ", "an image of ", "a drawing of ")) + text
    return text


def captions(scene: Scene, rng: random.Random, n: int = 3, style: str = DEFAULT_STYLE) -> list[str]:
    """n distinct-ish captions; the first one is the image's canonical caption."""
    out: list[str] = []
    for _ in range(n * 4):
        text = caption(scene, rng, style)
        if text not in out:
            out.append(text)
        if len(out) == n:
            break
    return out
