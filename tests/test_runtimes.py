"""The two model runtimes: ONNX exports match torch, load from the Immich layout, and are chosen as asked.

The towers are exported once per session into the shared model cache (conftest), so the
export itself is paid once; the tests that need a fresh export use their own cache folder.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import MODEL, index_json, make_photos, pattern_image, query_json, run_cli

from clipsearch.errors import ModelError
from clipsearch.models import choose_runtime, layout, load_encoder, parse_model_spec
from clipsearch.models.onnx_encoder import OnnxEncoder
from clipsearch.models.openclip import OpenClipEncoder
from clipsearch.models.repository import export_dir

TEXTS = ["a red circle", "three small circles", "ünïcödé 写真 🐕", "a dog " * 40, ""]


def _images(size: int) -> np.ndarray:
    return np.random.default_rng(7).integers(0, 256, (4, size, size, 3), dtype=np.uint8)


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sum(a * b, axis=1).min())


@pytest.mark.parametrize("spec", [MODEL, "shapes-mini"])
def test_onnx_towers_embed_like_torch(spec, model_cache):
    onnx = load_encoder(spec, cache_dir=model_cache, runtime="onnx")
    torch_ = load_encoder(spec, cache_dir=model_cache, runtime="torch")
    assert isinstance(onnx, OnnxEncoder) and isinstance(torch_, OpenClipEncoder)
    assert (onnx.runtime, torch_.runtime) == ("onnx", "torch")
    # One model, one id: a store indexed on one runtime is queried on the other.
    assert onnx.model_id == torch_.model_id and onnx.dim == torch_.dim
    assert onnx.preprocess_cfg == torch_.preprocess_cfg and onnx.context_length == torch_.context_length
    pixels = _images(onnx.preprocess_cfg.size)
    assert _min_cosine(onnx.encode_images(pixels), torch_.encode_images(pixels)) >= 0.9999
    assert _min_cosine(onnx.encode_texts(TEXTS), torch_.encode_texts(TEXTS)) >= 0.9999
    assert [onnx.count_tokens(t) for t in TEXTS] == [torch_.count_tokens(t) for t in TEXTS]
    assert onnx.encode_images(pixels).dtype == np.float32
    assert np.allclose(np.linalg.norm(onnx.encode_texts(TEXTS), axis=1), 1, atol=1e-5)


def test_bundled_model_ships_its_onnx_towers_and_queries_without_torch(tmp_path):
    encoder = load_encoder("shapes-mini", cache_dir=tmp_path / "empty-cache")
    assert isinstance(encoder, OnnxEncoder)
    assert encoder.folder == parse_model_spec("shapes-mini").path / "onnx"
    assert not (tmp_path / "empty-cache").exists(), "the bundled model must not export anything"
    probe = (
        "import sys\n"
        "from clipsearch.models import load_encoder\n"
        "e = load_encoder('shapes-mini')\n"
        "from PIL import Image\n"
        "print(e.runtime, e.encode_texts(['a red circle']).shape, e.encode_image(Image.new('RGB', (80, 60))).shape)\n"
        "print(sorted(m for m in ('torch', 'open_clip', 'torchvision') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["onnx (1, 128) (128,)", "[]"]


def test_export_is_cached_by_weights_and_records_its_check(model_cache):
    load_encoder(MODEL, cache_dir=model_cache, runtime="onnx")
    folder = export_dir(parse_model_spec(MODEL), model_cache)
    assert not layout.missing_files(folder)
    marker = layout.read_json(folder, layout.MARKER)
    assert marker["model_id"] == MODEL and marker["opset"] == 18
    assert min(marker["min_cosine_vs_torch"].values()) >= 0.9999
    started = time.perf_counter()
    again = load_encoder(MODEL, cache_dir=model_cache, runtime="onnx")
    assert again.folder == folder and time.perf_counter() - started < 5, "a cached export is not exported again"


def test_immich_layout_folder_loads_directly(model_cache, tmp_path):
    ours = load_encoder(MODEL, cache_dir=model_cache, runtime="onnx")
    # Our export in the Immich layout, without our marker: what a downloaded Immich model looks like.
    folder = tmp_path / "ViT-tiny__test"
    shutil.copytree(ours.folder, folder)
    (folder / layout.MARKER).unlink()
    foreign = load_encoder(str(folder))
    assert isinstance(foreign, OnnxEncoder) and foreign.model_id.startswith("ViT-tiny__test@")
    pixels = _images(foreign.preprocess_cfg.size)
    assert np.allclose(foreign.encode_images(pixels), ours.encode_images(pixels), atol=1e-6)
    assert np.allclose(foreign.encode_texts(TEXTS), ours.encode_texts(TEXTS), atol=1e-6)
    with pytest.raises(ModelError, match="ONNX towers only"):
        load_encoder(str(folder), runtime="torch")


def test_immich_towers_with_a_fixed_batch_of_one_encode_batches(model_cache, tmp_path):
    import onnx

    ours = load_encoder(MODEL, cache_dir=model_cache, runtime="onnx")
    folder = tmp_path / "fixed"
    shutil.copytree(ours.folder, folder)
    for name in (layout.VISUAL, layout.TEXTUAL):  # Immich exports without a dynamic batch axis
        graph = onnx.load(str(folder / name))
        for value in (*graph.graph.input, *graph.graph.output):
            value.type.tensor_type.shape.dim[0].dim_value = 1
        onnx.save(graph, str(folder / name))
    fixed = load_encoder(str(folder))
    assert not fixed.visual.batched and not fixed.textual.batched
    pixels = _images(fixed.preprocess_cfg.size)
    assert np.allclose(fixed.encode_images(pixels), ours.encode_images(pixels), atol=1e-6)
    assert np.allclose(fixed.encode_texts(TEXTS), ours.encode_texts(TEXTS), atol=1e-6)


def test_immich_folder_indexes_and_queries_from_the_cli(model_cache, tmp_path, photos):
    folder = tmp_path / "model"
    shutil.copytree(load_encoder(MODEL, cache_dir=model_cache, runtime="onnx").folder, folder)
    (folder / layout.MARKER).unlink()
    summary = index_json(photos, "--model", str(folder))
    assert summary["new"] == 14 and summary["failed"] == 0
    hits = query_json("a picture", "-k", "3")
    assert len(hits) == 3 and hits[0]["score"] >= hits[-1]["score"]


def test_a_store_indexed_on_torch_answers_on_onnx(photos):
    index_json(photos, "--runtime", "torch")
    first = photos / "img000.jpg"
    on_torch = query_json("--image", first, "-k", "5", "--runtime", "torch")
    on_onnx = query_json("--image", first, "-k", "5")
    assert [h["path"] for h in on_onnx][:1] == [str(first)] == [h["path"] for h in on_torch][:1]
    assert [h["score"] for h in on_onnx] == pytest.approx([h["score"] for h in on_torch], abs=1e-3)


def test_runtime_is_chosen_by_option_then_environment_then_auto(monkeypatch, model_cache):
    parsed = parse_model_spec(MODEL)
    assert choose_runtime("auto", "cpu", "index", parsed) == "onnx"
    assert choose_runtime("auto", "auto", "query", parsed) == "onnx"
    assert choose_runtime("auto", "cuda", "index", parsed) == "torch"
    assert choose_runtime("torch", "cpu", "query", parsed) == "torch"
    assert choose_runtime("onnx", "cuda", "index", parsed) == "onnx"  # on onnxruntime-gpu's CUDA provider
    with pytest.raises(ModelError, match="CLIPSEARCH_RUNTIME"):
        choose_runtime("tensorrt", "cpu", "query", parsed)

    from clipsearch.settings import Settings
    from clipsearch.store import Store

    monkeypatch.setenv("CLIPSEARCH_RUNTIME", "torch")
    store = Store.open(Settings.from_env())
    onnx_store = Store.open(store.settings.with_(runtime="onnx"))
    try:
        assert store.load_encoder(MODEL).runtime == "torch"
        assert onnx_store.load_encoder(MODEL).runtime == "onnx"
    finally:
        store.close()
        onnx_store.close()
    monkeypatch.setenv("CLIPSEARCH_RUNTIME", "tensorrt")
    result = run_cli("index", make_photos(model_cache.parent / "few", 1)[0])
    assert result.exit_code == 1 and "unknown runtime 'tensorrt'" in result.output
    result = run_cli("query", "x", "--runtime", "gpu")
    assert result.exit_code == 1 and "--runtime 'gpu': use onnx, torch or auto" in result.output


def test_a_failed_check_falls_back_to_torch_once_and_remembers(tmp_path, monkeypatch, caplog):
    import clipsearch.models.export as export

    monkeypatch.setattr(export, "MIN_COSINE", 1.5)  # no export can pass: the check must fail
    with caplog.at_level(logging.INFO, logger="clipsearch"):
        encoder = load_encoder(MODEL, cache_dir=tmp_path, runtime="onnx")
    assert encoder.runtime == "torch"
    assert "does not match torch" in caplog.text and "using torch" in caplog.text
    assert "[1/3] image tower" in caplog.text, "the export shows its progress"
    folder = export_dir(parse_model_spec(MODEL), tmp_path)
    assert not folder.exists() and not list(tmp_path.glob("onnx/.*.tmp")), "no half export is left behind"

    def no_second_export(*args, **kwargs):
        raise AssertionError("a failed export must not be tried again on every load")

    monkeypatch.setattr(export, "export_model", no_second_export)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="clipsearch"):
        assert load_encoder(MODEL, cache_dir=tmp_path, runtime="onnx").runtime == "torch"
    assert "does not match torch" in caplog.text


def test_hub_download_offline_fails_at_once_with_one_line(tmp_path):
    started = time.perf_counter()
    with pytest.raises(ModelError) as caught:
        load_encoder("hf:immich-app/ViT-B-32__openai", cache_dir=tmp_path)
    assert time.perf_counter() - started < 3
    assert "HF_HUB_OFFLINE" in str(caught.value) and "\n" not in str(caught.value)


def test_hub_unreachable_fails_in_seconds_from_the_cli(photos, tmp_path):
    import os
    import socket

    with socket.socket() as sock:  # a port nothing listens on: the hub is unreachable
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": f"http://127.0.0.1:{port}"}
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "clipsearch", "index", str(photos), "--model", "hf:immich-app/ViT-B-32__openai"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 1
    assert time.perf_counter() - started < 30
    lines = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("indexing")]
    assert lines[-1].startswith("error: could not download hf:immich-app/ViT-B-32__openai: the hub is not reachable")
    assert len([line for line in lines if "hub" in line]) <= 2, proc.stderr


def test_hub_download_lands_once_in_the_cache(model_cache, tmp_path, monkeypatch):
    import huggingface_hub

    source = load_encoder(MODEL, cache_dir=model_cache, runtime="onnx").folder
    calls = []

    def fake_hub(repo_id, local_dir, allow_patterns, **kwargs):  # the hub, mocked: copies an Immich-layout repo
        calls.append(repo_id)
        shutil.copytree(source, local_dir, dirs_exist_ok=True)
        return str(local_dir)

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_hub)
    encoder = load_encoder("hf:someone/tiny-clip", cache_dir=tmp_path)
    assert encoder.model_id == "hf:someone/tiny-clip" and encoder.folder == tmp_path / "hub" / "someone--tiny-clip"
    assert load_encoder("hf:someone/tiny-clip", cache_dir=tmp_path).folder == encoder.folder
    assert calls == ["someone/tiny-clip"]


def test_int8_text_tower_on_onnx_keeps_the_text_embeddings(tmp_path, model_cache):
    encoder = load_encoder("shapes-mini", cache_dir=tmp_path, runtime="onnx")
    image = encoder.encode_image(pattern_image(3))
    fp32 = encoder.encode_texts(TEXTS)
    encoder.quantize_text_tower()
    assert encoder.text_path.is_relative_to(tmp_path), "derived files go to the cache, not the package"
    int8 = encoder.encode_texts(TEXTS)
    assert _min_cosine(fp32, int8) >= 0.99
    assert not np.allclose(fp32, int8, atol=1e-5), "the int8 tower must really be quantised"
    assert np.allclose(encoder.encode_image(pattern_image(3)), image)
