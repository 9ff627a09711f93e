"""Texts are encoded over their own tokens only (up to the batch's last end token), with the same vectors.

The export checks this and records it (clipsearch.json ``text_shortening``); the encoder cuts
batches only where it is recorded and the graph's sequence axis is dynamic.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from conftest import MODEL

from clipsearch.models import layout, load_encoder
from clipsearch.models.onnx_encoder import SHORTENING, OnnxEncoder
from clipsearch.models.text_export import check_texts, shortenable

LONG = "three small circles and a dog on a beach " * 20  # far past any context: truncated


def _batches(context: int) -> list[list[str]]:
    return [*check_texts(context), [LONG], ["a dog", LONG, ""], ["a dog on a beach"] * 8]


def _sessions_seen(encoder: OnnxEncoder) -> list[tuple[int, ...]]:
    """Record the shape of every text batch the ONNX session runs."""
    shapes: list[tuple[int, ...]] = []
    session = encoder.textual.session
    run = session.run

    def recording(outputs, feed, *args, **kwargs):
        shapes.append(next(iter(feed.values())).shape)
        return run(outputs, feed, *args, **kwargs)

    session.run = recording
    return shapes


@pytest.mark.parametrize("spec", [MODEL, "shapes-mini"])
def test_cut_batches_embed_like_the_full_context_on_torch(spec, model_cache):
    onnx = load_encoder(spec, cache_dir=model_cache, runtime="onnx")
    torch_ = load_encoder(spec, cache_dir=model_cache, runtime="torch")
    marker = layout.read_json(onnx.folder, layout.MARKER)[SHORTENING]
    assert marker["allowed"] and marker["min_cosine_vs_full_context"] >= 0.9999
    assert onnx.textual.session.get_inputs()[0].shape == ["batch", "sequence"], "the graph's length is symbolic"
    context = onnx.context_length
    for batch in _batches(context):
        ours, reference = onnx.encode_texts(batch), torch_.encode_texts(batch)  # torch: always the full context
        assert float(np.sum(ours * reference, axis=1).min()) >= 0.9999, batch
        longest = max(onnx.count_tokens(t) for t in batch)
        assert onnx.last_text_length == min(longest, context), batch


def test_the_session_sees_only_the_tokens_a_query_needs(model_cache):
    encoder = load_encoder(MODEL, cache_dir=model_cache, runtime="onnx")
    shapes = _sessions_seen(encoder)
    encoder.encode_text("a dog on a beach")  # start, 5 words, end
    encoder.encode_texts(["a red circle", "a photo of a dog on a beach", ""])  # 8 words: 10
    encoder.encode_texts([LONG, "a dog"])
    assert shapes == [(1, 7), (3, 10), (2, encoder.context_length)]


def test_int8_text_tower_is_cut_too(tmp_path, model_cache):
    encoder = load_encoder(MODEL, cache_dir=model_cache, runtime="onnx")
    encoder.cache_dir = tmp_path
    fp32 = encoder.encode_texts(["a dog on a beach", LONG])
    encoder.quantize_text_tower()
    shapes = _sessions_seen(encoder)
    int8 = encoder.encode_texts(["a dog on a beach", LONG])
    assert shapes == [(2, encoder.context_length)]
    encoder.encode_text("a dog on a beach")
    assert shapes[-1] == (1, 7)
    assert float(np.sum(fp32 * int8, axis=1).min()) >= 0.99


def test_folders_without_the_record_get_the_full_context(model_cache, tmp_path):
    ours = load_encoder(MODEL, cache_dir=model_cache, runtime="onnx")
    # Immich's published layout carries no clipsearch.json: its graphs take the full context.
    immich = tmp_path / "immich"
    shutil.copytree(ours.folder, immich)
    (immich / layout.MARKER).unlink()
    foreign = OnnxEncoder(immich, "immich", str(immich))
    shapes = _sessions_seen(foreign)
    assert np.allclose(foreign.encode_texts(["a dog on a beach"]), ours.encode_texts(["a dog on a beach"]), atol=1e-5)
    assert shapes == [(1, ours.context_length)]


def test_a_fixed_length_graph_is_never_cut_whatever_the_record_says(model_cache, tmp_path):
    import onnx

    ours = load_encoder(MODEL, cache_dir=model_cache, runtime="onnx")
    fixed = tmp_path / "fixed"
    shutil.copytree(ours.folder, fixed)
    graph = onnx.load(str(fixed / layout.TEXTUAL))
    graph.graph.input[0].type.tensor_type.shape.dim[1].dim_value = ours.context_length
    onnx.save(graph, str(fixed / layout.TEXTUAL))
    encoder = OnnxEncoder(fixed, "fixed", str(fixed))
    assert encoder.shorten, "the record is still there"
    shapes = _sessions_seen(encoder)
    encoder.encode_text("a dog")
    assert shapes == [(1, ours.context_length)]


def test_only_causal_end_token_pooled_towers_are_shortenable():
    from clipsearch.models.openclip import build_model
    from clipsearch.models.spec import parse_model_spec

    model, _ = build_model(parse_model_spec(MODEL), MODEL, None)
    assert shortenable(model) is None
    model.attn_mask.zero_()  # every position sees every other: later tokens change the pooled one
    assert "not causal" in shortenable(model)
    model.text_pool_type = "last"
    assert "pools by 'last'" in shortenable(model)


def test_an_export_of_the_first_format_is_used_only_where_torch_cannot_export(model_cache, tmp_path, monkeypatch):
    from clipsearch.models import parse_model_spec, repository

    ours = load_encoder(MODEL, cache_dir=model_cache, runtime="onnx")
    parsed = parse_model_spec(MODEL)
    assert ours.folder == repository.export_dir(parsed, model_cache) and ours.folder.name.endswith(".v2")
    older = tmp_path / "onnx" / ours.folder.name.removesuffix(".v2")
    shutil.copytree(ours.folder, older)
    monkeypatch.setattr(repository, "torch_available", lambda: False)
    assert load_encoder(MODEL, cache_dir=tmp_path, runtime="onnx").folder == older
