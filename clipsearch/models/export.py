"""Exporting a torch-loadable model's towers to ONNX, checked against torch before anyone uses them.

``export_model`` is the entry point (the model cache's exports and the bundled model's shipped
files both come from it). Opset 18. The image tower: the TorchScript exporter (dynamo=False)
with a dynamic batch axis. The text tower: dynamic batch and sequence axes through the dynamo
exporter where the tower is CLIP's causal, end-token pooled one (see ``text_export``), so a
query encodes only its own tokens; otherwise the TorchScript exporter at the full context.
The folder is written in the Immich layout (see ``layout``) into a staging folder, verified,
then renamed into place.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
import warnings
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch

from clipsearch.errors import ModelError
from clipsearch.models import layout
from clipsearch.models.base import l2_normalise
from clipsearch.models.onnx_encoder import SHORTENING, OnnxEncoder
from clipsearch.models.openclip import build_model, preprocess_config_of
from clipsearch.models.spec import ModelSpec, model_id_for

log = logging.getLogger(__name__)
OPSET = 18
# Per vector, against torch on the same inputs; fp32 exports reach 0.99999+ (max abs diff ~4e-6).
MIN_COSINE = 0.9999
CHECK_TEXTS = [
    "a photo of a dog on a beach",
    "a red circle",
    "Ünïcödé, emoji 🐕 and punctuation!?",
    "three small circles " * 30,  # longer than any context: truncation
    "",
]


class ExportMismatchError(ModelError):
    """The exported towers do not reproduce torch's embeddings; torch should be used instead."""


class _Tower(torch.nn.Module):
    def __init__(self, model, image: bool):
        super().__init__()
        self.model = model
        self.image = image

    def forward(self, x):
        return self.model.encode_image(x) if self.image else self.model.encode_text(x)


def export_model(parsed: ModelSpec, spec: str, out: Path, weights_cache: Path | None) -> Path:
    """Export `spec` into `out` (a folder in the Immich layout) or raise ExportMismatchError."""
    started = time.perf_counter()
    model, tokenizer = build_model(parsed, spec, weights_cache)
    context_length = int(getattr(tokenizer, "context_length", 77))
    _require_clip_bpe(tokenizer, spec)
    staging = layout.staging_dir(out)
    try:
        log.info(f"exporting {spec} to ONNX (once, into {out}): [1/3] image tower")
        pre = preprocess_config_of(model)
        _export(_Tower(model, image=True), torch.randn(2, 3, pre.size, pre.size), staging / layout.VISUAL, "image")
        log.info(f"exporting {spec} to ONNX: [2/3] text tower")
        why_not_short = _export_text(model, context_length, staging / layout.TEXTUAL)
        _write_metadata(staging, parsed, spec, model, pre, context_length)
        log.info(f"exporting {spec} to ONNX: [3/3] checking it against torch")
        scores = verify(model, tokenizer, staging, parsed, spec)
        shortening = _check_shortening(model, tokenizer, staging, parsed, spec, why_not_short)
        layout.write_json(staging, layout.MARKER, _marker(parsed, spec, scores) | {SHORTENING: shortening})
        layout.commit(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info(
        f"exported {spec} to ONNX in {time.perf_counter() - started:.0f} s "
        f"(cosine with torch >= {min(scores.values()):.6f})"
    )
    return out


def _require_clip_bpe(tokenizer, spec: str) -> None:
    from open_clip.tokenizer import SimpleTokenizer

    # Only CLIP's own BPE has a torch-free tokenizer here (clipsearch.models.tokenizer).
    if not isinstance(tokenizer, SimpleTokenizer):
        raise ExportMismatchError(f"{spec} does not use CLIP's BPE tokenizer; only torch can run it here")


def _export_text(model, context_length: int, path: Path) -> str | None:
    """The text tower with a dynamic length where that is exact; else why not (then at the full context)."""
    from clipsearch.models.text_export import export_short_text, shortenable

    reason = shortenable(model)
    if reason is None:
        try:
            with _no_fastpath():
                export_short_text(model, path, context_length, OPSET)
            _store_exact_fp16(path)
            return None
        except Exception as exc:  # the dynamo exporter raises many types; the fixed export still works
            reason = f"the dynamic-length export failed ({type(exc).__name__}: {exc})"
            log.warning(f"{reason}; exporting the text tower at {context_length} tokens")
    tokens = torch.ones(2, context_length, dtype=torch.int32)
    _export(_Tower(model, image=False), tokens, path, "text")
    return reason


def _check_shortening(model, tokenizer, staging: Path, parsed: ModelSpec, spec: str, reason: str | None) -> dict:
    """What the marker records under SHORTENING: allowed only when cut batches embed like full ones."""
    from clipsearch.models.text_export import verify_shortening

    if reason is not None:
        return {"allowed": False, "reason": reason}
    encoder = OnnxEncoder(staging, model_id_for(parsed), spec, threads=None)
    encoder.shorten = True
    cosine = verify_shortening(model, tokenizer, encoder)
    if cosine < MIN_COSINE:
        log.warning(
            f"{spec}: texts cut after their end token embed differently (cosine {cosine:.6f}); using the full context"
        )
        return {"allowed": False, "min_cosine_vs_full_context": cosine, "reason": "the check failed"}
    return {"allowed": True, "min_cosine_vs_full_context": cosine}


@contextlib.contextmanager
def _no_fastpath():
    # The fused attention fast path (taken under no_grad) has no ONNX export; switched off for
    # the export only, and back as it was.
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)


