"""The encoder interface every model runtime implements: numpy in, numpy out."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
from PIL import Image

from clipsearch.errors import ModelError
from clipsearch.imaging import PreprocessConfig, resize_for_model


class Encoder(ABC):
    """Embeds images and texts into one L2-normalised space.

    Runtimes (ONNX Runtime, torch) implement the two batch methods; preprocessing and the
    single-item helpers live here so every runtime prepares inputs the same way.
    """

    model_id: str  # what a store records: the same for one model on every runtime
    spec: str  # the --model spec it was loaded from
    dim: int
    preprocess_cfg: PreprocessConfig
    context_length: int
    runtime: str  # "onnx" | "torch"
    device: str  # "cpu" | "cuda"
    is_random: bool = False  # random weights (tests, benchmarks): rankings are meaningless

    @abstractmethod
    def encode_images(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 (N, H, W, 3) pixels at model size -> (N, dim) float32, L2-normalised."""

    @abstractmethod
    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """Texts -> (N, dim) float32, L2-normalised."""

    @abstractmethod
    def count_tokens(self, text: str) -> int:
        """How many tokens a text needs, start and end included (to tell users when a query is truncated)."""

    def preprocess(self, image: Image.Image) -> np.ndarray:
        """One PIL image -> uint8 (H, W, 3) at model size."""
        return resize_for_model(image.convert("RGB"), self.preprocess_cfg)

    def encode_image(self, image: Image.Image) -> np.ndarray:
        return self.encode_images(self.preprocess(image)[None])[0]

    def encode_text(self, text: str) -> np.ndarray:
        return self.encode_texts([text])[0]

    def quantize_text_tower(self) -> None:
        """Switch text encoding to int8 where the runtime supports it (CLIPSEARCH_TEXT_INT8)."""
        raise ModelError(f"{self.model_id}: this model runtime has no int8 text encoder; unset CLIPSEARCH_TEXT_INT8")


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)
