"""Seeded photo-like JPEGs for the benchmarks: smooth colour fields, soft shapes, sensor-like noise.

They are saved at JPEG quality 90 (4:2:0), so they decode like camera photos, and cached under
$CLIPSEARCH_BENCH_CACHE (default /tmp/clipsearch-bench) so reruns do not pay for generation.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from common import CACHE
from PIL import Image, ImageDraw, ImageFilter

QUALITY = 90
SIZES = {"12mp": (4000, 3000), "1mp": (1152, 864), "2mp": (1600, 1200), "640x480": (640, 480)}


def _field(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """A smooth colour field: a few random low-frequency waves per channel (float32 HxWx3)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.empty((h, w, 3), dtype=np.float32)
    for c in range(3):
        acc = np.full((h, w), rng.uniform(60, 190), dtype=np.float32)
        for _ in range(3):
            fx, fy = rng.uniform(0.5, 4.0, size=2) * 2 * np.pi
            phase = rng.uniform(0, 2 * np.pi)
            acc += rng.uniform(15, 45) * np.sin(fx * x / w + fy * y / h + phase)
        out[..., c] = acc
    return out


def _shapes(img: Image.Image, rng: np.random.Generator, count: int) -> None:
    draw = ImageDraw.Draw(img)
    w, h = img.size
    for _ in range(count):
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
        r = int(rng.integers(max(4, w // 40), max(8, w // 6)))
        kind = rng.integers(0, 3)
        if kind == 0:
            draw.ellipse((cx - r, cy - r // 2, cx + r, cy + r // 2), fill=colour)
        elif kind == 1:
            draw.rectangle((cx - r, cy - r, cx + r // 2, cy + r), fill=colour)
        else:
            pts = [(cx + int(rng.integers(-r, r)), cy + int(rng.integers(-r, r))) for _ in range(5)]
            draw.polygon(pts, fill=colour)


def make_photo(seed: int, size: tuple[int, int]) -> Image.Image:
    """One photo-like picture: drawn at 1/4 scale, softened, upscaled, then fine noise added."""
    rng = np.random.default_rng(seed)
    w, h = size
    sw, sh = max(16, w // 4), max(12, h // 4)
    small = Image.fromarray(np.clip(_field(rng, sw, sh), 0, 255).astype(np.uint8), "RGB")
    _shapes(small, rng, int(rng.integers(12, 30)))
    small = small.filter(ImageFilter.GaussianBlur(1.5))
    big = np.asarray(small.resize((w, h), Image.Resampling.BICUBIC), dtype=np.int16)
    # Sensor-like grain: a seeded noise tile repeated over the frame (cheap at 12 MP).
    tile = rng.normal(0, 5, size=(min(h, 512), min(w, 512), 3)).astype(np.int16)
    reps = (-(-h // tile.shape[0]), -(-w // tile.shape[1]), 1)
    noise = np.tile(tile, reps)[:h, :w]
    return Image.fromarray(np.clip(big + noise, 0, 255).astype(np.uint8), "RGB")


def _write_one(args: tuple[Path, int, tuple[int, int]]) -> None:
    path, seed, size = args
    make_photo(seed, size).save(path, "JPEG", quality=QUALITY)


def ensure_collection(kind: str, n: int, seed: int = 0, workers: int = 1) -> Path:
    """A folder of n JPEGs of SIZES[kind], generated once per (kind, n, seed) and reused."""
    folder = CACHE / "photos" / f"{kind}-n{n}-s{seed}"
    marker = folder / ".complete"
    if marker.exists():
        return folder
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    jobs = [(folder / f"img_{i:05d}.jpg", seed * 1_000_003 + i, SIZES[kind]) for i in range(n)]
    if workers > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(_write_one, jobs, chunksize=4))
    else:
        for job in jobs:
            _write_one(job)
    marker.write_text("ok\n")
    return folder


def collection_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix == ".jpg")
