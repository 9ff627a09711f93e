"""Turning the in-memory dataset into model-ready batches.

Captions are tokenised once up front; each time an image is used one of its captions
is drawn at random, so images with several captions see all of them over the run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from clipsearch.imaging import PreprocessConfig


@dataclass
class TokenTable:
    tokens: torch.Tensor  # (total captions, context length)
    starts: np.ndarray  # first row of image i's captions
    counts: np.ndarray  # how many captions image i has

    @classmethod
    def build(cls, captions: list[tuple[str, ...]], tokenizer) -> TokenTable:
        flat = [text for texts in captions for text in texts]
        counts = np.array([len(texts) for texts in captions], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        rows = [tokenizer(flat[i : i + 8192]) for i in range(0, len(flat), 8192)]
        return cls(torch.cat(rows), starts, counts)


class Batcher:
    def __init__(
        self,
        pixels: np.ndarray,
        tokens: TokenTable,
        pre: PreprocessConfig,
        device,
        seed: int,
        features: torch.Tensor | None = None,
    ):
        self.pixels = pixels
        self.features = features  # the images' embeddings when the image tower is locked
        self.tokens = tokens
        self.device = device
        self.seed = seed
        self.rng = np.random.default_rng(seed + 1)
        self.mean = torch.tensor(pre.mean, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(pre.std, device=device).view(1, 3, 1, 1)

    def epoch_order(self, epoch: int) -> np.ndarray:
        # Same permutation on every rank (seeded by epoch); each rank takes its own slice.
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.pixels))

    def batch(self, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        indices = np.sort(indices)  # sorted gathers are faster; order within a batch does not matter
        if self.features is not None:
            x = self.features[torch.from_numpy(indices)].to(self.device, non_blocking=True)
        else:
            x = torch.from_numpy(self.pixels[indices]).to(self.device, non_blocking=True)
            x = (x.permute(0, 3, 1, 2).float().div_(255) - self.mean) / self.std
        rows = self.tokens.starts[indices] + self.rng.integers(0, self.tokens.counts[indices])
        return x, self.tokens.tokens[torch.from_numpy(rows)].to(self.device, non_blocking=True)
