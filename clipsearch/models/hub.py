"""Downloading a model in the Immich layout from the Hugging Face hub, once."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from clipsearch.errors import ModelError
from clipsearch.models import layout

log = logging.getLogger(__name__)
# What the Immich layout needs; Immich's repositories also hold other runtimes' files (rknpu, armnn).
PATTERNS = ["config.json", "visual/model.onnx", "visual/*.json", "textual/model.onnx", "textual/*.json"]


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def download(repo: str, cache_dir: Path) -> Path:
    target = cache_dir / "hub" / repo.replace("/", "--")
    if layout.is_onnx_dir(target):
        return target
    if _offline():
        raise ModelError(
            f"hf:{repo} is not in the model cache ({target}) and downloads are switched off (HF_HUB_OFFLINE is set)"
        )
    from huggingface_hub import snapshot_download

    log.info(f"downloading hf:{repo} into {target} (once)")
    staging = layout.staging_dir(target)
    try:
        # One attempt with a short timeout: an unreachable hub fails in seconds, not after retries.
        snapshot_download(repo, local_dir=staging, allow_patterns=PATTERNS, etag_timeout=5)
        shutil.rmtree(staging / ".cache", ignore_errors=True)
        missing = layout.missing_files(staging)
        if missing:
            raise ModelError(f"hf:{repo} is not a CLIP model in the Immich layout ({', '.join(missing)} missing)")
        return layout.commit(staging, target)
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"could not download hf:{repo}: {_reason(exc)}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _reason(exc: Exception) -> str:
    name = type(exc).__name__
    if "RepositoryNotFound" in name:
        return "no such repository on the hub (or it is private)"
    if "Connect" in name or "Timeout" in name or "Offline" in name or "LocalEntryNotFound" in name:
        return "the hub is not reachable; check the internet connection, or pass a local model folder"
    text = str(exc).splitlines()[0] if str(exc) else name
    return text if len(text) < 200 else text[:200] + "..."
