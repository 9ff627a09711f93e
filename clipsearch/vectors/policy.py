"""Which index layout a collection of a given size gets."""

from __future__ import annotations

import math
from dataclasses import dataclass

import faiss

# Flat search skips BLAS for query batches under this threshold (default 128,000),
# which made single-query flat search ~9x slower on our machines.
faiss.cvar.distance_compute_blas_threshold = 20

MIN_TRAIN_PER_LIST = 39  # FAISS's own floor for k-means points per centroid
MAX_TRAIN = 200_000
# Retrain the quantisers once the collection has grown this much since they were trained.
RETRAIN_GROWTH = 4.0


@dataclass(frozen=True)
class Layout:
    kind: str  # flat | ivfpq
    nlist: int = 0
    pq_m: int = 0

    @property
    def factory(self) -> str:
        # 4-bit fast-scan PQ: trains in a second and scans fast; its approximate
        # scores are only used to pick candidates, which are re-ranked exactly.
        return f"IVF{self.nlist},PQ{self.pq_m}x4fs"


def _pq_subquantizers(dim: int) -> int:
    target = min(64, max(1, dim // 4))
    for m in range(target, 0, -1):
        if dim % m == 0 and m % 2 == 0:
            return m
    return 1


def choose_layout(n: int, dim: int, flat_max: int) -> Layout:
    if n <= flat_max:
        return Layout("flat")
    nlist = int(4 * math.sqrt(n))
    nlist = max(1, min(nlist, n // MIN_TRAIN_PER_LIST, 65_536))
    return Layout("ivfpq", nlist=nlist, pq_m=_pq_subquantizers(dim))


def training_size(layout: Layout, n: int) -> int:
    return min(n, MAX_TRAIN, max(256 * layout.nlist, 20_000))


def default_nprobe(nlist: int) -> int:
    # Measured (docs/benchmarks.md, section 3): with 4-bit PQ the candidate pool, not the
    # number of probed lists, limits recall; 16-32 lists cost no recall at 100k-1M.
    return min(nlist, 32)


def needs_rebuild(kind: str, built_for: int, n: int, flat_max: int) -> bool:
    wanted = choose_layout(n, 8, flat_max).kind
    if wanted != kind:
        return True
    # Compared with the collection size at training time, not the sample size: a sample is
    # capped (MAX_TRAIN), so comparing with it would retrain large stores on every open.
    return kind == "ivfpq" and n > RETRAIN_GROWTH * max(built_for, 1)
