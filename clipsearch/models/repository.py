"""Where a spec's ONNX towers come from: the folder itself, the package, the model cache, an export, the hub.

MODEL_CACHE/onnx/<weights key>.v2/       our export of a torch-loadable model (Immich layout)
MODEL_CACHE/onnx/<weights key>.v2.failed.json   an export that did not match torch (torch is used)
MODEL_CACHE/onnx/<weights key>/          an export of the first format (text tower at the full
                                         context), used only where torch cannot export again
MODEL_CACHE/hub/<owner>--<repo>/         a model downloaded once from the hub (Immich layout), also
                                         an ARCH:TAG's published export where torch is not installed
"""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path

from clipsearch.errors import ModelError
from clipsearch.models import layout
from clipsearch.models.spec import PUBLISHED_ONNX, ModelSpec, hf_text_tower, published_onnx_repo, weights_key

log = logging.getLogger(__name__)
BUNDLED_ONNX = "onnx"  # a bundled model's towers: BUNDLED_DIR/<name>/onnx/
# The export's format, in its folder's name: 2 gave the text tower a dynamic length. An older
# export is not reused where torch can make the new one (a query would run 77 positions).
EXPORT_FORMAT = 2


def torch_available() -> bool:
    try:
        return importlib.util.find_spec("torch") is not None and importlib.util.find_spec("open_clip") is not None
    except ImportError:  # an import hook that refuses the package: not installed, as far as we are concerned
        return False


def hf_text_needs_torch(spec: str, text_tower: str) -> str:
    return (
        f"{spec} has a Hugging Face text tower ({text_tower}; the multilingual models do), which runs on the "
        "torch runtime only: pip install 'clipsearch[torch]' (torch, open_clip and transformers); its config "
        "and tokenizer are downloaded once from the Hugging Face hub"
    )


def export_dir(parsed: ModelSpec, cache_dir: Path) -> Path:
    return _first_format_dir(parsed, cache_dir).with_name(f"{_key(parsed)}.v{EXPORT_FORMAT}")


def _first_format_dir(parsed: ModelSpec, cache_dir: Path) -> Path:
    return cache_dir / "onnx" / _key(parsed)


def _key(parsed: ModelSpec) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in weights_key(parsed))


def onnx_folder(parsed: ModelSpec, spec: str, cache_dir: Path) -> Path | None:
    """The folder of ONNX towers for `spec`, exported or downloaded on first use.

    None when an export was made and did not match torch: the caller uses torch.
    """
    if parsed.kind == "onnx":
        return parsed.path
    if parsed.kind == "hub":
        from clipsearch.models.hub import download

        return download(parsed.tag, cache_dir)
    if parsed.kind == "bundled" and layout.is_onnx_dir(parsed.path / BUNDLED_ONNX):
        return parsed.path / BUNDLED_ONNX
    text_tower = hf_text_tower(parsed)
    if text_tower is not None:
        # A Hugging Face text tower (the multilingual models): its tokenizer is not CLIP's BPE, which
        # the ONNX encoder implements, so the model runs on torch.
        if not torch_available():
            raise ModelError(hf_text_needs_torch(spec, text_tower))
        log.debug(f"{spec}: text tower {text_tower} runs on torch")
        return None
    target = export_dir(parsed, cache_dir)
    if layout.is_onnx_dir(target):
        return target
    failed = target.with_name(target.name + ".failed.json")
    if failed.is_file():
        reason = json.loads(failed.read_text()).get("reason", "the ONNX export did not match torch")
        log.warning(f"{reason}; using torch")
        return None
    if not torch_available():
        older = _first_format_dir(parsed, cache_dir)
        if layout.is_onnx_dir(older):
            return older
        published = published_onnx_repo(parsed)
        if published is not None:
            # The same weights, exported by Immich: the store records ARCH:TAG either way.
            from clipsearch.models.hub import download

            return download(published, cache_dir)
        raise ModelError(
            f"{spec} must be exported to ONNX once, which needs torch: pip install 'clipsearch[torch]', "
            "or use a model in the ONNX layout (--model PATH or hf:OWNER/REPO, or one of "
            f"{', '.join(PUBLISHED_ONNX)}, which load published exports)"
        )
    from clipsearch.models.export import ExportMismatchError, export_model

    try:
        return export_model(parsed, spec, target, cache_dir)
    except ExportMismatchError as exc:
        # Remembered, so that every later query does not export again only to fail again.
        failed.parent.mkdir(parents=True, exist_ok=True)
        failed.write_text(json.dumps({"reason": str(exc)}) + "\n")
        log.warning(f"{exc}; using torch")
        return None
