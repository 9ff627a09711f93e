"""Retrieval and zero-shot metrics over L2-normalised embeddings (numpy only).

Used by training's held-out evaluation, the synthetic world's scores and benchmarks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

TextEmbedder = Callable[[list[str]], np.ndarray]
RECALL_KS = (1, 5, 10)


def recall_at_k(image_emb: np.ndarray, text_emb: np.ndarray, ks: Sequence[int] = RECALL_KS) -> dict[str, float]:
    """Row i of text_emb describes image i: how often is image i in the text's top k?"""
    sims = text_emb @ image_emb.T
    own = np.diag(sims)[:, None]
    # Rank = images scoring strictly higher than the true one (ties count in its favour).
    rank = (sims > own).sum(axis=1)
    return {f"recall@{k}": float((rank < k).mean()) for k in ks}


def class_embeddings(embed: TextEmbedder, prompts_per_class: list[list[str]]) -> np.ndarray:
    rows = []
    for prompts in prompts_per_class:
        mean = embed(prompts).mean(axis=0)
        rows.append(mean / np.linalg.norm(mean))
    return np.stack(rows)


def zero_shot_accuracy(
    image_emb: np.ndarray, labels: list[str], classes: Sequence[str], prompts_per_class, embed
) -> float:
    """Classify each image by its most similar class prompt (prompt ensembles averaged)."""
    class_emb = class_embeddings(embed, prompts_per_class)
    predicted = (image_emb @ class_emb.T).argmax(axis=1)
    truth = np.array([list(classes).index(label) for label in labels])
    return float((predicted == truth).mean())
