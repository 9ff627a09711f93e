"""The open_clip backend: pretrained tags, local checkpoints and random initialisation."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable

import numpy as np
import torch

from clipsearch.errors import ModelError
from clipsearch.imaging import PreprocessConfig
from clipsearch.models.base import Encoder


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """Mixed precision only where it pays: on this class of CPU bf16 is ~5x slower than fp32."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


class OpenClipEncoder(Encoder):
    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Callable,
        preprocess_cfg: PreprocessConfig,
        model_id: str,
        device: torch.device,
    ):
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.preprocess_cfg = preprocess_cfg
        self.model_id = model_id
        self.device = device
        self.context_length = int(getattr(tokenizer, "context_length", 77))
        self._mean = torch.tensor(preprocess_cfg.mean, device=device).view(1, 3, 1, 1)
        self._std = torch.tensor(preprocess_cfg.std, device=device).view(1, 3, 1, 1)
        self._amp = autocast_dtype(device)
        with torch.no_grad():
            probe = self.encode_texts(["a photo"])
        self.dim = int(probe.shape[1])

    def _autocast(self):
        if self._amp is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self._amp)

    def normalise_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 NHWC -> float NCHW normalised with the model's mean/std, on the device."""
        non_blocking = self.device.type == "cuda"
        x = pixels.to(self.device, non_blocking=non_blocking).permute(0, 3, 1, 2).float().div_(255.0)
        return (x - self._mean) / self._std

    @torch.inference_mode()
    def encode_images(self, pixels: torch.Tensor) -> np.ndarray:
        x = self.normalise_pixels(pixels)
        with self._autocast():
            features = self.model.encode_image(x)
        features = torch.nn.functional.normalize(features.float(), dim=-1)
        return features.cpu().numpy().astype(np.float32)

    @torch.inference_mode()
    def encode_texts(self, texts: list[str]) -> np.ndarray:
        tokens = self.tokenizer(list(texts)).to(self.device)
        with self._autocast():
            features = self.model.encode_text(tokens)
        features = torch.nn.functional.normalize(features.float(), dim=-1)
        return features.cpu().numpy().astype(np.float32)

    def quantize_text_tower(self) -> None:
        """Run the text transformer's Linear layers in int8 (CPU query latency; image embeddings unchanged).

        Measured on random ViT-B/32 weights (docs/benchmarks.md, section 4): 1.4-2.3x faster per query,
        min cosine 0.999 with fp32 and 0.94 top-10 overlap. Opt-in, because trained weights were
        not available to check that rankings hold (CLIPSEARCH_TEXT_INT8).
        """
        if self.device.type != "cpu":
            raise ModelError(
                "the int8 text encoder runs on the CPU only; unset CLIPSEARCH_TEXT_INT8 or use --device cpu"
            )
        text = getattr(self.model, "transformer", None)
        if text is None or not hasattr(text, "resblocks"):
            raise ModelError(f"{self.model_id}: int8 text encoding supports open_clip's standard text transformer only")
        quantize_dynamic = getattr(getattr(torch.ao, "quantization", None), "quantize_dynamic", None)
        if quantize_dynamic is None:
            raise ModelError(f"torch {torch.__version__} has no dynamic int8 quantisation; unset CLIPSEARCH_TEXT_INT8")
        with warnings.catch_warnings():
            # torch marks eager-mode quantisation deprecated (torchao replaces it); it still works
            # here, and the warnings would only alarm someone who opted in.
            warnings.simplefilter("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*")
            self.model.transformer = quantize_dynamic(text, {torch.nn.Linear}, dtype=torch.qint8)
        for block in self.model.transformer.resblocks:
            # open_clip reads the compute dtype from c_fc.weight, which a quantised layer exposes as a method.
            block.mlp.c_fc.int8_original_dtype = torch.float32

    def count_tokens(self, text: str) -> int:
        encode = getattr(self.tokenizer, "encode", None)
        if encode is None:
            return 0
        return len(encode(text)) + 2  # start and end tokens
