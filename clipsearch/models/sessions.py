"""ONNX Runtime sessions: which execution provider, and the optimised graph cached for the next start.

Providers: the CPU, or CUDA where onnxruntime-gpu offers ``CUDAExecutionProvider``, an NVIDIA
driver shows a GPU and the device asks for it (``cuda``/``cuda:N``, or ``auto`` for indexing;
``auto`` queries stay on the CPU: a CUDA context costs a cold query seconds, one text costs ms).

Start-up: ONNX Runtime parses the whole graph, weights included, and optimises it every time it
creates a session (~0.6 CPU-s for ViT-B-32's text tower). The first session saves the optimised
graph into the model cache with its weights in a separate file (``MODEL_CACHE/ort/KEY/``, keyed
by the source file, the onnxruntime version, the providers and the CPU's features, as the saved
graph may hold CPU-specific layouts); later sessions load it with optimisation off and the
weights memory-mapped: ~0.17 CPU-s (docs/benchmarks.md, section 6). Weight prepacking stays on:
without it the session starts in ~0.02 CPU-s but every query takes twice as long.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
from functools import cache
from pathlib import Path

from clipsearch.errors import ModelError

log = logging.getLogger(__name__)
CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
GRAPH = "model.onnx"  # in MODEL_CACHE/ort/KEY/, beside WEIGHTS
WEIGHTS = "model.onnx.data"


def providers_for(device: str, purpose: str) -> list:
    """The providers for a session on `device` (auto, cpu, cuda, cuda:N), CPU last as the fallback."""
    import onnxruntime as ort

    if device == "cpu":
        return [CPU]
    available = ort.get_available_providers()
    wants_gpu = device.startswith("cuda") or (device == "auto" and purpose == "index")
    if wants_gpu and CUDA in available and (device != "auto" or nvidia_gpu()):
        index = int(device.partition(":")[2] or 0)
        return [(CUDA, {"device_id": index}), CPU]
    if device.startswith("cuda"):
        raise ModelError(
            f"--device {device} on ONNX Runtime needs onnxruntime-gpu and an NVIDIA GPU (this onnxruntime "
            f"offers {', '.join(available)}); pip install onnxruntime-gpu, or use --runtime torch or --device cpu"
        )
    return [CPU]


def nvidia_gpu() -> bool:
    gpus = Path("/proc/driver/nvidia/gpus")
    return gpus.is_dir() and any(gpus.iterdir())


def create_session(path: Path, threads: int | None, providers: list, cache_dir: Path | None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or os.cpu_count() or 1
    options.inter_op_num_threads = 1
    # Idle intra-op threads would otherwise spin and take the cores from the decode threads.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    cached = optimised_path(path, providers, cache_dir) if cache_dir is not None else None
    try:
        if cached is not None and (cached / GRAPH).is_file():
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            return ort.InferenceSession(str(cached / GRAPH), options, providers=providers)
        if cached is None:
            return ort.InferenceSession(str(path), options, providers=providers)
        return _create_and_save(path, options, providers, cached)
    except Exception as exc:  # onnxruntime raises its own exception types for bad files
        raise ModelError(f"ONNX Runtime cannot load {path}: {exc}; delete the folder to export it again") from exc


def optimised_path(path: Path, providers: list, cache_dir: Path) -> Path:
    """The folder of `path`'s optimised graph: the file's identity (path, size, mtime), onnxruntime, providers, CPU."""
    import onnxruntime as ort

    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{ort.__version__}|{providers}|{_cpu_features()}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    return cache_dir / "ort" / f"{path.parent.name}-{digest}"


@cache
def _cpu_features() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            return next((line for line in fh if line.startswith(("flags", "Features"))), "")
    except OSError:
        return ""


def _create_and_save(path: Path, options, providers: list, target: Path):
    import onnxruntime as ort

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    except OSError as exc:  # a read-only cache: sessions still work, optimised every time
        log.debug(f"not caching the optimised graph of {path}: {exc}")
        return ort.InferenceSession(str(path), options, providers=providers)
    try:
        options.optimized_model_filepath = str(staging / GRAPH)
        # The weights in their own file, which later sessions memory-map instead of parsing.
        options.add_session_config_entry("session.optimized_model_external_initializers_file_name", WEIGHTS)
        options.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
        session = ort.InferenceSession(str(path), options, providers=providers)
        os.chmod(staging, 0o755)  # mkdtemp makes it private; the model cache may be shared
        # Atomic: a reader sees the whole folder or none. It fails when another process saved
        # the same graph first: theirs is kept.
        with contextlib.suppress(OSError):
            os.rename(staging, target)
        return session
    finally:
        shutil.rmtree(staging, ignore_errors=True)
