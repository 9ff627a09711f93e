"""Writing a captioned corpus: NNNNN.png + NNNNN.txt per scene, plus scenes.jsonl labels.

Each image is drawn from its own seed (corpus seed, split, index), so the output is
identical however many worker processes render it.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Optional

from clipsearch.synthetic.captions import CAPTION_STYLES, DEFAULT_STYLE, captions
from clipsearch.synthetic.draw import render
from clipsearch.synthetic.world import SPLITS, Scene, sample_scene

LABELS_NAME = "scenes.jsonl"
CAPTIONS_PER_IMAGE = 3


def scene_rng(seed: int, split: str, index: int) -> random.Random:
    # A string seed is hashed with SHA-512 by `random`, so it is stable across processes and runs.
    return random.Random(f"clipsearch-shapes/{seed}/{split}/{index}")


def make_item(seed: int, split: str, index: int, style: str = DEFAULT_STYLE) -> tuple[Scene, list[str]]:
    # The scene is drawn before its captions, so the picture does not depend on the caption style.
    rng = scene_rng(seed, split, index)
    scene = sample_scene(rng, split)
    return scene, captions(scene, rng, CAPTIONS_PER_IMAGE, style)


def _write_chunk(args: tuple) -> list[dict]:
    out_dir, seed, split, start, stop, size, width, style = args
    rows = []
    for index in range(start, stop):
        scene, texts = make_item(seed, split, index, style)
        stem = f"{index:0{width}d}"
        render(scene, size).save(Path(out_dir) / f"{stem}.png", optimize=False, compress_level=6)
        (Path(out_dir) / f"{stem}.txt").write_text("\n".join(texts) + "\n")
        rows.append({"file": f"{stem}.png", "split": split, **scene.to_dict()})
    return rows


def generate_corpus(
    out_dir: Path,
    n: int,
    seed: int,
    split: str = "train",
    size: int = 128,
    workers: int = 1,
    progress: Optional[Callable[[int, int], None]] = None,
    style: str = DEFAULT_STYLE,
) -> Path:
    """Render n scenes of a split into out_dir; returns the labels file path.

    progress(done, total) is called as chunks finish (library code does not print). style is the
    caption style (clipsearch.synthetic.captions); the pictures are the same for every style.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    if style not in CAPTION_STYLES:
        raise ValueError(f"unknown caption style {style!r}; use one of {', '.join(CAPTION_STYLES)}")
    if n < 1:
        raise ValueError("n must be at least 1")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    width = max(5, len(str(n - 1)))
    chunk = 500
    jobs = [(str(out_dir), seed, split, s, min(n, s + chunk), size, width, style) for s in range(0, n, chunk)]
    rows: list[dict] = []
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for part in pool.map(_write_chunk, jobs):
                rows.extend(part)
                if progress:
                    progress(len(rows), n)
    else:
        for job in jobs:
            rows.extend(_write_chunk(job))
            if progress:
                progress(len(rows), n)
    labels = out_dir / LABELS_NAME
    labels.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    return labels


def read_labels(folder: Path) -> dict[str, dict]:
    """file name -> scene labels, or {} when the folder is not a generated corpus."""
    path = Path(folder) / LABELS_NAME
    if not path.is_file():
        return {}
    rows = (json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return {row["file"]: row for row in rows}
