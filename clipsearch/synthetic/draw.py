"""Rendering a Scene with Pillow.

Scenes are drawn at twice the output size and downsampled, which anti-aliases the
edges so shapes look the same at every size rather than as jagged pixel masks.
"""

from __future__ import annotations

import math

from PIL import Image, ImageDraw

from clipsearch.synthetic.world import BACKGROUNDS, COLOURS, SIZES, Scene

_SUPERSAMPLE = 2


def _clip(value: int) -> int:
    return max(0, min(255, value))


def _shift(rgb: tuple[int, int, int], amount: int) -> tuple[int, int, int]:
    return tuple(_clip(v + amount) for v in rgb)


def _texture_colour(background: tuple[int, int, int]) -> tuple[int, int, int]:
    # Lighter pattern on dark backgrounds, darker on light ones, so the texture stays subtle.
    return _shift(background, 45 if sum(background) < 380 else -45)


def _draw_texture(draw: ImageDraw.ImageDraw, side: int, texture: str, colour) -> None:
    step = max(4, side // 8)
    if texture == "striped":
        for x in range(-side, side, step):
            draw.line([(x, side), (x + side, 0)], fill=colour, width=max(1, step // 3))
    elif texture == "checkered":
        for i in range(0, side, step):
            for j in range(0, side, step):
                if (i // step + j // step) % 2:
                    draw.rectangle([i, j, i + step - 1, j + step - 1], fill=colour)
    elif texture == "dotted":
        dot = max(1, step // 6)
        for i in range(step // 2, side, step):
            for j in range(step // 2, side, step):
                draw.ellipse([i - dot, j - dot, i + dot, j + dot], fill=colour)


def _star(n_points: int, inner: float) -> list[tuple[float, float]]:
    pts = []
    for k in range(2 * n_points):
        r = 1.0 if k % 2 == 0 else inner
        a = math.pi * k / n_points - math.pi / 2
        pts.append((r * math.cos(a), r * math.sin(a)))
    return pts


def _regular(n: int, start: float) -> list[tuple[float, float]]:
    return [(math.cos(start + 2 * math.pi * k / n), math.sin(start + 2 * math.pi * k / n)) for k in range(n)]


_CROSS_ARM = 0.38
_OUTLINES: dict[str, list[tuple[float, float]]] = {
    "square": [(-0.82, -0.82), (0.82, -0.82), (0.82, 0.82), (-0.82, 0.82)],
    # Triangle centroid sits at the origin; scaled up so its area is close to the others'.
    "triangle": [(1.1 * x, 1.1 * y + 0.12) for x, y in _regular(3, -math.pi / 2)],
    "star": _star(5, 0.45),
    "hexagon": _regular(6, 0.0),
    "cross": [
        (-_CROSS_ARM, -1),
        (_CROSS_ARM, -1),
        (_CROSS_ARM, -_CROSS_ARM),
        (1, -_CROSS_ARM),
        (1, _CROSS_ARM),
        (_CROSS_ARM, _CROSS_ARM),
        (_CROSS_ARM, 1),
        (-_CROSS_ARM, 1),
        (-_CROSS_ARM, _CROSS_ARM),
        (-1, _CROSS_ARM),
        (-1, -_CROSS_ARM),
        (-_CROSS_ARM, -_CROSS_ARM),
    ],
}


def _polygon(shape: str, cx: float, cy: float, radius: float, angle: float) -> list[tuple[float, float]]:
    cos_a, sin_a = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    return [(cx + radius * (x * cos_a - y * sin_a), cy + radius * (x * sin_a + y * cos_a)) for x, y in _OUTLINES[shape]]


def _draw_object(draw: ImageDraw.ImageDraw, scene: Scene, centre, angle: float, side: int) -> None:
    fill = tuple(_clip(v + j) for v, j in zip(COLOURS[scene.colour], scene.jitter, strict=False))
    radius = SIZES[scene.size] * side
    cx, cy = centre[0] * side, centre[1] * side
    if scene.shape == "circle":
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=fill)
    else:
        draw.polygon(_polygon(scene.shape, cx, cy, radius, angle), fill=fill)


def render(scene: Scene, size: int = 128) -> Image.Image:
    """Draw a scene as an RGB image of size x size pixels."""
    side = size * _SUPERSAMPLE
    background = BACKGROUNDS[scene.background]
    img = Image.new("RGB", (side, side), background)
    draw = ImageDraw.Draw(img)
    _draw_texture(draw, side, scene.texture, _texture_colour(background))
    for centre, angle in zip(scene.centres, scene.angles, strict=False):
        _draw_object(draw, scene, centre, angle, side)
    return img.resize((size, size), Image.Resampling.BOX)
