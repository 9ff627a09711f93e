"""The Ray engine's stages: the local engine's decode on CPU tasks, the model in actors.

Rows travel between stages as columns: `plan` (which source), `decoded` (whether the row has
pixels for the model), `pixels` (uint8 at model size; zeros for rows without), and `result`:
the decode stage's own result object (Decoded without its pixels, KnownContent or Failed),
pickled, so the driver routes exactly what the local engine routes.
"""

from __future__ import annotations

import dataclasses
import pickle
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from clipsearch.errors import ModelError
from clipsearch.imaging import PreprocessConfig
from clipsearch.indexer.batch import encode_fixed
from clipsearch.indexer.decode import Decoded, DecodeJob, decode
from clipsearch.indexer.ray_sources import is_url, read_url
from clipsearch.thumbnails import Thumbnails


@dataclasses.dataclass(frozen=True)
class Embedded:
    """A decoded image with the vector an actor computed for it (what the driver writes)."""

    file: object
    content_hash: str
    info: object
    vector: np.ndarray


def job_table(jobs: list[tuple[int, DecodeJob]]):
    """The pipeline's input rows: (plan index, pickled job)."""
    import pyarrow as pa

    return pa.table(
        {
            "plan": pa.array([i for i, _ in jobs], pa.int32()),
            "job": pa.array([pickle.dumps(j) for _, j in jobs], pa.binary()),
        }
    )


def decode_batch(
    batch: dict,
    cfg: PreprocessConfig,
    max_megapixels: float,
    move_hashes: list[frozenset[str]],
    thumbs: Thumbnails | None,
    threads: int,
) -> dict:
    """A Ray Data map_batches function: decode each job, as the local engine's decode threads do."""
    plans = np.asarray(batch["plan"])
    jobs = [pickle.loads(b) for b in batch["job"]]

    def one(i: int):
        job = jobs[i]
        reader = read_url if is_url(job.file.path) else None
        return decode(job, cfg, max_megapixels, move_hashes[plans[i]], thumbs, read=reader)

    if threads > 1:
        with ThreadPoolExecutor(threads, thread_name_prefix="decode") as pool:
            results = list(pool.map(one, range(len(jobs))))
    else:
        results = [one(i) for i in range(len(jobs))]
    pixels = np.zeros((len(jobs), cfg.size, cfg.size, 3), dtype=np.uint8)
    decoded = np.zeros(len(jobs), dtype=bool)
    blobs = []
    for i, result in enumerate(results):
        if isinstance(result, Decoded):
            pixels[i], decoded[i] = result.pixels, True
            result = dataclasses.replace(result, pixels=None)
        blobs.append(pickle.dumps(result))
    return {"plan": plans, "decoded": decoded, "pixels": pixels, "result": np.array(blobs, dtype=object)}


class EmbedActor:
    """Holds one encoder for its whole life (loaded once per actor; one actor per GPU where there are GPUs)."""

    def __init__(self, spec: str, device: str, runtime: str, cache_dir: str, model_id: str):
        from pathlib import Path

        from clipsearch.models import load_encoder

        # The runtime the local engine would pick: torch on a GPU, else ONNX Runtime (whose towers the
        # driver's load has already exported into the shared model cache).
        self.encoder = load_encoder(spec, device=device, cache_dir=Path(cache_dir), runtime=runtime, purpose="index")
        if self.encoder.model_id != model_id:
            raise ModelError(f"the workers loaded {self.encoder.model_id!r} for {spec!r}, not the store's {model_id!r}")

    def __call__(self, batch: dict) -> dict:
        decoded = np.asarray(batch["decoded"], dtype=bool)
        vectors = np.zeros((len(decoded), self.encoder.dim), dtype=np.float32)
        if decoded.any():
            # The local engine's fixed-shape calls: the same image gets bit-identical vectors on either engine.
            vectors[decoded] = encode_fixed(self.encoder, list(batch["pixels"][decoded]))
        # The pixels stay here: only vectors travel back to the driver.
        return {"plan": batch["plan"], "decoded": decoded, "result": batch["result"], "vector": vectors}


def unpack(batch: dict):
    """(plan index, result) for each row of a finished batch; decoded rows become Embedded."""
    for plan, is_decoded, blob, vector in zip(
        batch["plan"], batch["decoded"], batch["result"], batch["vector"], strict=True
    ):
        result = pickle.loads(blob)
        if is_decoded:
            result = Embedded(result.file, result.content_hash, result.info, np.array(vector, dtype=np.float32))
        yield int(plan), result
