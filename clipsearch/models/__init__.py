"""Resolving a ``--model`` spec to an encoder.

Specs, in the order they are tried:
  NAME            a model that ships inside the package (see ``bundled_models()``)
  PATH            a checkpoint folder written by ``clipsearch train`` (or open_clip's local-dir layout)
  random:ARCH     random weights for tests and benchmarks; rankings are meaningless
  ARCH:TAG        open_clip pretrained weights, downloaded once into the model cache
  ARCH:FILE       open_clip architecture with weights from a local .safetensors/.pt file
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from clipsearch.errors import ModelError
from clipsearch.imaging import PreprocessConfig
from clipsearch.models.base import Encoder
from clipsearch.models.checkpoint import checkpoint_model_id, is_checkpoint_dir
from clipsearch.models.openclip import OpenClipEncoder, resolve_device

BUNDLED_DIR = Path(__file__).parent / "bundled"
CONFIGS_DIR = Path(__file__).parent / "configs"
RANDOM_SEED = 0

__all__ = ["Encoder", "ModelSpec", "load_encoder", "parse_model_spec", "bundled_models", "resolve_device"]


def bundled_models() -> list[str]:
    if not BUNDLED_DIR.is_dir():
        return []
    return sorted(p.name for p in BUNDLED_DIR.iterdir() if is_checkpoint_dir(p))


@dataclass(frozen=True)
class ModelSpec:
    kind: str  # bundled | checkpoint | random | pretrained | file
    arch: str | None = None
    tag: str | None = None
    path: Path | None = None

    @property
    def is_random(self) -> bool:
        return self.kind == "random"


_configs_registered = False


def open_clip_with_configs():
    """open_clip, with clipsearch's own architecture configs registered (once)."""
    global _configs_registered
    import open_clip

    if not _configs_registered:
        open_clip.add_model_config(CONFIGS_DIR)
        _configs_registered = True
    return open_clip


def parse_model_spec(spec: str) -> ModelSpec:
    spec = spec.strip()
    if not spec:
        raise ModelError("empty --model; pass e.g. ViT-B-32-256:datacomp_s34b_b86k")
    if spec in bundled_models():
        return ModelSpec("bundled", path=BUNDLED_DIR / spec)
    path = Path(spec).expanduser()
    if path.is_dir():
        if not is_checkpoint_dir(path):
            raise ModelError(f"{path} is a folder but not a checkpoint (no open_clip_config.json in it)")
        return ModelSpec("checkpoint", path=path.resolve())
    if spec.startswith("random:"):
        return ModelSpec("random", arch=spec.split(":", 1)[1])
    if ":" in spec:
        arch, tag = spec.split(":", 1)
        tag_path = Path(tag).expanduser()
        if tag_path.suffix in (".safetensors", ".pt", ".pth", ".bin") or tag_path.is_file():
            if not tag_path.is_file():
                raise ModelError(f"weights file {tag_path} does not exist")
            return ModelSpec("file", arch=arch, path=tag_path.resolve())
        return ModelSpec("pretrained", arch=arch, tag=tag)
    if looks_like_path(spec):
        raise ModelError(f"model path {spec} does not exist")
    raise ModelError(
        f"unknown model {spec!r}: use ARCH:TAG (e.g. ViT-B-32-256:datacomp_s34b_b86k), a checkpoint "
        f"folder, random:ARCH, or a bundled model ({', '.join(bundled_models()) or 'none installed'})"
    )


def looks_like_path(spec: str) -> bool:
    return os.sep in spec or spec.startswith(".") or spec.startswith("~")


def model_id_for(spec: str) -> str:
    """The id a store records for this spec, computed without loading weights."""
    parsed = parse_model_spec(spec)
    if parsed.kind in ("bundled", "checkpoint"):
        return checkpoint_model_id(parsed.path)
    if parsed.kind == "random":
        return f"random:{parsed.arch}"
    if parsed.kind == "file":
        return f"{parsed.arch}:{parsed.path.name}"
    return f"{parsed.arch}:{parsed.tag}"


def preprocess_config_of(model) -> PreprocessConfig:
    cfg = dict(getattr(model.visual, "preprocess_cfg", {}) or {})
    if not cfg:
        from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

        cfg = {"size": model.visual.image_size, "mean": OPENAI_DATASET_MEAN, "std": OPENAI_DATASET_STD}
    return PreprocessConfig.from_dict(cfg)


def _create(open_clip, name: str, pretrained: str | None, cache_dir: Path | None):
    try:
        return open_clip.create_model(name, pretrained=pretrained, cache_dir=str(cache_dir) if cache_dir else None)
    except RuntimeError as exc:
        if "not found in built-ins" in str(exc):
            raise ModelError(
                f"unknown architecture {name!r}; "
                '`python -c "import open_clip; print(open_clip.list_models())"` lists them'
            ) from None
        raise


def _download_reason(exc: Exception) -> str:
    text = str(exc)
    if os.environ.get("HF_HUB_OFFLINE") in ("1", "true", "True"):
        return "downloads are switched off (HF_HUB_OFFLINE is set) and the weights are not in the cache"
    if "Internet connection" in text or "local cache" in text or "Name or service" in text:
        return "the model hub is not reachable and the weights are not in the cache"
    return text if len(text) < 300 else text[:300] + "..."


def load_encoder(spec: str, device: str = "auto", cache_dir: Path | None = None) -> Encoder:
    parsed = parse_model_spec(spec)
    open_clip = open_clip_with_configs()
    dev = resolve_device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelError("--device cuda was asked for but no CUDA GPU is visible; use --device cpu or auto")
    model_id = model_id_for(spec)
    if parsed.kind in ("bundled", "checkpoint"):
        name = f"local-dir:{parsed.path}"
        try:
            model = open_clip.create_model(name)
        except Exception as exc:
            raise ModelError(f"cannot load checkpoint {parsed.path}: {exc}") from None
        model = model.float()
        tokenizer = open_clip.get_tokenizer(name)
    elif parsed.kind == "random":
        # Seeded so that every process builds the same random model: a store indexed
        # with random:ARCH must be queryable by a later process.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_SEED)
            model = _create(open_clip, parsed.arch, None, None)
        tokenizer = open_clip.get_tokenizer(parsed.arch)
    elif parsed.kind == "file":
        try:
            model = _create(open_clip, parsed.arch, str(parsed.path), None)
        except ModelError:
            raise
        except Exception as exc:
            raise ModelError(f"cannot load weights {parsed.path} into {parsed.arch}: {exc}") from None
        tokenizer = open_clip.get_tokenizer(parsed.arch)
    else:
        known = open_clip.list_pretrained_tags_by_model(parsed.arch)
        if parsed.arch in open_clip.list_models() and parsed.tag not in known:
            raise ModelError(
                f"{parsed.arch} has no pretrained tag {parsed.tag!r}; known tags: {', '.join(known) or 'none'}"
            )
        try:
            model = _create(open_clip, parsed.arch, parsed.tag, cache_dir)
        except ModelError:
            raise
        except Exception as exc:
            raise ModelError(
                f"could not download or load {spec}: {_download_reason(exc)}. The weights are fetched once "
                f"from the model hub into {cache_dir or 'the model cache'}; check your internet connection, "
                "or use a local checkpoint folder or a bundled model "
                f"({', '.join(bundled_models()) or 'none installed'})"
            ) from None
    encoder = OpenClipEncoder(model, tokenizer, preprocess_config_of(model), model_id, dev)
    encoder.is_random = parsed.is_random
    encoder.spec = spec
    return encoder
