"""An int8 text tower for CPU queries (CLIPSEARCH_TEXT_INT8): ONNX Runtime's dynamic quantisation, made once."""

from __future__ import annotations

import hashlib
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
    source = folder / layout.TEXTUAL
    # Keyed by the fp32 file too: a new export of the same weights (a dynamic length) gets a new int8 tower.
    stat = source.stat()
    digest = hashlib.sha256(f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    target = cache_dir / "int8" / key / f"textual-{digest}.onnx"
    if target.is_file():
        return target
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:
        raise ModelError(f"the int8 text tower needs the onnx package ({exc}); pip install onnx") from exc
    log.info(f"quantising the text tower of {model_id} to int8 (once, into {target})")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".onnx.tmp")
    os.close(fd)
    plain = tmp + ".fp32"
    try:
        _fp32_weights(folder / layout.TEXTUAL, plain)
        # Weights of MatMul/Gemm only: the embedding table and layer norms stay fp32.
        quantize_dynamic(plain, tmp, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"])
        os.replace(tmp, target)
    finally:
        for path in (tmp, plain):
            if os.path.exists(path):
                os.unlink(path)
    return target


def _fp32_weights(source: Path, out: str) -> None:
    """The graph with weights stored as float16 + Cast (see export) turned back into float32 weights:
    the quantiser only quantises a MatMul whose weight is an initializer."""
    import numpy as np
    import onnx
    from onnx import TensorProto, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    halves = {init.name: init for init in graph.initializer if init.data_type == TensorProto.FLOAT16}
    for node in list(graph.node):
        if node.op_type == "Cast" and len(node.input) == 1 and node.input[0] in halves:
            weights = numpy_helper.to_array(halves[node.input[0]]).astype(np.float32)
            graph.initializer.append(numpy_helper.from_array(weights, node.output[0]))
            graph.node.remove(node)
    used = {name for node in graph.node for name in node.input}
    for name, init in halves.items():
        if name not in used:
            graph.initializer.remove(init)
    onnx.save(model, out)
