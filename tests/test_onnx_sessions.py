"""ONNX Runtime sessions: the execution provider chosen from the device, and the optimised graph cached.

No GPU here: the provider list onnxruntime reports and the NVIDIA driver's GPU list are
simulated; the sessions themselves are real (on the CPU).
"""

from __future__ import annotations

import os

import numpy as np
import onnxruntime as ort
import pytest
from conftest import MODEL

from clipsearch.errors import ModelError
from clipsearch.models import choose_runtime, load_encoder, parse_model_spec, sessions
from clipsearch.models.onnx_encoder import OnnxEncoder

GPU_BUILD = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
CPU_ONLY = ["CPUExecutionProvider"]
CUDA = [("CUDAExecutionProvider", {"device_id": 0}), "CPUExecutionProvider"]


def _simulate(monkeypatch, providers: list[str], gpu: bool) -> None:
    monkeypatch.setattr(ort, "get_available_providers", lambda: providers)
    monkeypatch.setattr(sessions, "nvidia_gpu", lambda: gpu)


def _record_sessions(monkeypatch) -> list[dict]:
    """Every InferenceSession created: its file, providers and optimisation level; then run on the CPU."""
    calls: list[dict] = []
    real = ort.InferenceSession

    def recording(path, options, providers):
        calls.append({"path": path, "providers": providers, "level": options.graph_optimization_level})
        return real(path, options, providers=CPU_ONLY)

    monkeypatch.setattr(ort, "InferenceSession", recording)
    return calls


@pytest.mark.parametrize(
    ("device", "purpose", "providers", "gpu", "expected"),
    [
        ("cpu", "index", GPU_BUILD, True, CPU_ONLY),
        ("auto", "index", GPU_BUILD, True, CUDA),
        ("auto", "query", GPU_BUILD, True, CPU_ONLY),  # a CUDA context costs a cold query seconds
        ("auto", "index", GPU_BUILD, False, CPU_ONLY),  # onnxruntime-gpu on a machine without a GPU
        ("cuda", "query", GPU_BUILD, True, CUDA),
        ("cuda:1", "index", GPU_BUILD, True, [("CUDAExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"]),
        ("auto", "index", CPU_ONLY, True, CPU_ONLY),
    ],
)
def test_provider_follows_the_device_and_what_onnxruntime_offers(
    monkeypatch, device, purpose, providers, gpu, expected
):
    _simulate(monkeypatch, providers, gpu)
    assert sessions.providers_for(device, purpose) == expected


def test_cuda_without_onnxruntime_gpu_is_one_clear_line(monkeypatch):
    _simulate(monkeypatch, CPU_ONLY, True)
    with pytest.raises(ModelError) as caught:
        sessions.providers_for("cuda", "index")
    message = str(caught.value)
    assert "pip install onnxruntime-gpu" in message and "CPUExecutionProvider" in message and "\n" not in message


def test_encoder_creates_its_sessions_on_the_chosen_provider(monkeypatch, model_cache, tmp_path):
    folder = load_encoder(MODEL, cache_dir=model_cache, runtime="onnx").folder
    _simulate(monkeypatch, GPU_BUILD, True)
    calls = _record_sessions(monkeypatch)
    encoder = OnnxEncoder(folder, MODEL, MODEL, cache_dir=tmp_path, device="auto", purpose="index")
    assert encoder.device == "cuda"
    encoder.encode_texts(["a red circle"])
    assert [c["providers"] for c in calls] == [CUDA]
    query = OnnxEncoder(folder, MODEL, MODEL, cache_dir=tmp_path, device="auto", purpose="query")
    query.encode_texts(["a red circle"])
    assert query.device == "cpu" and calls[-1]["providers"] == CPU_ONLY


def test_onnx_runtime_may_run_on_cuda_when_asked(monkeypatch):
    parsed = parse_model_spec(MODEL)
    assert choose_runtime("onnx", "cuda", "index", parsed) == "onnx"
    from clipsearch.models import repository

    monkeypatch.setattr(repository, "torch_available", lambda: False)  # the light install with onnxruntime-gpu
    assert choose_runtime("auto", "cuda", "index", parsed) == "onnx"
    assert choose_runtime("auto", "cuda:1", "query", parsed) == "onnx"


def test_the_optimised_graph_is_saved_once_and_loaded_without_optimising(monkeypatch, model_cache, tmp_path):
    folder = load_encoder(MODEL, cache_dir=model_cache, runtime="onnx").folder
    calls = _record_sessions(monkeypatch)
    first = OnnxEncoder(folder, MODEL, MODEL, cache_dir=tmp_path)
    reference = first.encode_texts(["a red circle", "a dog on a beach"])
    saved = list((tmp_path / "ort").glob("*/model.onnx"))
    assert len(saved) == 1 and not list((tmp_path / "ort").glob(".*")), "one graph, no staging folder left"
    assert (saved[0].parent / "model.onnx.data").stat().st_size > saved[0].stat().st_size, "weights apart"
    second = OnnxEncoder(folder, MODEL, MODEL, cache_dir=tmp_path)
    assert np.allclose(second.encode_texts(["a red circle", "a dog on a beach"]), reference, atol=1e-6)
    assert calls[0]["path"].endswith("model.onnx") and calls[0]["level"] == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert calls[1]["path"] == str(saved[0]) and calls[1]["level"] == ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    assert second.last_text_length < second.context_length, "the cached graph keeps the dynamic length"


def test_a_changed_model_file_is_optimised_again(model_cache, tmp_path):
    folder = load_encoder(MODEL, cache_dir=model_cache, runtime="onnx").folder
    path = folder / "textual" / "model.onnx"
    key = sessions.optimised_path(path, CPU_ONLY, tmp_path)
    stat = path.stat()
    try:
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
        assert sessions.optimised_path(path, CPU_ONLY, tmp_path) != key
    finally:
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert sessions.optimised_path(path, CUDA, tmp_path) != key, "each provider list has its own graph"
