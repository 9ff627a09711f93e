"""Building the model to train: from an architecture config, or from any --model spec."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from clipsearch.errors import ModelError, TrainingError
from clipsearch.imaging import PreprocessConfig
from clipsearch.models import load_encoder, parse_model_spec
from clipsearch.models.checkpoint import read_config
from clipsearch.models.openclip import open_clip_with_configs, preprocess_config_of


@dataclass
class ModelBundle:
    model: torch.nn.Module
    model_cfg: dict
    preprocess_cfg: PreprocessConfig
    tokenizer: Callable
    source: str  # "arch:NAME" or "from:SPEC", recorded in the checkpoint


def _arch_name(arch: str) -> str:
    """An architecture name, registering a .json config file first when one is given."""
    open_clip = open_clip_with_configs()
    path = Path(arch).expanduser()
    if path.suffix == ".json":
        if not path.is_file():
            raise TrainingError(f"architecture config {path} does not exist")
        open_clip.add_model_config(path)
        return path.stem
    if arch not in open_clip.list_models():
        raise TrainingError(
            f"unknown architecture {arch!r}; use a config under clipsearch/models/configs, "
            f"an open_clip model name, or a path to a .json config"
        )
    return arch


def from_arch(arch: str, seed: int) -> ModelBundle:
    """A freshly initialised model (seeded, so a run is reproducible)."""
    open_clip = open_clip_with_configs()
    name = _arch_name(arch)
    torch.manual_seed(seed)
    model = open_clip.create_model(name)
    model_cfg = open_clip.get_model_config(name)
    return ModelBundle(model, model_cfg, preprocess_config_of(model), open_clip.get_tokenizer(name), f"arch:{name}")


def from_spec(spec: str) -> ModelBundle:
    """Start from any model load_encoder accepts (bundled, checkpoint folder, ARCH:TAG, random:ARCH)."""
    open_clip = open_clip_with_configs()
    encoder = load_encoder(spec, device="cpu", runtime="torch")
    parsed = parse_model_spec(spec)
    if parsed.kind in ("bundled", "checkpoint"):
        model_cfg = read_config(parsed.path).get("model_cfg")
    else:
        model_cfg = open_clip.get_model_config(parsed.arch)
    if not model_cfg:
        raise ModelError(f"cannot find the architecture config of {spec}; it cannot be saved after fine-tuning")
    model = encoder.model.float().train()
    return ModelBundle(model, model_cfg, encoder.preprocess_cfg, encoder.tokenizer, f"from:{spec}")
