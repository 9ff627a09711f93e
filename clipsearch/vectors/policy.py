"""Which index layout a collection of a given size gets."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import faiss

from clipsearch.vectors.header import IndexKind as IndexKind  # re-exported: defined with the file header (no FAISS)

# Flat search skips BLAS for query batches under this threshold (default 128,000),
# which made single-query flat search ~9x slower on our machines.
faiss.cvar.distance_compute_blas_threshold = 20

MIN_TRAIN_PER_LIST = 39  # FAISS's own floor for k-means points per centroid (it warns below it)
# The sample's target: 64 points per IVF list, 1.6x FAISS's floor of 39 and within its advised
# 39-256 (it subsamples above 256); k-means time grows with it (10M: 405k vectors, 6,324 lists).
# A fixed 200k cap left 32 per list at 10M, below the floor.
TRAIN_PER_LIST = 64
# Never fewer than this (collections up to it train on every vector): at 1M (2,000 lists) that is
# the 200,000-vector sample docs/benchmarks.md section 3's recall was measured with (100 per list).
SMALL_TRAIN = 200_000
# The float32 sample's memory bound: past it the sample shrinks towards MIN_TRAIN_PER_LIST per list
# (never below: at the 65,536-list ceiling that floor is 2.6M vectors, 5 GB at dim 512).
TRAIN_SAMPLE_BYTES = 2 * 2**30
PQ_BITS = 4
# Retrain the quantisers once the collection has grown this much since they were trained.
RETRAIN_GROWTH = 4.0


class IndexHeaderLike(Protocol):
    kind: IndexKind
    dim: int
    built_for: int
    factory: str


@dataclass(frozen=True)
class Layout:
    kind: IndexKind
    nlist: int = 0
    pq_m: int = 0

    @property
    def factory(self) -> str:
        # 4-bit fast-scan PQ: trains in a second and scans fast; its approximate
        # scores are only used to pick candidates, which are re-ranked exactly.
        return f"IVF{self.nlist},PQ{self.pq_m}x4fs"


# RAM the approximate index may use per vector; exact re-ranking reads full vectors from the catalog.
BYTES_PER_VECTOR_BUDGET = 96


def index_bytes_per_vector(n: int, dim: int, nlist: int, pq_m: int) -> float:
    """Estimated RAM per vector of IVF{nlist},PQ{pq_m}x4fs holding n vectors."""
    code = pq_m / 2  # 4-bit codes
    centroids = nlist * dim * 4 / n
    padding = nlist * 16 * code / n  # fast-scan stores each list in blocks of 32 codes: half a block spare on average
    return code + 8 + centroids + padding  # 8: the int64 id


def _pq_subquantizers(n: int, dim: int, nlist: int) -> int:
    """The most sub-quantisers (one per 4 dimensions at most) whose index fits the RAM budget.

    Measured on clustered CLIP-like vectors at 1M with the 384-candidate re-rank pool: recall@10
    0.996 with PQ128x4fs (64 B codes), 0.967 with PQ64x4fs (32 B codes).
    """
    fitting = [m for m in range(max(1, dim // 4), 0, -1) if dim % m == 0 and m % 2 == 0]
    for m in fitting:
        if index_bytes_per_vector(n, dim, nlist, m) <= BYTES_PER_VECTOR_BUDGET:
            return m
    return fitting[-1] if fitting else 1


def choose_layout(n: int, dim: int, flat_max: int) -> Layout:
    if n <= flat_max:
        return Layout(IndexKind.FLAT)
    # Fewer, larger lists than FAISS's usual 4-16 sqrt(n): the candidates are re-ranked exactly,
    # so what matters is that the probed lists hold them; 2 sqrt(n) halved the coarse search
    # (most of the ANN time) and the training time at 1M with no recall cost.
    nlist = int(2 * math.sqrt(n))
    nlist = max(1, min(nlist, n // MIN_TRAIN_PER_LIST, 65_536))
    return Layout(IndexKind.IVFPQ, nlist=nlist, pq_m=_pq_subquantizers(n, dim, nlist))


def training_size(layout: Layout, n: int, dim: int) -> int:
    """Vectors in the quantisers' training sample: grows with the IVF lists, bounded for memory.

    The sample trains both the coarse quantiser (k-means, nlist centroids) and the PQ codebooks
    (2**PQ_BITS centroids per sub-quantiser, trained on every sample vector's residual), so it must
    give each k-means centroid its FAISS floor of points: MIN_TRAIN_PER_LIST per codebook entry too.
    """
    floor = MIN_TRAIN_PER_LIST * max(layout.nlist, 1 << PQ_BITS)
    within_memory = TRAIN_SAMPLE_BYTES // (4 * dim)
    wanted = max(SMALL_TRAIN, TRAIN_PER_LIST * layout.nlist)
    return min(n, max(floor, min(wanted, within_memory)))


def default_nprobe(nlist: int) -> int:
    # Measured (docs/benchmarks.md, section 3): with 4-bit PQ the candidate pool, not the
    # number of probed lists, limits recall; 16-32 lists cost no recall at 100k-1M.
    return min(nlist, 32)


def needs_rebuild(header: IndexHeaderLike, n: int, flat_max: int) -> bool:
    wanted = choose_layout(n, header.dim, flat_max).kind
    if wanted != header.kind:
        return True
    if header.kind != IndexKind.IVFPQ:
        return False
    if header.factory != choose_layout(header.built_for, header.dim, flat_max=0).factory:
        # Laid out by an older policy (other list or sub-quantiser counts, so its recall at the
        # re-rank pool is not what was measured): rebuilt once.
        return True
    # Compared with the collection size at training time, not the sample size: a sample is
    # bounded (training_size), so comparing with it would retrain large stores on every open.
    return n > RETRAIN_GROWTH * max(header.built_for, 1)
