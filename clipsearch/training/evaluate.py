"""Held-out evaluation: text->image recall, and for the synthetic world, zero-shot
colour/shape accuracy and colour+shape retrieval precision.

Metrics take embeddings (numpy, L2-normalised) and a text-embedding function, so the
same code scores a model mid-training and a checkpoint loaded from disk.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from clipsearch.synthetic.captions import plural
from clipsearch.synthetic.world import COLOURS, SHAPES, heldout_combinations, seen_combinations

TextEmbedder = Callable[[list[str]], np.ndarray]
RECALL_KS = (1, 5, 10)
PRECISION_K = 10


def recall_at_k(image_emb: np.ndarray, text_emb: np.ndarray, ks: Sequence[int] = RECALL_KS) -> dict[str, float]:
    """Row i of text_emb describes image i: how often is image i in the text's top k?"""
    sims = text_emb @ image_emb.T
    own = np.diag(sims)[:, None]
    # Rank = images scoring strictly higher than the true one (ties count in its favour).
    rank = (sims > own).sum(axis=1)
    return {f"recall@{k}": float((rank < k).mean()) for k in ks}


def _class_embeddings(embed: TextEmbedder, prompts_per_class: list[list[str]]) -> np.ndarray:
    rows = []
    for prompts in prompts_per_class:
        mean = embed(prompts).mean(axis=0)
        rows.append(mean / np.linalg.norm(mean))
    return np.stack(rows)


def zero_shot_accuracy(image_emb: np.ndarray, labels: list[str], classes: Sequence[str], prompts_per_class, embed) -> float:
    """Classify each image by its most similar class prompt (prompt ensembles averaged)."""
    class_emb = _class_embeddings(embed, prompts_per_class)
    predicted = (image_emb @ class_emb.T).argmax(axis=1)
    truth = np.array([list(classes).index(label) for label in labels])
    return float((predicted == truth).mean())


def pair_precision(image_emb, colours, shapes, pairs, embed, k: int = PRECISION_K) -> float:
    """Mean over pairs of the fraction of the top k images for "a COLOUR SHAPE" that are one."""
    if not pairs:
        return float("nan")
    queries = embed([f"a {c} {s}" for c, s in pairs])
    top = np.argsort(-(queries @ image_emb.T), axis=1)[:, :k]
    colours, shapes = np.asarray(colours), np.asarray(shapes)
    hits = [((colours[row] == c) & (shapes[row] == s)).mean() for row, (c, s) in zip(top, pairs)]
    return float(np.mean(hits))


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
    return float(np.mean([mask[row[: int(mask.sum())]].mean() for row, mask in zip(order, relevant)]))


def synthetic_metrics(image_emb: np.ndarray, labels: list[dict], embed: TextEmbedder) -> dict[str, float]:
    """Scores for a held-out set of generated scenes (labels from its scenes.jsonl)."""
    colours = [row["colour"] for row in labels]
    shapes = [row["shape"] for row in labels]
    counts = [row["count"] for row in labels]
    colour_prompts = [[f"a {c} {s}" for s in SHAPES] for c in COLOURS]
    shape_prompts = [[f"a {s}"] + [f"a {c} {s}" for c in COLOURS] for s in SHAPES]
    present = set(zip(colours, shapes))
    seen = [p for p in seen_combinations() if p in present]
    held = [p for p in heldout_combinations() if p in present]
    return {
        "colour_accuracy": zero_shot_accuracy(image_emb, colours, list(COLOURS), colour_prompts, embed),
        "shape_accuracy": zero_shot_accuracy(image_emb, shapes, list(SHAPES), shape_prompts, embed),
        "pair_precision@10_seen": pair_precision(image_emb, colours, shapes, seen, embed),
        "pair_precision@10_heldout": pair_precision(image_emb, colours, shapes, held, embed),
        "scene_r_precision_seen": scene_r_precision(image_emb, colours, shapes, counts, seen, embed),
        "scene_r_precision_heldout": scene_r_precision(image_emb, colours, shapes, counts, held, embed),
    }


def evaluate_embeddings(image_emb, captions: list[str], labels: list[dict] | None, embed: TextEmbedder) -> dict:
    """All metrics for one held-out set; captions[i] is image i's canonical caption."""
    metrics = recall_at_k(image_emb, embed(captions))
    if labels:
        metrics.update(synthetic_metrics(image_emb, labels, embed))
    metrics["images"] = int(len(captions))
    return metrics


def evaluate_encoder(encoder, pixels: np.ndarray, captions: list[str], labels: list[dict] | None, batch: int = 256) -> dict:
    """Score a loaded encoder (e.g. a shipped checkpoint) exactly as the indexer would embed."""
    import torch

    chunks = [encoder.encode_images(torch.from_numpy(pixels[i : i + batch])) for i in range(0, len(pixels), batch)]

    def embed(texts: list[str]) -> np.ndarray:
        return np.concatenate([encoder.encode_texts(texts[i : i + batch]) for i in range(0, len(texts), batch)])

    return evaluate_embeddings(np.concatenate(chunks), captions, labels, embed)
