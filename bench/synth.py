"""Synthetic CLIP-like embeddings, written into a real store through Catalog.write.

How the vectors are made (dim 512, all L2-normalised):
- one shared "cone" direction g: real CLIP image embeddings share a large common component,
  so unrelated images still have cosine ~0.3;
- 50 topic directions, and n/100 cluster centres, each a topic plus its own random offset
  (a two-level hierarchy: clusters of one topic are closer to each other than to others);
- cluster sizes drawn from a log-normal (a few big clusters, a long tail of small ones);
- image vector = normalise(0.5 g + 0.7 centre + 0.45 noise), noise ~ N(0, I/d);
- text queries = normalise(0.35 g' + 0.6 centre + 0.55 noise) with another cone g' (the
  image-text "modality gap"), so a query sits near a cluster but not on any image.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from common import CACHE

from clipsearch.catalog import ImageRecord
from clipsearch.settings import Settings
from clipsearch.store import Store

DIM = 512
MODEL_ID = "random:ViT-B-32"
WRITE_BATCH = 2000


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


@dataclass
class World:
    cone: np.ndarray
    text_cone: np.ndarray
    centres: np.ndarray
    weights: np.ndarray

    @property
    def cumulative(self) -> np.ndarray:
        """Cluster weights' running sum, to draw clusters by searchsorted (cached: 1M clusters at 100M)."""
        if getattr(self, "_cumulative", None) is None:
            self._cumulative = np.cumsum(self.weights)
        return self._cumulative


def make_world(n: int, seed: int = 0, dim: int = DIM) -> World:
    rng = np.random.default_rng(seed)
    cone, text_cone = _unit(rng.normal(size=dim)), _unit(rng.normal(size=dim))
    topics = _unit(rng.normal(size=(50, dim)))
    k = max(10, n // 100)
    centres = _unit(topics[rng.integers(0, 50, size=k)] + 0.9 * _unit(rng.normal(size=(k, dim))))
    weights = rng.lognormal(0.0, 1.0, size=k)
    return World(cone, text_cone, centres, weights / weights.sum())


def chunk_starts(n: int, chunk: int) -> list[tuple[int, int]]:
    """(start, stop) of each chunk of n rows: the one chunking every benchmark's vectors use."""
    return [(start, min(start + chunk, n)) for start in range(0, n, chunk)]


def vector_chunk(world: World, c: int, n: int, seed: int, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, vectors) of chunk c of n image vectors, the same numbers in whichever process makes them
    (seeded by (seed, c)), so a collection larger than memory is made and remade chunk by chunk.
    In-place float32 arithmetic: one chunk of 50,000 costs ~100 MB, not several float64 copies."""
    start, stop = chunk_starts(n, chunk)[c] if c * chunk < n else (n, n)
    ids = np.arange(start, stop, dtype=np.int64)
    rng = np.random.default_rng([seed, c])
    which = np.searchsorted(world.cumulative, rng.random(len(ids)), side="right").clip(0, len(world.centres) - 1)
    dim = world.cone.shape[0]
    v = world.centres[which]
    v *= np.float32(0.7)
    v += np.float32(0.5) * world.cone
    noise = rng.standard_normal(size=v.shape, dtype=np.float32)
    noise *= np.float32(0.45 / np.sqrt(dim))
    v += noise
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return ids, v


def image_vectors(world: World, n: int, seed: int = 1, chunk: int = 100_000):
    """Yields (start, vectors) chunks of the n image vectors, from one random stream (the numbers
    the cached benchmark stores hold; vector_chunk makes chunks independently)."""
    rng = np.random.default_rng(seed)
    dim = world.cone.shape[0]
    for start, stop in chunk_starts(n, chunk):
        m = stop - start
        which = rng.choice(len(world.centres), size=m, p=world.weights)
        noise = rng.normal(size=(m, dim)).astype(np.float32) / np.sqrt(dim)
        yield start, _unit(0.5 * world.cone + 0.7 * world.centres[which] + 0.45 * noise)


def query_vectors(world: World, n: int, seed: int = 2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    dim = world.cone.shape[0]
    which = rng.choice(len(world.centres), size=n, p=world.weights)
    noise = rng.normal(size=(n, dim)).astype(np.float32) / np.sqrt(dim)
    return _unit(0.35 * world.text_cone + 0.6 * world.centres[which] + 0.55 * noise)


def _records(start: int, vectors: np.ndarray) -> list[ImageRecord]:
    return [
        ImageRecord(
            f"/synthetic/{(start + i) // 1000:04d}/img_{start + i:07d}.jpg",
            "/synthetic",
            2_000_000 + start + i,
            1_700_000_000_000_000_000 + start + i,
            f"{start + i:032x}",
            "ok",
            width=4000,
            height=3000,
            camera="Bench Cam",
            vector=v,
        )
        for i, v in enumerate(vectors)
    ]


def synthetic_store(n: int, seed: int = 0, model_id: str = MODEL_ID) -> tuple[Path, dict]:
    """A SQLite store holding n synthetic vectors, written once through Catalog.write and cached.

    model_id: the model the store is bound to (its vectors are the same synthetic ones; a query
    process loads that model's text tower).
    """
    suffix = "" if model_id == MODEL_ID else "-" + model_id.replace(":", "-").replace("/", "-")
    home = CACHE / "stores" / f"synth-n{n}-s{seed}{suffix}"
    info_path = home / "bench-info.json"
    if info_path.exists():
        return home, json.loads(info_path.read_text())
    shutil.rmtree(home, ignore_errors=True)
    store = Store.open(Settings(home=home))
    store.catalog.facts.bind_model(model_id, model_id, DIM)
    world = make_world(n, seed)
    t0 = time.perf_counter()
    written = 0.0
    for start, vectors in image_vectors(world, n, seed + 1):
        for b in range(0, len(vectors), WRITE_BATCH):
            recs = _records(start + b, vectors[b : b + WRITE_BATCH])
            t = time.perf_counter()
            store.catalog.writes.write(recs, {}, model_id=model_id)
            written += time.perf_counter() - t
    info = {
        "n": n,
        "seed": seed,
        "catalog_write_s": written,
        "total_build_s": time.perf_counter() - t0,
        "built_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    store.close()
    info_path.write_text(json.dumps(info, indent=2))
    return home, info


def catalog_matrix(store: Store) -> tuple[np.ndarray, np.ndarray]:
    """(ids, float32 vectors) of every stored vector, as the catalog returns them (float16 decoded)."""
    ids, vecs = [], []
    for i, v in store.catalog.vectors.changed():
        ids.append(i)
        vecs.append(v)
    return np.concatenate(ids), np.ascontiguousarray(np.concatenate(vecs))
