"""What `clipsearch models` lists: the bundled models, open_clip's architectures and pretrained tags
(read from open_clip's own tables, offline), and what the local model cache holds. Never the hub."""

from __future__ import annotations

import json
from pathlib import Path

from clipsearch.models import BUNDLED_DIR, bundled_models, model_id_for
from clipsearch.models.prompts import query_prompts
from clipsearch.models.spec import is_multilingual


def bundled() -> list[dict]:
    rows = []
    for name in bundled_models():
        config = json.loads((BUNDLED_DIR / name / "open_clip_config.json").read_text())
        model_cfg = config.get("model_cfg", config)
        prompts = query_prompts(name)
        rows.append(
            {
                "spec": name,
                "model_id": model_id_for(name),
                "embed_dim": model_cfg.get("embed_dim"),
                "image_size": model_cfg.get("vision_cfg", {}).get("image_size"),
                "path": str(BUNDLED_DIR / name),
                "query_prompts": {"default": prompts.default, "templates": list(prompts.templates)},
            }
        )
    return rows


def open_clip_pretrained() -> list[dict] | None:
    """open_clip's (architecture, tag) pairs with their dimensions; None without open_clip (torch)."""
    try:
        import open_clip
    except ImportError:
        return None
    rows = []
    for arch, tag in open_clip.list_pretrained():
        cfg = open_clip.get_model_config(arch) or {}
        vision, text = cfg.get("vision_cfg", {}), cfg.get("text_cfg", {})
        source = open_clip.get_pretrained_cfg(arch, tag) or {}
        hf_text = text.get("hf_model_name")
        rows.append(
            {
                "spec": f"{arch}:{tag}",
                "embed_dim": cfg.get("embed_dim"),
                "image_size": vision.get("image_size"),
                "vision": _tower(vision),
                "text": hf_text or _tower(text),
                "hub": (source.get("hf_hub") or "").rstrip("/") or None,
                # A Hugging Face text tower runs on torch (with transformers), never exported to ONNX.
                "runtime": "torch" if hf_text else "onnx or torch",
                "multilingual": is_multilingual(hf_text),
            }
        )
    return rows


def _tower(cfg: dict) -> str | None:
    if cfg.get("timm_model_name"):
        return str(cfg["timm_model_name"])
    if "layers" in cfg and "width" in cfg:
        layers = cfg["layers"] if isinstance(cfg["layers"], int) else sum(cfg["layers"])
        return f"{layers} layers x {cfg['width']} wide"
    return None


def cached(cache: Path) -> list[dict]:
    """Top-level entries of the model cache (downloads, ONNX exports, hub folders) with their sizes."""
    if not cache.is_dir():
        return []
    rows = []
    for area in sorted(cache.iterdir()):
        entries = sorted(area.iterdir()) if area.is_dir() and area.name in ("onnx", "hub", "int8") else [area]
        for entry in entries:
            size = (
                sum(f.stat().st_size for f in entry.rglob("*") if f.is_file())
                if entry.is_dir()
                else entry.stat().st_size
            )
            rows.append({"name": str(entry.relative_to(cache)), "bytes": size})
    return rows
