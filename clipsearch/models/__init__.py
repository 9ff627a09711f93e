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
    "load_encoder",
    "model_id_for",
    "parse_model_spec",
]


def load_encoder(spec: str, device: str = "auto", cache_dir: Path | None = None, runtime: str = "torch") -> Encoder:
    """The encoder for `spec` on `runtime`."""
    if runtime not in RUNTIMES:
        raise ModelError(f"unknown runtime {runtime!r}; use one of {', '.join(RUNTIMES)}")
    parsed = parse_model_spec(spec)
    from clipsearch.models.openclip import load_torch_encoder

    return load_torch_encoder(parsed, spec.strip(), device, cache_dir)