def _export(module: torch.nn.Module, example: torch.Tensor, path: Path, input_name: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # eval() on the wrapper: the exporter restores the wrapper's mode afterwards, and a fresh
    # module is in training mode, which would flip BatchNorm layers of the wrapped model to training.
    module.eval()
    with _no_fastpath():
        _run_export(module, example, path, input_name)
    _store_exact_fp16(path)


def _run_export(module: torch.nn.Module, example: torch.Tensor, path: Path, input_name: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (example,),
            str(path),
            input_names=[input_name],
            output_names=["embedding"],
            opset_version=OPSET,
            dynamo=False,
            dynamic_axes={input_name: {0: "batch"}, "embedding": {0: "batch"}},
        )


def _store_exact_fp16(path: Path) -> None:
    """Store weights that are exactly representable in float16 as float16 plus a Cast: half the
    file for checkpoints saved in half precision (the bundled model), the same numbers for
    ONNX Runtime, which folds the casts when it loads the graph."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(path))
    graph, casts = model.graph, []
    for init in list(graph.initializer):
        if init.data_type != TensorProto.FLOAT or np.prod(init.dims) < 1024:
            continue
        weights = numpy_helper.to_array(init)
        half = weights.astype(np.float16)
        if not np.array_equal(half.astype(np.float32), weights):
            continue
        graph.initializer.remove(init)
        graph.initializer.append(numpy_helper.from_array(half, f"{init.name}__fp16"))
        casts.append(helper.make_node("Cast", [f"{init.name}__fp16"], [init.name], to=TensorProto.FLOAT))
    if casts:
        for node in reversed(casts):
            graph.node.insert(0, node)
        onnx.save(model, str(path))


def _write_metadata(staging: Path, parsed: ModelSpec, spec: str, model, pre, context_length: int) -> None:
    from clipsearch.models.tokenizer import ClipTokenizer

    layout.write_json(staging, layout.CONFIG, _model_config(parsed, spec, model, context_length))
    layout.write_json(staging, layout.PREPROCESS, pre.to_dict())
    tokenizer = ClipTokenizer.from_vocab(context_length=context_length)
    tokenizer.save(staging / layout.TOKENIZER)
    layout.write_json(staging, layout.TOKENIZER_CONFIG, tokenizer.tokenizer_config())


def _model_config(parsed: ModelSpec, spec: str, model, context_length: int) -> dict:
    from clipsearch.models.checkpoint import read_config
    from clipsearch.models.openclip import open_clip_with_configs

    if parsed.kind in ("bundled", "checkpoint"):
        config = dict(read_config(parsed.path).get("model_cfg") or {})
    else:
        config = dict(open_clip_with_configs().get_model_config(parsed.arch) or {})
    with torch.no_grad():
        config["embed_dim"] = int(model.encode_text(torch.zeros(1, context_length, dtype=torch.long)).shape[1])
    config.setdefault("text_cfg", {})["context_length"] = context_length
    return config


def reference_inputs(size: int) -> np.ndarray:
    """Fixed check images: seeded noise plus flat and gradient images (saturated and smooth inputs)."""
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (3, size, size, 3), dtype=np.uint8)
    ramp = np.broadcast_to(np.linspace(0, 255, size, dtype=np.uint8)[None, :, None], (size, size, 3))
    flat = np.full((size, size, 3), 255, np.uint8)
    return np.concatenate([noise, ramp[None], flat[None]])


def verify(model, tokenizer, folder: Path, parsed: ModelSpec, spec: str) -> dict[str, float]:
    """Minimum per-vector cosine between the ONNX folder and torch, on images and texts."""
    onnx = OnnxEncoder(folder, model_id_for(parsed), spec, threads=None)
    pre = onnx.preprocess_cfg
    pixels = reference_inputs(pre.size)
    mean = torch.tensor(pre.mean).view(1, 3, 1, 1)
    std = torch.tensor(pre.std).view(1, 3, 1, 1)
    with torch.no_grad():
        x = (torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255 - mean) / std
        ref_images = l2_normalise(model.encode_image(x).numpy())
        ref_texts = l2_normalise(model.encode_text(tokenizer(CHECK_TEXTS)).numpy())
    scores = {
        "image": float(np.sum(ref_images * onnx.encode_images(pixels), axis=1).min()),
        "text": float(np.sum(ref_texts * onnx.encode_texts(CHECK_TEXTS), axis=1).min()),
    }
    if min(scores.values()) < MIN_COSINE:
        raise ExportMismatchError(
            f"the ONNX export of {spec} does not match torch (cosine image {scores['image']:.6f}, "
            f"text {scores['text']:.6f}, needed >= {MIN_COSINE})"
        )
    return scores


def _marker(parsed: ModelSpec, spec: str, scores: dict[str, float]) -> dict:
    return {
        "model_id": model_id_for(parsed),
        "exported_from": spec,
        "min_cosine_vs_torch": scores,
        "opset": OPSET,
        "versions": {name: version(name) for name in ("torch", "open_clip_torch", "onnxruntime")},
    }
