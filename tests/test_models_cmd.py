"""`clipsearch models`: bundled models, open_clip's pretrained tags and the local cache, all offline."""

from __future__ import annotations

import json

from conftest import ok, run_cli

from clipsearch.models import bundled_models, model_id_for


def test_models_lists_bundled_open_clip_and_cache(home, monkeypatch):
    cache = home / "models"
    (cache / "onnx" / "abc123").mkdir(parents=True)
    (cache / "onnx" / "abc123" / "visual.onnx").write_bytes(b"x" * 2000)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("CLIPSEARCH_MODEL_CACHE", str(cache))
    info = json.loads(ok(run_cli("models", "--json")).stdout)
    assert [row["spec"] for row in info["bundled"]] == bundled_models()
    for row in info["bundled"]:
        assert row["model_id"] == model_id_for(row["spec"]) and row["embed_dim"] > 0
        assert set(row["query_prompts"]) == {"default", "templates"}  # recorded by bench/prompts.py
    specs = {row["spec"]: row for row in info["open_clip"]}
    assert len(specs) > 100  # open_clip's own table, read offline
    default = specs["ViT-B-32-256:datacomp_s34b_b86k"]
    assert (default["embed_dim"], default["image_size"]) == (512, 256) and default["hub"]
    assert info["cache"] == str(cache) and info["cached"] == [{"name": "onnx/abc123", "bytes": 2000}]

    text = ok(run_cli("models")).stdout
    assert "bundled (offline, in the package):" in text and "ViT-B-32-256:datacomp_s34b_b86k" in text
    assert "onnx/abc123" in text
