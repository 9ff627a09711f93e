"""The torch runtime: open_clip models (pretrained tags, checkpoints, random init) on CPU or GPU.

torch and open_clip are imported here only, so that loading this module is the moment a
process pays for them. It trains, indexes on a GPU in mixed precision, and is the reference
that ONNX exports are checked against.
"""

from __future__ import annotations

import contextlib
import os
import socket
import warnings
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import torch

from clipsearch.errors import ModelError
from clipsearch.imaging import PreprocessConfig
from clipsearch.models.base import Encoder
from clipsearch.models.spec import CONFIGS_DIR, ModelSpec, bundled_models, hf_text_tower, model_id_for

RANDOM_SEED = 0


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
        spec: str = "",
        is_random: bool = False,
    ):
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.preprocess_cfg = preprocess_cfg
        self.model_id = model_id
        self.spec = spec or model_id
        self.is_random = is_random
        self.runtime = "torch"
        self.torch_device = device
        self.device = device.type
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
        return torch.autocast(device_type=self.device, dtype=self._amp)

    def normalise_pixels(self, pixels: np.ndarray) -> torch.Tensor:
        """uint8 NHWC -> float NCHW normalised with the model's mean/std, on the device."""
        x = torch.from_numpy(np.ascontiguousarray(pixels))
        if self.device == "cuda":
            # Pinned memory lets the copy overlap the previous batch's compute.
            x = x.pin_memory().to(self.torch_device, non_blocking=True)
        x = x.permute(0, 3, 1, 2).float().div_(255.0)
        return (x - self._mean) / self._std

    @torch.inference_mode()
    def encode_images(self, pixels: np.ndarray) -> np.ndarray:
        x = self.normalise_pixels(pixels)
        with self._autocast():
            features = self.model.encode_image(x)
        features = torch.nn.functional.normalize(features.float(), dim=-1)
        return features.cpu().numpy().astype(np.float32)

    @torch.inference_mode()
    def encode_texts(self, texts: list[str]) -> np.ndarray:
        tokens = self.tokenizer(list(texts)).to(self.torch_device)
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
        if self.device != "cpu":
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
        hf = getattr(self.tokenizer, "tokenizer", None)  # open_clip's HFTokenizer wraps a transformers one
        if callable(hf):
            return len(hf(text)["input_ids"])  # <s> and </s> included
        encode = getattr(self.tokenizer, "encode", None)
        if encode is None:
            return 0
        return len(encode(text)) + 2  # start and end tokens


_configs_registered = False


def open_clip_with_configs():
    """open_clip, with clipsearch's own architecture configs registered (once)."""
    global _configs_registered
    import open_clip

    if not _configs_registered:
        open_clip.add_model_config(CONFIGS_DIR)
        _configs_registered = True
    return open_clip


def preprocess_config_of(model) -> PreprocessConfig:
    cfg = dict(getattr(model.visual, "preprocess_cfg", {}) or {})
    if not cfg:
        from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

        cfg = {"size": model.visual.image_size, "mean": OPENAI_DATASET_MEAN, "std": OPENAI_DATASET_STD}
    return PreprocessConfig.from_dict(cfg)


def _create(open_clip, name: str, pretrained: str | None, cache_dir: Path | None, **kwargs):
    try:
        cache = str(cache_dir) if cache_dir else None
        return open_clip.create_model(name, pretrained=pretrained, cache_dir=cache, **kwargs)
    except RuntimeError as exc:
        if "not found in built-ins" in str(exc):
            raise ModelError(
                f"unknown architecture {name!r}; "
                '`python -c "import open_clip; print(open_clip.list_models())"` lists them'
            ) from exc
        raise


def _hub_unreachable(open_clip, parsed: ModelSpec, cache_dir: Path | None) -> str | None:
    """Why the weights cannot be had, when they are not cached and one quick try cannot reach the hub.

    The hub client would otherwise retry each candidate file for about half a minute before failing.
    """
    if os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy"):
        return None  # only the proxy can tell; let the download try
    from huggingface_hub import constants, try_to_load_from_cache

    repo = (open_clip.get_pretrained_cfg(parsed.arch, parsed.tag).get("hf_hub") or "").strip("/")
    if not repo or constants.HF_HUB_OFFLINE:
        return None  # a plain URL, or offline mode: open_clip fails at once by itself
    names = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
    if any(isinstance(try_to_load_from_cache(repo, n, cache_dir=cache_dir), str) for n in names):
        return None  # cached: open_clip falls back to the file when the hub does not answer
    url = urlsplit(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout=5).close()
    except OSError as exc:
        return f"{url.hostname}: {exc.strerror or exc}"
    return None


