"""An int8 text tower for CPU queries (CLIPSEARCH_TEXT_INT8): ONNX Runtime's dynamic quantisation, made once."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from clipsearch.errors import ModelError
from clipsearch.models import layout

log = logging.getLogger(__name__)


def int8_text_tower(folder: Path, model_id: str, cache_dir: Path) -> Path:
    """The int8 version of `folder`'s text tower, quantised into the model cache on first use."""
    key = "".join(c if c.isalnum() or c in "._-" else "_" for c in model_id)
    target = cache_dir / "int8" / key / "textual.onnx"
    if target.is_file():
        return target
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:
        raise ModelError(f"the int8 text tower needs the onnx package ({exc}); pip install onnx") from None
    log.info(f"quantising the text tower of {model_id} to int8 (once, into {target})")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".onnx.tmp")
    os.close(fd)
    try:
        # Weights of MatMul/Gemm only: the embedding table and layer norms stay fp32.
        quantize_dynamic(
            str(folder / layout.TEXTUAL), tmp, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"]
        )
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target
