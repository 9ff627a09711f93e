"""The encoder interface every model backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import torch
from PIL import Image

from clipsearch.errors import ModelError
from clipsearch.imaging import PreprocessConfig, resize_for_model


class Encoder(ABC):
    """Embeds images and texts into one L2-normalised space.

    Subclasses implement the two batch methods; preprocessing and the single-item
    helpers live here so every backend prepares inputs the same way.
    """

    model_id: str
    dim: int
    preprocess_cfg: PreprocessConfig
    device: torch.device
    context_length: int

    @abstractmethod
    def encode_images(self, pixels: torch.Tensor) -> np.ndarray:
        """uint8 NHWC pixels at model size -> (N, dim) float32, L2-normalised."""

    @abstractmethod
    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """Texts -> (N, dim) float32, L2-normalised."""

    @abstractmethod
    def count_tokens(self, text: str) -> int:
        """How many tokens a text needs (to tell users when a query is truncated)."""

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """One RGB PIL image -> uint8 HWC tensor at model size (normalised on the device)."""
        return torch.from_numpy(resize_for_model(image.convert("RGB"), self.preprocess_cfg))

    def encode_image(self, image: Image.Image) -> np.ndarray:
        return self.encode_images(self.preprocess(image).unsqueeze(0))[0]

    def encode_text(self, text: str) -> np.ndarray:
        return self.encode_texts([text])[0]

    def quantize_text_tower(self) -> None:
        """Switch text encoding to int8 where the backend supports it (CLIPSEARCH_TEXT_INT8)."""
        raise ModelError(f"{self.model_id}: this model backend has no int8 text encoder; unset CLIPSEARCH_TEXT_INT8")
