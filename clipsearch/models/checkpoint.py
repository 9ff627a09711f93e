"""Self-describing checkpoints: open_clip's local-dir layout plus clipsearch's own metadata.

A checkpoint folder holds ``open_clip_config.json`` (architecture, preprocessing and
tokenizer, as open_clip reads it) and ``open_clip_model.safetensors``. Loading reads
safetensors only, so a checkpoint from a stranger can never run code on unpickling.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from clipsearch.errors import ModelError
from clipsearch.imaging import PreprocessConfig

if TYPE_CHECKING:
    import torch

CONFIG_NAME = "open_clip_config.json"
WEIGHTS_NAME = "open_clip_model.safetensors"


def is_checkpoint_dir(path: Path) -> bool:
    return path.is_dir() and (path / CONFIG_NAME).is_file()


def weights_digest(path: Path) -> str:
    return file_digest(path / WEIGHTS_NAME)


def file_digest(path: Path) -> str:
    """12 hex digits of the file's SHA-256."""
    # One `clipsearch index` asks for the id several times (mismatch check, load, bind);
    # large weights are read once per file version.
    st = os.stat(path)
    return _file_digest(str(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _file_digest(path: str, _size: int, _mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:12]


def read_config(path: Path) -> dict:
    try:
        return json.loads((path / CONFIG_NAME).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path} is not a readable clipsearch/open_clip checkpoint: {exc}") from exc


def checkpoint_model_id(path: Path) -> str:
    """Content-addressed id: the same weights give the same id wherever the folder lives."""
    config = read_config(path)
    name = config.get("clipsearch", {}).get("name") or path.name
    if not (path / WEIGHTS_NAME).is_file():
        raise ModelError(f"{path} has no {WEIGHTS_NAME}; it is not a complete checkpoint")
    return f"{name}@{weights_digest(path)}"


def save_checkpoint(
    model: torch.nn.Module,
    model_cfg: dict,
    preprocess_cfg: PreprocessConfig,
    out_dir: Path,
    metadata: dict | None = None,
    half: bool = False,
) -> Path:
    """Write weights and config; the weights file is replaced atomically."""
    from safetensors.torch import save_file  # torch, only where a checkpoint is written

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {
        key: (value.half() if half and value.is_floating_point() else value).detach().cpu().contiguous()
        for key, value in model.state_dict().items()
    }
    fd, tmp = tempfile.mkstemp(dir=out_dir, suffix=".tmp")
    os.close(fd)
    save_file(state, tmp)
    os.chmod(tmp, 0o644)  # mkstemp makes it private; a checkpoint is meant to be shared
    os.replace(tmp, out_dir / WEIGHTS_NAME)
    config = {
        "model_cfg": model_cfg,
        "preprocess_cfg": preprocess_cfg.to_dict(),
        "clipsearch": metadata or {},
    }
    (out_dir / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return out_dir
