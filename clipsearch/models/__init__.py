"""Resolving a ``--model`` spec to an encoder on a runtime (see ``spec`` for the specs).

Nothing here imports torch or onnxruntime: the runtime's module is imported when an
encoder is loaded, so commands that never load a model never pay for either.
"""

from __future__ import annotations

from pathlib import Path

from clipsearch.errors import ModelError
from clipsearch.models.base import Encoder
from clipsearch.models.spec import (
    BUNDLED_DIR,
    CONFIGS_DIR,
    ModelSpec,
    bundled_models,
    model_id_for,
    parse_model_spec,
)

RUNTIMES = ("auto", "onnx", "torch")

__all__ = [
    "BUNDLED_DIR",
    "CONFIGS_DIR",
    "RUNTIMES",
    "Encoder",
    "ModelSpec",
    "bundled_models",
    "choose_runtime",
    "load_encoder",
    "model_id_for",
    "parse_model_spec",
]


def load_encoder(
    spec: str,
    device: str = "auto",
    cache_dir: Path | None = None,
    runtime: str = "auto",
    purpose: str = "query",
) -> Encoder:
    """The encoder for `spec` on `runtime` (see ``choose_runtime``), its ONNX towers exported on first use."""
    parsed = parse_model_spec(spec)
    spec = spec.strip()
    chosen = choose_runtime(runtime, device, purpose, parsed)
    cache_dir = cache_dir or _default_cache()
    if chosen == "onnx":
        from clipsearch.models.onnx_encoder import OnnxEncoder
        from clipsearch.models.repository import onnx_folder

        folder = onnx_folder(parsed, spec, cache_dir)
        if folder is not None:
            return OnnxEncoder(
                folder,
                model_id_for(parsed),
                spec,
                parsed.is_random,
                cache_dir=cache_dir,
                device=device,
                purpose=purpose,
            )
    from clipsearch.models.openclip import load_torch_encoder

    return load_torch_encoder(parsed, spec, device, cache_dir)


def choose_runtime(runtime: str, device: str, purpose: str, parsed: ModelSpec) -> str:
    """ "onnx" or "torch": asked for, or auto: torch on a CUDA device where torch is installed, else ONNX Runtime.

    ONNX Runtime runs on CUDA too where onnxruntime-gpu is installed (see ``sessions.providers_for``).
    """
    if runtime not in RUNTIMES:
        raise ModelError(f"unknown runtime {runtime!r} (--runtime or CLIPSEARCH_RUNTIME); use onnx, torch or auto")
    if not parsed.needs_torch_model:
        if runtime == "torch":
            raise ModelError(f"{parsed.path or parsed.tag} holds ONNX towers only; use --runtime onnx")
        return "onnx"
    if runtime != "auto":
        return runtime
    if device.startswith("cuda"):
        from clipsearch.models.repository import torch_available

        return "torch" if torch_available() else "onnx"
    if device == "auto" and purpose == "index" and _cuda_gpu():
        return "torch"
    return "onnx"


def _cuda_gpu() -> bool:
    # Importing torch to ask costs seconds: only where an NVIDIA driver shows a GPU.
    gpus = Path("/proc/driver/nvidia/gpus")
    if not (gpus.is_dir() and any(gpus.iterdir())):
        return False
    from clipsearch.models.repository import torch_available

    if not torch_available():
        return False
    import torch

    return torch.cuda.is_available()


def _default_cache() -> Path:
    from clipsearch.settings import Settings

    return Settings.from_env().model_cache
