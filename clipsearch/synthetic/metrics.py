"""Scores that only make sense for the synthetic shapes world: zero-shot colour and shape accuracy,
colour+shape retrieval precision (over the whole set and inside album-sized slices of it), and
count-aware R-precision, from a folder's scenes.jsonl labels.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from clipsearch.metrics import TextEmbedder, zero_shot_accuracy
from clipsearch.synthetic.captions import plural
from clipsearch.synthetic.corpus import read_labels
from clipsearch.synthetic.world import COLOURS, SHAPES, heldout_combinations, seen_combinations

PRECISION_K = 10
# A personal album: 400 pictures, ~7 per colour+shape pair, the commonest pairs ~12. At this
# scale a pair's pictures must all rank above every other picture to fill a top 10, which a
# 5,000-image set (~80 per pair) never tests.
ALBUM_SIZE = 400
ALBUM_PAIRS = 8


def pair_precision(image_emb, colours, shapes, pairs, embed, k: int = PRECISION_K) -> float:
    """Mean over pairs of the fraction of the top k images for "a COLOUR SHAPE" that are one."""
    if not pairs:
        return float("nan")
    queries = embed([f"a {c} {s}" for c, s in pairs])
    top = np.argsort(-(queries @ image_emb.T), axis=1)[:, :k]
    colours, shapes = np.asarray(colours), np.asarray(shapes)
    hits = [((colours[row] == c) & (shapes[row] == s)).mean() for row, (c, s) in zip(top, pairs, strict=False)]
    return float(np.mean(hits))


def album_precision(image_emb, colours, shapes, embed, size: int = ALBUM_SIZE, top: int = ALBUM_PAIRS) -> float:
    """Mean precision@10 of "a COLOUR SHAPE" queries searched inside albums: consecutive slices of
    `size` images, each queried for its `top` commonest pairs (any count of objects is a hit)."""
    colours, shapes = np.asarray(colours), np.asarray(shapes)
    scores = []
    for start in range(0, len(colours) - size + 1, size):
        part = slice(start, start + size)
        counts = Counter(zip(colours[part].tolist(), shapes[part].tolist(), strict=True))
        pairs = [pair for pair, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]]
        scores.append(pair_precision(image_emb[part], colours[part], shapes[part], pairs, embed))
    return float(np.mean(scores)) if scores else float("nan")


def scene_r_precision(image_emb, colours, shapes, counts, pairs, embed) -> float:
    """R-precision of "a/two/three COLOUR SHAPE(s)" queries: of the R best-scoring images, where R
    is how many images match colour, shape and count, the fraction that do. Unlike precision@10
    this does not saturate on a large test set."""
    colours, shapes, counts = np.asarray(colours), np.asarray(shapes), np.asarray(counts)
    queries, relevant = [], []
    for c, s in pairs:
        for n, word in ((1, "a"), (2, "two"), (3, "three")):
            mask = (colours == c) & (shapes == s) & (counts == n)
            if mask.any():
                queries.append(f"{word} {c} {plural(s, n)}")
                relevant.append(mask)
    if not queries:
        return float("nan")
    order = np.argsort(-(embed(queries) @ image_emb.T), axis=1)
    return float(np.mean([mask[row[: int(mask.sum())]].mean() for row, mask in zip(order, relevant, strict=False)]))


def synthetic_metrics(image_emb: np.ndarray, labels: list[dict], embed: TextEmbedder) -> dict[str, float]:
    """Scores for a held-out set of generated scenes (labels from its scenes.jsonl)."""
    colours = [row["colour"] for row in labels]
    shapes = [row["shape"] for row in labels]
    counts = [row["count"] for row in labels]
    colour_prompts = [[f"a {c} {s}" for s in SHAPES] for c in COLOURS]
    shape_prompts = [[f"a {s}"] + [f"a {c} {s}" for c in COLOURS] for s in SHAPES]
    present = set(zip(colours, shapes, strict=False))
    seen = [p for p in seen_combinations() if p in present]
    held = [p for p in heldout_combinations() if p in present]
    return {
        "colour_accuracy": zero_shot_accuracy(image_emb, colours, list(COLOURS), colour_prompts, embed),
        "shape_accuracy": zero_shot_accuracy(image_emb, shapes, list(SHAPES), shape_prompts, embed),
        "pair_precision@10_seen": pair_precision(image_emb, colours, shapes, seen, embed),
        "pair_precision@10_heldout": pair_precision(image_emb, colours, shapes, held, embed),
        "album_precision@10": album_precision(image_emb, colours, shapes, embed),
        "scene_r_precision_seen": scene_r_precision(image_emb, colours, shapes, counts, seen, embed),
        "scene_r_precision_heldout": scene_r_precision(image_emb, colours, shapes, counts, held, embed),
    }


def scorer_for(folder: Path):
    """A held-out scorer ``(paths, image_emb, embed) -> metrics`` for a generated corpus folder,
    or None when the folder has no scene labels (any other captioned data)."""
    table = read_labels(folder) if Path(folder).is_dir() else {}
    if not table:
        return None

    def score(paths: list[Path], image_emb: np.ndarray, embed: TextEmbedder) -> dict[str, float]:
        labels = [table.get(Path(p).name) for p in paths]
        if not all(labels):
            return {}
        return synthetic_metrics(image_emb, labels, embed)

    return score