def _download_reason(exc: Exception) -> str:
    if isinstance(exc, ConnectionError):
        return f"the model hub is not reachable ({exc}) and the weights are not in the cache"
    text = str(exc)
    if os.environ.get("HF_HUB_OFFLINE") in ("1", "true", "True"):
        return "downloads are switched off (HF_HUB_OFFLINE is set) and the weights are not in the cache"
    if "Internet connection" in text or "local cache" in text or "Name or service" in text:
        return "the model hub is not reachable and the weights are not in the cache"
    return text if len(text) < 300 else text[:300] + "..."


def build_model(parsed: ModelSpec, spec: str, cache_dir: Path | None):
    """The open_clip model and its tokenizer for a torch-loadable spec (on the CPU, fp32, eval mode)."""
    text_tower = hf_text_tower(parsed)
    if text_tower is None:
        return _build_model(parsed, spec, cache_dir)
    import importlib.util

    if importlib.util.find_spec("transformers") is None:
        raise ModelError(
            f"{spec} has a Hugging Face text tower ({text_tower}), which needs transformers: "
            "pip install 'clipsearch[torch]' (or pip install transformers)"
        )
    try:
        return _build_model(parsed, spec, cache_dir)
    except OSError as exc:  # transformers' word for "not on the hub, not in the cache"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(
            f"{spec}: the Hugging Face files of its text tower {text_tower} could not be loaded ({first}). "
            "Its config and tokenizer are downloaded once from the Hugging Face hub into its cache (HF_HOME): "
            "connect once, or unset HF_HUB_OFFLINE"
        ) from exc


def _build_model(parsed: ModelSpec, spec: str, cache_dir: Path | None):
    open_clip = open_clip_with_configs()
    if parsed.kind in ("bundled", "checkpoint"):
        name = f"local-dir:{parsed.path}"
        try:
            model = open_clip.create_model(name)
        except Exception as exc:
            raise ModelError(f"cannot load checkpoint {parsed.path}: {exc}") from exc
        return model.float().eval(), open_clip.get_tokenizer(name)
    if parsed.kind == "random":
        # Seeded so that every process builds the same random model: a store indexed
        # with random:ARCH must be queryable by a later process.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_SEED)
            # pretrained_hf=False: a Hugging Face text tower starts random too, not from downloaded weights.
            model = _create(open_clip, parsed.arch, None, None, pretrained_hf=False)
    elif parsed.kind == "file":
        try:
            model = _create(open_clip, parsed.arch, str(parsed.path), None)
        except ModelError:
            raise
        except Exception as exc:
            raise ModelError(f"cannot load weights {parsed.path} into {parsed.arch}: {exc}") from exc
    elif parsed.kind == "pretrained":
        model = _pretrained(open_clip, parsed, spec, cache_dir)
    else:
        raise ModelError(f"{spec} is an ONNX model; it runs on ONNX Runtime only (use --runtime onnx)")
    return model.eval(), open_clip.get_tokenizer(parsed.arch)


def _pretrained(open_clip, parsed: ModelSpec, spec: str, cache_dir: Path | None):
    known = open_clip.list_pretrained_tags_by_model(parsed.arch)
    if parsed.arch in open_clip.list_models() and parsed.tag not in known:
        raise ModelError(
            f"{parsed.arch} has no pretrained tag {parsed.tag!r}; known tags: {', '.join(known) or 'none'}"
        )
    unreachable = _hub_unreachable(open_clip, parsed, cache_dir)
    try:
        if unreachable:
            raise ConnectionError(unreachable)
        return _create(open_clip, parsed.arch, parsed.tag, cache_dir)
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(
            f"could not download or load {spec}: {_download_reason(exc)}. The weights are fetched once "
            f"from the model hub into {cache_dir or 'the model cache'}; check your internet connection, "
            "or use a local checkpoint folder or a bundled model "
            f"({', '.join(bundled_models()) or 'none installed'})"
        ) from exc


def load_torch_encoder(
    parsed: ModelSpec, spec: str, device: str = "auto", cache_dir: Path | None = None
) -> OpenClipEncoder:
    dev = resolve_device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelError("--device cuda was asked for but no CUDA GPU is visible; use --device cpu or auto")
    model, tokenizer = build_model(parsed, spec, cache_dir)
    return OpenClipEncoder(
        model, tokenizer, preprocess_config_of(model), model_id_for(parsed), dev, spec=spec, is_random=parsed.is_random
    )
