"""What a ``--model`` spec names, and the id a store records for it, without loading anything.

Specs, in the order they are tried:
  NAME            a model that ships inside the package (see ``bundled_models()``)
  PATH            a checkpoint folder written by ``clipsearch train`` (open_clip's local-dir layout),
                  or a folder of ONNX towers in the Immich model-repository layout
  random:ARCH     random weights for tests and benchmarks; rankings are meaningless
  hf:OWNER/REPO   ONNX towers in the Immich layout, downloaded once from the Hugging Face hub
  ARCH:TAG        open_clip pretrained weights, downloaded once into the model cache (without torch,
                  the published ONNX export of PUBLISHED_ONNX, under the same model id)
  ARCH:FILE       open_clip architecture with weights from a local .safetensors/.pt file
  NAME@HASH       the model id `clipsearch status` prints for a bundled model or a model folder:
                  NAME is resolved as above and HASH must match the weights found
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

from clipsearch.errors import ModelError
from clipsearch.models.checkpoint import checkpoint_model_id, file_digest, is_checkpoint_dir, read_config
from clipsearch.models.layout import is_onnx_dir, onnx_dir_model_id

BUNDLED_DIR = Path(__file__).parent / "bundled"
CONFIGS_DIR = Path(__file__).parent / "configs"
HUB_PREFIX = "hf:"
# open_clip weights whose towers Immich publishes as ONNX in the layout we read (checked against
# Immich's model list). An explicit table: the repository names spell some tags differently.
PUBLISHED_ONNX = {
    "ViT-B-32:laion2b_s34b_b79k": "immich-app/ViT-B-32__laion2b-s34b-b79k",
    "ViT-B-32:laion2b_e16": "immich-app/ViT-B-32__laion2b_e16",
    "ViT-B-32:laion400m_e31": "immich-app/ViT-B-32__laion400m_e31",
    "ViT-B-32:laion400m_e32": "immich-app/ViT-B-32__laion400m_e32",
    "ViT-B-32:openai": "immich-app/ViT-B-32__openai",
    "ViT-B-16:laion400m_e31": "immich-app/ViT-B-16__laion400m_e31",
    "ViT-B-16:laion400m_e32": "immich-app/ViT-B-16__laion400m_e32",
    "ViT-B-16:openai": "immich-app/ViT-B-16__openai",
    "ViT-L-14:openai": "immich-app/ViT-L-14__openai",
}
# open_clip architectures whose text tower is a Hugging Face model, by name, for where open_clip's
# own configs cannot be read (the light install). Multilingual: the XLM-RoBERTa, mT5 and NLLB towers.
HF_TEXT_ARCH_PREFIXES = ("xlm-roberta-", "mt5-", "nllb-clip-", "roberta-", "coca_roberta-")
MULTILINGUAL_TEXT_TOWERS = ("xlm-roberta", "mt5", "nllb")


def bundled_models() -> list[str]:
    if not BUNDLED_DIR.is_dir():
        return []
    return sorted(p.name for p in BUNDLED_DIR.iterdir() if is_checkpoint_dir(p))


@dataclass(frozen=True)
class ModelSpec:
    kind: str  # bundled | checkpoint | onnx | hub | random | pretrained | file
    arch: str | None = None
    tag: str | None = None  # open_clip pretrained tag; the repository id for "hub"
    path: Path | None = None

    @property
    def is_random(self) -> bool:
        return self.kind == "random"

    @property
    def needs_torch_model(self) -> bool:
        """Whether only torch can load it (ONNX Runtime then needs an export first)."""
        return self.kind not in ("onnx", "hub")


def parse_model_spec(spec: str) -> ModelSpec:
    spec = spec.strip()
    if not spec:
        raise ModelError("empty --model; pass e.g. ViT-B-32:laion2b_s34b_b79k")
    if spec in bundled_models():
        return ModelSpec("bundled", path=BUNDLED_DIR / spec)
    path = Path(spec).expanduser()
    if path.is_dir():
        if is_onnx_dir(path):
            return ModelSpec("onnx", path=path.resolve())
        if not is_checkpoint_dir(path):
            raise ModelError(
                f"{path} is a folder but not a model: no open_clip_config.json (a checkpoint) "
                "and no visual/model.onnx + textual/model.onnx + config.json (ONNX towers)"
            )
        return ModelSpec("checkpoint", path=path.resolve())
    if spec.startswith("random:"):
        return ModelSpec("random", arch=spec.split(":", 1)[1])
    if spec.startswith(HUB_PREFIX):
        repo = spec[len(HUB_PREFIX) :]
        if repo.count("/") != 1 or not all(repo.split("/")):
            raise ModelError(f"{spec!r}: a hub model is hf:OWNER/REPO, e.g. hf:immich-app/ViT-B-32__openai")
        return ModelSpec("hub", tag=repo)
    if ":" in spec:
        arch, tag = spec.split(":", 1)
        tag_path = Path(tag).expanduser()
        if tag_path.suffix in (".safetensors", ".pt", ".pth", ".bin") or tag_path.is_file():
            if not tag_path.is_file():
                raise ModelError(f"weights file {tag_path} does not exist")
            return ModelSpec("file", arch=arch, path=tag_path.resolve())
        return ModelSpec("pretrained", arch=arch, tag=tag)
    if "@" in spec:
        return _parse_model_id(spec)
    if looks_like_path(spec):
        raise ModelError(f"model path {spec} does not exist")
    raise ModelError(
        f"unknown model {spec!r}: use ARCH:TAG (e.g. ViT-B-32:laion2b_s34b_b79k), a checkpoint "
        f"or ONNX folder, hf:OWNER/REPO, random:ARCH, or a bundled model "
        f"({', '.join(bundled_models()) or 'none installed'})"
    )


def hf_text_tower(parsed: ModelSpec) -> str | None:
    """The Hugging Face model a spec's text tower is built from (e.g. "xlm-roberta-base"), or None.

    Such towers need transformers, their tokenizer is the HF model's (not CLIP's BPE), and they run on
    the torch runtime. Read from the architecture's config without importing open_clip.
    """
    if parsed.kind in ("bundled", "checkpoint") and parsed.path is not None:
        cfg = read_config(parsed.path).get("model_cfg", {})
    elif parsed.arch:
        cfg = _arch_config(parsed.arch)
        if cfg is None:
            return parsed.arch if parsed.arch.startswith(HF_TEXT_ARCH_PREFIXES) else None
    else:
        return None
    name = cfg.get("text_cfg", {}).get("hf_model_name")
    return str(name) if name else None


def is_multilingual(text_tower: str | None) -> bool:
    return bool(text_tower) and any(key in str(text_tower).lower() for key in MULTILINGUAL_TEXT_TOWERS)


def _arch_config(arch: str) -> dict | None:
    """An architecture's JSON config from clipsearch's or open_clip's config folder; None when unreadable."""
    try:
        found = importlib.util.find_spec("open_clip")
    except ImportError:
        found = None
    folders = [CONFIGS_DIR]
    if found is not None and found.submodule_search_locations:
        folders += [Path(p) / "model_configs" for p in found.submodule_search_locations]
    for folder in folders:
        path = folder / f"{arch}.json"
        if path.is_file():
            return dict(json.loads(path.read_text()))
    return {} if found is not None else None  # an unknown arch is open_clip's to refuse


