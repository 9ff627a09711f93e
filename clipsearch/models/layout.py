"""The Immich model-repository layout for ONNX towers, read and written here.

    config.json                  open_clip model config (embed_dim, vision_cfg, text_cfg)
    visual/model.onnx            image tower: "image" float32 (N, 3, S, S) normalised -> "embedding"
    visual/preprocess_cfg.json   size, mean, std, interpolation, resize_mode
    textual/model.onnx           text tower: "text" int32 (N, context_length) -> "embedding"
    textual/tokenizer.json       a Hugging Face `tokenizers` file
    textual/tokenizer_config.json  pad token and length
    clipsearch.json              (ours only) the model id, source and the verification against torch

Folders in this layout (Immich's published models, or our own exports) load without torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from clipsearch.errors import ModelError

CONFIG = "config.json"
VISUAL = "visual/model.onnx"
TEXTUAL = "textual/model.onnx"
PREPROCESS = "visual/preprocess_cfg.json"
TOKENIZER = "textual/tokenizer.json"
TOKENIZER_CONFIG = "textual/tokenizer_config.json"
MARKER = "clipsearch.json"
FILES = (CONFIG, VISUAL, TEXTUAL, PREPROCESS, TOKENIZER)


def is_onnx_dir(path: Path) -> bool:
    return all((path / name).is_file() for name in (CONFIG, VISUAL, TEXTUAL))


def missing_files(path: Path) -> list[str]:
    return [name for name in FILES if not (path / name).is_file()]


def read_json(path: Path, name: str) -> dict:
    try:
        return json.loads((path / name).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path / name} is not readable JSON ({exc}); delete {path} to export it again") from exc


def onnx_dir_model_id(path: Path) -> str:
    """Our exports carry the id of the weights they came from; other folders get a content fingerprint."""
    recorded = read_json(path, MARKER).get("model_id")
    if recorded:
        return str(recorded)
    return f"{path.name}@{_fingerprint(path)}"


def _fingerprint(path: Path) -> str:
    # Hashing two towers of hundreds of MB would cost a cold query a second; their config,
    # sizes and both ends identify them as well in practice.
    digest = hashlib.sha256((path / CONFIG).read_bytes())
    for name in (VISUAL, TEXTUAL):
        file = path / name
        size = file.stat().st_size
        digest.update(str(size).encode())
        with open(file, "rb") as fh:
            digest.update(fh.read(1 << 20))
            fh.seek(max(0, size - (1 << 20)))
            digest.update(fh.read())
    return digest.hexdigest()[:12]


def write_json(path: Path, name: str, data: dict) -> None:
    target = path / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def staging_dir(final: Path) -> Path:
    """A temp folder beside `final`, to fill and then `commit`: readers never see half an export."""
    final.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp"))


def commit(staging: Path, final: Path) -> Path:
    os.chmod(staging, 0o755)  # mkdtemp makes it private; the model cache may be shared
    try:
        os.rename(staging, final)
    except OSError:
        # Another process finished the same export first: keep theirs.
        shutil.rmtree(staging, ignore_errors=True)
        if not is_onnx_dir(final):
            raise
    return final
