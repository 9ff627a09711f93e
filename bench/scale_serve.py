"""Serving half of bench/scale_index.py, in a fresh process: load the index as a store does, search
every query for the store's candidate pool, re-rank the candidates exactly from the float16 rows
(as SearchService does from the catalog), and report recall@10 and resident memory as JSON.

Usage (run by scale_index.py): python bench/scale_serve.py INDEX ROWS N
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from clipsearch.search import RERANK_MIN
from clipsearch.vectors.index import VectorIndex

K = 10


def status_bytes(field: str) -> int:
    """VmRSS (resident now) or VmHWM (peak) of this process. Not ru_maxrss: after fork and exec
    it still holds the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def rss() -> int:
    return status_bytes("VmRSS")


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f.tolist()) & set(t.tolist())) / K for f, t in zip(found, truth, strict=True)]))


def main() -> None:
    index_path, rows_path, n = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    truth = np.load(index_path.with_suffix(".truth.npy"))
    queries = np.load(index_path.with_suffix(".queries.npy"))
    before = rss()
    index = VectorIndex.load(index_path)
    after = rss()
    rows = np.memmap(rows_path, dtype=np.float16, mode="r")
    rows = rows.reshape(n, len(rows) // n)
    pool = max(RERANK_MIN, K)
    _s, alone = index.search(queries, K)
    served = []
    t = time.perf_counter()
    for q in queries:  # one query at a time, as the store serves them
        _s, cand = index.search(q[None, :], pool)
        cand = cand[0][cand[0] >= 0]
        order = np.sort(cand)  # rows in file order, as a catalog fetch returns them
        scores = rows[order].astype(np.float32) @ q
        served.append(order[np.argsort(-scores, kind="stable")[:K]])
    ms = (time.perf_counter() - t) * 1000 / len(queries)
    print(
        json.dumps(
            {
                "rss_before_load": before,
                "rss_after_load": after,
                "rss_index_bytes": after - before,
                "peak_rss": status_bytes("VmHWM"),
                "recall_served": recall(np.stack(served), truth),
                "recall_index_only": recall(alone, truth),
                "ms_per_query": ms,
                "load_avg": os.getloadavg()[0],
                "ntotal": index.ntotal,
            }
        )
    )


if __name__ == "__main__":
    main()
