"""The vocabulary of the synthetic shapes world and how one scene is sampled.

A scene is 1-3 identical objects (one colour, one shape, one size) on a plain or
textured background. Keeping one colour+shape per image makes "a red circle" an
unambiguous query, so retrieval precision can be measured exactly.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "orange": (245, 130, 20),
    "yellow": (245, 220, 30),
    "green": (40, 170, 60),
    "blue": (30, 80, 220),
    "purple": (130, 50, 180),
    "pink": (245, 120, 190),
    "brown": (120, 70, 30),
    "black": (15, 15, 15),
    "white": (245, 245, 245),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "hexagon", "cross")
SIZES: dict[str, float] = {"small": 0.09, "medium": 0.14, "large": 0.2}  # radius / canvas side
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "white": (250, 250, 250),
    "black": (10, 10, 10),
    "gray": (150, 150, 150),
}
TEXTURES: tuple[str, ...] = ("plain", "striped", "checkered", "dotted")
# A 3x3 grid of named regions, used only when a scene holds one object.
POSITIONS: dict[str, tuple[int, int]] = {
    "top left": (0, 0),
    "top": (1, 0),
    "top right": (2, 0),
    "left": (0, 1),
    "centre": (1, 1),
    "right": (2, 1),
    "bottom left": (0, 2),
    "bottom": (1, 2),
    "bottom right": (2, 2),
}
# Colour+shape pairs that never appear in the train split: the held-out split uses
# them to measure whether the model composes colour and shape it learnt separately.
_HELDOUT_COMBOS: tuple[tuple[str, str], ...] = (
    ("red", "star"),
    ("blue", "triangle"),
    ("green", "square"),
    ("yellow", "circle"),
    ("purple", "hexagon"),
    ("orange", "cross"),
)
SPLITS = ("train", "heldout")
# Shape colours too close to a background to be seen on it.
_CLASHES = {("white", "white"), ("black", "black")}


def heldout_combinations() -> list[tuple[str, str]]:
    """(colour, shape) pairs that the train split never contains."""
    return list(_HELDOUT_COMBOS)


def seen_combinations() -> list[tuple[str, str]]:
    """(colour, shape) pairs that the train split does contain."""
    held = set(_HELDOUT_COMBOS)
    return [(c, s) for c in COLOURS for s in SHAPES if (c, s) not in held]


@dataclass(frozen=True)
class Scene:
    colour: str
    shape: str
    size: str
    count: int
    background: str
    texture: str
    position: str | None  # named region when count == 1
    centres: tuple[tuple[float, float], ...]  # object centres as fractions of the side
    angles: tuple[float, ...]  # degrees
    jitter: tuple[int, int, int]  # small per-image colour variation

    def to_dict(self) -> dict:
        return asdict(self)


def _pick_pair(rng: random.Random, split: str) -> tuple[str, str]:
    pairs = seen_combinations() if split == "train" else [(c, s) for c in COLOURS for s in SHAPES]
    return rng.choice(pairs)


def _pick_background(rng: random.Random, colour: str) -> str:
    options = [b for b in BACKGROUNDS if (colour, b) not in _CLASHES]
    return rng.choice(options)


def _region_centre(rng: random.Random, region: tuple[int, int], radius: float) -> tuple[float, float]:
    # Centre of a third of the canvas, jittered but kept fully inside the canvas.
    coords = []
    for cell in region:
        lo, hi = cell / 3 + 0.05, (cell + 1) / 3 - 0.05
        lo, hi = max(lo, radius + 0.02), min(hi, 1 - radius - 0.02)
        coords.append(rng.uniform(lo, hi) if lo < hi else (lo + hi) / 2)
    return coords[0], coords[1]


def _scatter(rng: random.Random, count: int, radius: float) -> list[tuple[float, float]]:
    """Random centres that do not overlap (best effort within a few tries)."""
    centres: list[tuple[float, float]] = []
    margin = radius + 0.02
    for _ in range(count):
        for _attempt in range(60):
            point = (rng.uniform(margin, 1 - margin), rng.uniform(margin, 1 - margin))
            if all((point[0] - x) ** 2 + (point[1] - y) ** 2 > (2.1 * radius) ** 2 for x, y in centres):
                break
        centres.append(point)
    return centres


def sample_scene(rng: random.Random, split: str) -> Scene:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    colour, shape = _pick_pair(rng, split)
    count = rng.choice((1, 1, 2, 3))
    # Three large objects rarely fit without overlapping, which would blur the count.
    size = rng.choice(list(SIZES) if count < 3 else ["small", "medium"])
    background = _pick_background(rng, colour)
    texture = rng.choice(TEXTURES)
    radius = SIZES[size]
    position = None
    if count == 1:
        position = rng.choice(list(POSITIONS))
        centres = [_region_centre(rng, POSITIONS[position], radius)]
    else:
        centres = _scatter(rng, count, radius)
    angles = tuple(0.0 if shape == "circle" else rng.uniform(-15, 15) for _ in centres)
    jitter = tuple(rng.randint(-15, 15) for _ in range(3))
    return Scene(colour, shape, size, count, background, texture, position, tuple(centres), angles, jitter)