def _parse_model_id(spec: str) -> ModelSpec:
    """NAME@HASH, a model id as a store records it: the model NAME names, if its weights have that hash."""
    name, _, digest = spec.rpartition("@")
    if not name or not digest or "@" in name:
        raise ModelError(f"model {spec!r}: a model id is NAME@HASH, e.g. {_example_id()}")
    try:
        base = parse_model_spec(name)
    except ModelError as exc:
        raise ModelError(
            f"model {spec!r}: {name} is neither a bundled model "
            f"({', '.join(bundled_models()) or 'none installed'}) nor a model folder; pass its folder's path"
        ) from exc
    found = model_id_for(base)
    if base.kind not in ("bundled", "checkpoint", "onnx") or found.rpartition("@")[2] != digest:
        raise ModelError(
            f"model {spec!r}: the weights found for {name} are {found}, not hash {digest}; "
            f"pass --model {name} to use them, or the folder holding the weights with hash {digest}"
        )
    return base


def _example_id() -> str:
    names = bundled_models()
    return model_id_for(names[0]) if names else "shapes-mini@4baa561068e4"


def published_onnx_repo(parsed: ModelSpec) -> str | None:
    """The hub repository of a pretrained spec's published ONNX export, or None."""
    if parsed.kind != "pretrained":
        return None
    return PUBLISHED_ONNX.get(f"{parsed.arch}:{parsed.tag}")


def looks_like_path(spec: str) -> bool:
    return os.sep in spec or spec.startswith(".") or spec.startswith("~")


def model_id_for(spec: str | ModelSpec) -> str:
    """The id a store records for this spec, computed without loading weights.

    It names the weights, not the runtime: a store indexed on torch is queried on ONNX Runtime.
    """
    parsed = parse_model_spec(spec) if isinstance(spec, str) else spec
    if parsed.kind in ("bundled", "checkpoint"):
        return checkpoint_model_id(parsed.path)
    if parsed.kind == "onnx":
        return onnx_dir_model_id(parsed.path)
    if parsed.kind == "hub":
        return f"{HUB_PREFIX}{parsed.tag}"
    if parsed.kind == "random":
        return f"random:{parsed.arch}"
    if parsed.kind == "file":
        return f"{parsed.arch}:{parsed.path.name}"
    return f"{parsed.arch}:{parsed.tag}"


def weights_key(parsed: ModelSpec) -> str:
    """The model cache's key for a torch-loadable model's ONNX export: its weights, by hash where they are a file."""
    if parsed.kind in ("bundled", "checkpoint"):
        return checkpoint_model_id(parsed.path).replace("@", "-")
    if parsed.kind == "file":
        return f"{parsed.arch}-{file_digest(parsed.path)}"
    if parsed.kind == "random":
        # Random initialisation is seeded but belongs to the installed open_clip and torch.
        from importlib.metadata import version

        return f"random-{parsed.arch}-open_clip{version('open_clip_torch')}-torch{version('torch')}"
    # A pretrained tag names fixed published weights; hashing them would mean downloading them.
    return f"{parsed.arch}-{parsed.tag}"
