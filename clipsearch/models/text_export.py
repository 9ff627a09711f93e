"""The text tower's ONNX export with a dynamic sequence axis, and the check that shortening is exact.

CLIP's text tower (open_clip's ``CLIP`` with ``text_pool_type == "argmax"``) is a causal
transformer pooled at the end-of-text token (the highest id in a row): no position after the EOT
can reach the pooled vector, so a batch cut just after its longest EOT embeds like the full
context. Exported with the positional embedding and the causal mask sliced to the input's
length, a typical 7-token query runs ~10x fewer positions than 77.

The TorchScript exporter bakes the sequence length into nn.MultiheadAttention's reshapes, so
this tower goes through the dynamo exporter. The graph is then checked (``verify_shortening``)
on fixed inputs; the folder's ``clipsearch.json`` records the result under ``text_shortening``
and the encoder shortens only when it says ``allowed``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)
SEQUENCE_AXIS = "sequence"


class ShortText(torch.nn.Module):
    """open_clip's ``CLIP.encode_text`` with the positions and the mask cut to the input's length."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, text):
        m = self.model
        n = text.shape[1]
        x = m.token_embedding(text) + m.positional_embedding[:n]
        x = m.transformer(x, attn_mask=m.attn_mask[:n, :n])
        x = m.ln_final(x)
        x = x[torch.arange(x.shape[0]), text.argmax(dim=-1)]
        if isinstance(m.text_projection, torch.nn.Linear):
            return m.text_projection(x)
        return x if m.text_projection is None else x @ m.text_projection


def shortenable(model) -> str | None:
    """None when ``ShortText`` reproduces the model's text tower, else why not."""
    needed = ("token_embedding", "positional_embedding", "transformer", "ln_final", "text_projection", "attn_mask")
    missing = [name for name in needed if not hasattr(model, name)]
    if missing:
        return f"{type(model).__name__} has no {', '.join(missing)} (not open_clip's CLIP text tower)"
    if getattr(model, "text_pool_type", None) != "argmax":
        return f"the text tower pools by {getattr(model, 'text_pool_type', None)!r}, not at the end token (argmax)"
    mask = model.attn_mask
    if mask is None:
        return "the text tower has no causal mask: every position sees every other"
    n = mask.shape[0]
    causal = torch.full((n, n), float("-inf")).triu_(1)
    if mask.shape != (n, n) or not torch.equal(mask.float(), causal):
        return "the text tower's attention mask is not causal"
    return None


def export_short_text(model, path: Path, context_length: int, opset: int) -> None:
    """The text tower with dynamic batch and sequence axes, "text" int32 -> "embedding"."""
    import onnx

    example = torch.ones(2, min(8, context_length), dtype=torch.int32)
    dims = {
        0: torch.export.Dim("batch"),
        1: torch.export.Dim(SEQUENCE_AXIS, min=1, max=context_length),
    }
    module = ShortText(model).eval()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        # The dynamo exporter prints its progress; the export's own progress line is ours.
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module,
            (example,),
            input_names=["text"],
            opset_version=opset,
            dynamo=True,
            dynamic_shapes=(dims,),
            verbose=False,
        )
    graph = program.model_proto
    _rename_output(graph.graph, "embedding")
    shape = graph.graph.input[0].type.tensor_type.shape.dim
    if shape[1].dim_value:
        raise RuntimeError(f"the exported text tower has a fixed sequence length {shape[1].dim_value}")
    shape[0].dim_param, shape[1].dim_param = "batch", SEQUENCE_AXIS
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(graph, str(path))


def _rename_output(graph, name: str) -> None:
    # The dynamo exporter names values after their ops: the token embedding's Gather already
    # produces "embedding", the name the layout gives the output. Rename that one first.
    out = graph.output[0].name
    for node in graph.node:
        for values in (node.input, node.output):
            for i, value in enumerate(values):
                if value == name:
                    values[i] = f"{name}__tokens"
                elif value == out:
                    values[i] = name
    graph.output[0].name = name


def check_texts(context_length: int) -> list[list[str]]:
    """Fixed batches for the check: short, empty, exactly the context, one token more, truncated, mixed."""
    exact = " ".join(["a"] * (context_length - 2))  # "a" is one token: start + tokens + end = context
    return [
        ["a dog on a beach"],
        [""],
        [exact],
        [exact + " a"],
        ["three small circles " * 30],
        ["a red circle", "a photo of a dog on a beach at sunset with friends", "", "x"],
        ["tiny", exact, "Ünïcödé, emoji 🐕 and punctuation!?"],
        ["a cat", "three small circles " * 30, "a"],
    ]


def verify_shortening(model, tokenizer, encoder) -> float:
    """Minimum cosine between torch on the full context and ``encoder`` encoding cut batches.

    ``encoder`` is the OnnxEncoder of the new folder with shortening forced on; a batch that
    is cut to fewer positions than the context proves the graph took the short input.
    """
    from clipsearch.models.base import l2_normalise

    worst, cut = 1.0, False
    for batch in check_texts(encoder.context_length):
        ids = tokenizer(batch)
        with torch.no_grad():
            reference = l2_normalise(model.encode_text(ids).numpy())
        worst = min(worst, float(np.sum(reference * encoder.encode_texts(batch), axis=1).min()))
        cut = cut or encoder.last_text_length < ids.shape[1]
    if not cut:
        raise RuntimeError("no check batch was shortened")
    return worst
