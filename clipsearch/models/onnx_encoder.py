"""The ONNX Runtime runtime: CLIP towers from a folder in the Immich layout, no torch.

Sessions and the tokenizer are created on first use: a text query never builds the image
tower, and an index run never builds the text tower.

Texts are cut just after the batch's longest end token when the folder's ``clipsearch.json``
records that the export was checked for it (``text_shortening.allowed``, see ``text_export``)
and the text graph's sequence axis is dynamic; other folders (Immich's published exports, our
exports made before shortening existed) get the full context, as their graphs expect.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from clipsearch.errors import ModelError
from clipsearch.imaging import PreprocessConfig
from clipsearch.models import layout
from clipsearch.models.base import Encoder, l2_normalise
from clipsearch.models.sessions import CPU, create_session, providers_for

# open_clip's defaults, for folders whose preprocess_cfg.json is missing (older exports).
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
SHORTENING = "text_shortening"  # the key of clipsearch.json that records the shortening check


class _Tower:
    """One ONNX session with its input's name, dtype and whether the batch axis is dynamic."""

    def __init__(self, path: Path, threads: int | None, providers: list, cache_dir: Path | None):
        self.path = path
        self.session = create_session(path, threads, providers, cache_dir)
        first = self.session.get_inputs()[0]
        self.input = first.name
        self.input_type = first.type
        self.batched = not isinstance(first.shape[0], int) or first.shape[0] != 1
        self.dynamic_length = len(first.shape) > 1 and not isinstance(first.shape[1], int)

    def run(self, x: np.ndarray) -> np.ndarray:
        if self.batched or len(x) == 1:
            return self.session.run(None, {self.input: x})[0]
        # Immich exports fix the batch at 1.
        return np.concatenate([self.session.run(None, {self.input: x[i : i + 1]})[0] for i in range(len(x))])


class OnnxEncoder(Encoder):
    def __init__(
        self,
        folder: Path,
        model_id: str,
        spec: str,
        is_random: bool = False,
        threads: int | None = None,
        cache_dir: Path | None = None,
        device: str = "cpu",
        purpose: str = "query",
    ):
        missing = layout.missing_files(folder)
        if missing:
            raise ModelError(f"{folder} is not a complete ONNX model folder: {', '.join(missing)} missing")
        self.folder = folder
        self.model_id = model_id
        self.spec = spec
        self.is_random = is_random
        self.runtime = "onnx"
        self.providers = providers_for(device, purpose)
        self.device = "cpu" if self.providers == [CPU] else "cuda"
        self.threads = threads
        # Where derived files go (optimised graphs, the int8 text tower); the folder may be read-only.
        self.cache_dir = cache_dir
        config = layout.read_json(folder, layout.CONFIG)
        self.context_length = int(config.get("text_cfg", {}).get("context_length", 77))
        self.dim = int(config.get("embed_dim") or 0)
        if not self.dim:
            raise ModelError(f"{folder / layout.CONFIG} has no embed_dim")
        self.preprocess_cfg = _preprocess_cfg(folder, config)
        self.shorten = bool(layout.read_json(folder, layout.MARKER).get(SHORTENING, {}).get("allowed"))
        self.last_text_length = 0  # positions the text tower ran last (tests and benchmarks read it)
        self._visual: _Tower | None = None
        self._textual: _Tower | None = None
        self._tokenizer = None
        self.text_path = folder / layout.TEXTUAL

    @property
    def visual(self) -> _Tower:
        if self._visual is None:
            self._visual = _Tower(self.folder / layout.VISUAL, self.threads, self.providers, self.cache_dir)
        return self._visual

    @property
    def textual(self) -> _Tower:
        if self._textual is None:
            self._textual = _Tower(self.text_path, self.threads, self.providers, self.cache_dir)
        return self._textual

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from clipsearch.models.tokenizer import ClipTokenizer

            self._tokenizer = ClipTokenizer.load(self.folder / layout.TOKENIZER, self.context_length, self.cache_dir)
        return self._tokenizer

    def encode_images(self, pixels: np.ndarray) -> np.ndarray:
        tower = self.visual
        if tower.input_type == "tensor(uint8)":  # the graph normalises its input itself
            return l2_normalise(tower.run(np.ascontiguousarray(pixels)))
        cfg = self.preprocess_cfg
        scale = np.float32(1 / 255) / np.asarray(cfg.std, np.float32)
        shift = np.asarray(cfg.mean, np.float32) / np.asarray(cfg.std, np.float32)
        x = pixels.astype(np.float32) * scale - shift  # (p/255 - mean) / std in one pass
        return l2_normalise(tower.run(np.ascontiguousarray(x.transpose(0, 3, 1, 2))))

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        tower = self.textual
        ids = self.tokenizer.encode_batch(list(texts))
        if self.shorten and tower.dynamic_length and len(ids):
            # The end token has the highest id: after the last one, no position changes a pooled vector.
            ids = ids[:, : int(ids.argmax(axis=1).max()) + 1]
        self.last_text_length = ids.shape[1]
        dtype = np.int64 if tower.input_type == "tensor(int64)" else np.int32
        return l2_normalise(tower.run(ids.astype(dtype)))

    def count_tokens(self, text: str) -> int:
        return self.tokenizer.count_tokens(text)

    def quantize_text_tower(self) -> None:
        """Text tower with int8 weights (dynamic quantisation), made once beside the fp32 one in the cache."""
        from clipsearch.models.quantize import int8_text_tower

        if self.cache_dir is None:
            raise ModelError("the int8 text tower needs a model cache folder; unset CLIPSEARCH_TEXT_INT8")
        self.text_path = int8_text_tower(self.folder, self.model_id, self.cache_dir)
        self._textual = None


def _preprocess_cfg(folder: Path, config: dict) -> PreprocessConfig:
    data = layout.read_json(folder, layout.PREPROCESS)
    if not data:
        size = config.get("vision_cfg", {}).get("image_size", 224)
        data = {"size": size, "mean": OPENAI_MEAN, "std": OPENAI_STD}
    return PreprocessConfig.from_dict(data)
