"""Held-out evaluation: text->image recall, plus any extra scorer the caller passes (the CLI
passes the synthetic world's when training on a generated corpus).

Metrics take embeddings (numpy, L2-normalised) and a text-embedding function, so the
same code scores a model mid-training and a checkpoint loaded from disk.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from clipsearch.metrics import TextEmbedder, recall_at_k

# (eval image paths, their embeddings, text embedder) -> extra metrics
Scorer = Callable[[list[Path], np.ndarray, TextEmbedder], dict]


def evaluate_embeddings(
    image_emb, captions: list[str], paths: list[Path], embed: TextEmbedder, scorer: Scorer | None = None
) -> dict:
    """All metrics for one held-out set; captions[i] is image i's canonical caption."""
    metrics = recall_at_k(image_emb, embed(captions))
    if scorer is not None:
        metrics.update(scorer(paths, image_emb, embed))
    metrics["images"] = int(len(captions))
    return metrics


def evaluate_encoder(
    encoder, pixels: np.ndarray, captions: list[str], paths: list[Path], scorer: Scorer | None = None, batch: int = 256
) -> dict:
    """Score a loaded encoder (e.g. a shipped checkpoint) exactly as the indexer would embed."""
    chunks = [encoder.encode_images(pixels[i : i + batch]) for i in range(0, len(pixels), batch)]

    def embed(texts: list[str]) -> np.ndarray:
        return np.concatenate([encoder.encode_texts(texts[i : i + batch]) for i in range(0, len(texts), batch)])

    return evaluate_embeddings(np.concatenate(chunks), captions, paths, embed, scorer)
