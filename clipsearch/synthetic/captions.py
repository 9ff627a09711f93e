"""Varied English captions for a Scene.

Each scene gets several phrasings; parts (size, colour, background, position) are
dropped at random so the text tower learns each word on its own. Colour is left out
of ~15% of captions, which in an earlier experiment helped shape to be learnt.
"""

from __future__ import annotations

import random

from clipsearch.synthetic.world import Scene

COLOURLESS_RATE = 0.15
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


def caption(scene: Scene, rng: random.Random) -> str:
    """One caption for the scene, chosen among several templates."""
    with_colour = rng.random() >= COLOURLESS_RATE
    if with_colour and rng.random() < 0.1:
        noun = _trailing_colour_phrase(scene, rng)
    else:
        noun = _noun_phrase(scene, rng, with_colour)
    extras = []
    if scene.position is not None and rng.random() < 0.5:
        extras.append(_POSITION_PHRASES[scene.position])
    if rng.random() < 0.5:
        extras.append(rng.choice(("on", "against")) + " " + _background_phrase(scene))
    text = " ".join([noun] + extras)
    if rng.random() < 0.15:
        text = rng.choice(("a picture of ", "an image of ", "a drawing of ")) + text
    return text


def captions(scene: Scene, rng: random.Random, n: int = 3) -> list[str]:
    """n distinct-ish captions; the first one is the image's canonical caption."""
    out: list[str] = []
    for _ in range(n * 4):
        text = caption(scene, rng)
        if text not in out:
            out.append(text)
        if len(out) == n:
            break
    return out
