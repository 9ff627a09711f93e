"""Near-duplicate search at scale: `clipsearch duplicates`' pair finder on synthetic CLIP-like vectors.

n vectors of dim 512 (bench/synth.py's world: a shared cone, topics, log-normal clusters) with
planted near-duplicate groups (an original and 1-4 copies, each normalise(v + noise), cosine
0.96-0.995 to it), indexed with the layout the store would choose for n (IVF-PQ past 50k, trained
on the same sample size), then searched by `clipsearch.search.duplicates.near_pairs`, the code the
command runs, reading vectors from memory instead of a catalog. Reports wall time, peak memory,
recall of the planted pairs and pairs found that were not planted, and an all-pairs (O(n^2)) scan's
time extrapolated from one timed block.

    python bench/duplicates.py [--n 1000000] [--groups 5000]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from synth import image_vectors, make_world  # noqa: E402

from clipsearch.search.duplicates import NEIGHBOURS, components, near_pairs  # noqa: E402
from clipsearch.vectors import VectorIndex  # noqa: E402
from clipsearch.vectors.policy import choose_layout, training_size  # noqa: E402

DIM = 512
THRESHOLD = 0.95


class MemoryVectors:
    """The two catalog reads near_pairs makes, served from an in-memory array (ids are 1..n)."""

    def __init__(self, vectors: np.ndarray):
        self.data = vectors

    def changed(self, after_seq=0, up_to_seq=None, chunk=20_000):
        for start in range(0, len(self.data), chunk):
            yield (
                np.arange(start + 1, min(start + chunk, len(self.data)) + 1, dtype=np.int64),
                self.data[start : start + chunk],
            )

    def fetch(self, ids):
        ids = np.asarray(list(ids), dtype=np.int64)
        return ids, self.data[ids - 1]


class MemoryCatalog:
    def __init__(self, vectors: np.ndarray):
        self.vectors = MemoryVectors(vectors)


def planted(vectors: np.ndarray, groups: int, seed: int = 7) -> set[tuple[int, int]]:
    """Overwrite rows with copies of `groups` originals; the planted (id, id) pairs, ids 1-based."""
    rng = np.random.default_rng(seed)
    n, dim = vectors.shape
    rows = rng.permutation(n)
    pairs, at = set(), 0
    for _ in range(groups):
        size = int(rng.integers(2, 6))
        members = rows[at : at + size]
        at += size
        original = vectors[members[0]]
        for m in members[1:]:
            noise = rng.normal(size=dim).astype(np.float32)
            copy = original + rng.uniform(0.1, 0.28) * noise / np.linalg.norm(noise)
            vectors[m] = copy / np.linalg.norm(copy)
        ids = sorted(int(m) + 1 for m in members)
        pairs |= {(a, b) for i, a in enumerate(ids) for b in ids[i + 1 :]}
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--groups", type=int, default=5000)
    args = parser.parse_args()
    t0 = time.perf_counter()
    world = make_world(args.n, seed=0)
    vectors = np.concatenate([v for _, v in image_vectors(world, args.n, seed=1)])
    truth_pairs = planted(vectors, args.groups)
    t_data = time.perf_counter() - t0

    layout = choose_layout(args.n, DIM, 50_000)
    index = VectorIndex.empty(layout, DIM, "bench:synthetic")
    t = time.perf_counter()
    if layout.kind == "ivfpq":
        sample = np.random.default_rng(0).choice(args.n, size=training_size(layout, args.n, DIM), replace=False)
        index.train(vectors[np.sort(sample)])
    for start in range(0, args.n, 100_000):
        ids = np.arange(start + 1, min(start + 100_000, args.n) + 1, dtype=np.int64)
        index.index.add_with_ids(vectors[start : start + 100_000], ids)
    t_index = time.perf_counter() - t

    t = time.perf_counter()
    pairs = near_pairs(MemoryCatalog(vectors), index, THRESHOLD)
    t_pairs = time.perf_counter() - t
    groups = components(pairs)
    found = {(int(a), int(b)) for a, b in pairs[:, :2].astype(np.int64)}
    exact_truth = {(a, b) for a, b in truth_pairs if float(vectors[a - 1] @ vectors[b - 1]) >= THRESHOLD}

    t = time.perf_counter()
    block = vectors[:1024] @ vectors.T  # one block of an all-pairs scan
    (block >= THRESHOLD).sum()
    t_block = time.perf_counter() - t
    brute_s = t_block * args.n / 1024 / 2  # each pair once

    result = {
        "n": args.n,
        "dim": DIM,
        "layout": layout.factory if layout.kind == "ivfpq" else "flat",
        "nprobe": index.header.nprobe,
        "neighbours": NEIGHBOURS,
        "threshold": THRESHOLD,
        "planted_groups": args.groups,
        "planted_pairs_at_threshold": len(exact_truth),
        "recall": len(found & exact_truth) / max(len(exact_truth), 1),
        "pairs_found": len(found),
        "pairs_not_planted": len(found - truth_pairs),
        "groups_found": len(groups),
        "make_data_s": round(t_data, 1),
        "build_index_s": round(t_index, 1),
        "near_pairs_s": round(t_pairs, 1),
        "all_pairs_estimate_s": round(brute_s, 1),
        "all_pairs_over_index": round(brute_s / t_pairs, 1),
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2),
    }
    print(json.dumps(result, indent=2))
    out = ROOT / "bench" / "results" / f"duplicates{'' if args.n == 1_000_000 else f'.n{args.n}'}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
