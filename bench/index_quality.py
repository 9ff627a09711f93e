"""Index quality and memory: recall@10 of served results vs exact search, bytes per vector, training time.

Usage: .venv/bin/python bench/index_quality.py [--quick]
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import faiss
import numpy as np
from common import arguments, chosen_sizes, command_line, fmt, machine, machine_line, publish, table, verdict
from synth import DIM, MODEL_ID, catalog_matrix, make_world, query_vectors, synthetic_store

from clipsearch.imaging import PreprocessConfig
from clipsearch.models.base import Encoder
from clipsearch.search import RERANK_FACTOR, RERANK_MIN, SearchRequest, SearchService
from clipsearch.settings import Settings
from clipsearch.store import Store
from clipsearch.vectors import VectorIndex
from clipsearch.vectors.policy import choose_layout, training_size

K = 10
UNBOUNDED = 10**12


class VectorQueries(Encoder):
    """An encoder whose 'texts' are q<i>, each mapped to a prepared query vector.

    It lets the benchmark drive the real SearchService ranking path (ANN, re-rank, metadata)
    with the synthetic query vectors instead of a text tower.
    """

    def __init__(self, vectors: np.ndarray):
        self.vectors = vectors
        self.model_id = MODEL_ID
        self.dim = vectors.shape[1]
        self.preprocess_cfg = PreprocessConfig(224, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
        self.device = "cpu"
        self.runtime = "torch"
        self.spec = MODEL_ID
        self.is_random = True
        self.context_length = 77

    def encode_texts(self, texts):
        return np.stack([self.vectors[int(t[1:])] for t in texts])

    def encode_images(self, pixels):
        raise NotImplementedError

    def count_tokens(self, text: str) -> int:
        return 1


def timed_build(store: Store, flat_max: int) -> tuple[VectorIndex, dict]:
    """What clipsearch.vectors.sync.build_index does, with each step timed."""
    cat = store.catalog
    n, dim, seq = cat.stats().images, cat.dim(), cat.current_seq()
    layout = choose_layout(n, dim, flat_max)
    index = VectorIndex.empty(layout, dim, MODEL_ID, watermark=seq)
    info = {
        "kind": layout.kind,
        "factory": layout.factory if layout.kind != "flat" else "IDMap2,Flat",
        "train_s": 0.0,
        "sample_s": 0.0,
        "trained_on": 0,
    }
    if layout.kind == "ivfpq":
        t = time.perf_counter()
        sample = cat.sample_vectors(training_size(layout, n, DIM))
        info["sample_s"] = time.perf_counter() - t
        t = time.perf_counter()
        index.train(sample)
        info["train_s"] = time.perf_counter() - t
        info["trained_on"] = len(sample)
    t = time.perf_counter()
    for ids, vectors in cat.iter_vectors(after_seq=0, up_to_seq=seq):
        index.index.add_with_ids(vectors, ids)
    info["add_s"] = time.perf_counter() - t
    info.update(
        nlist=index.header.nlist,
        nprobe=index.header.nprobe,
        ntotal=index.ntotal,
        serialized_bytes=int(faiss.serialize_index(index.index).size),
    )
    info["bytes_per_vector"] = info["serialized_bytes"] / n
    return index, info


def exact_topk(ids: np.ndarray, mat: np.ndarray, queries: np.ndarray) -> list[set]:
    out = []
    for start in range(0, len(queries), 64):
        scores = queries[start : start + 64] @ mat.T
        top = np.argpartition(-scores, K, axis=1)[:, :K]
        out.extend(set(ids[row].tolist()) for row in top)
    return out


def recall(found: list, truth: list[set]) -> float:
    return float(np.mean([len(set(f) & t) / K for f, t in zip(found, truth, strict=False)]))


def evaluate(store: Store, index: VectorIndex, queries: np.ndarray, truth: list[set]) -> dict:
    svc = SearchService(store, VectorQueries(queries), index)
    served, raw, ms = [], [], []
    for i in range(len(queries)):
        t = time.perf_counter()
        hits = svc.search(SearchRequest(text=f"q{i}", k=K)).hits
        ms.append((time.perf_counter() - t) * 1000)
        served.append([h.id for h in hits])
        raw.append(index.search(queries[i : i + 1], K)[1][0].tolist())
    return {
        "recall_served": recall(served, truth),
        "recall_index_only": recall(raw, truth),
        "served_ms_p50": float(np.median(ms)),
    }


def sweep(store: Store, index: VectorIndex, queries: np.ndarray, truth: list[set]) -> list[dict]:
    """Served recall and search time (ANN + re-rank + metadata) for other nprobe and re-rank pool sizes.

    The pool is changed through clipsearch.search.service.RERANK_MIN for the benchmark only; the product is untouched.
    """
    import clipsearch.search.service as search

    default_nprobe, default_pool, rows = index.header.nprobe, search.RERANK_MIN, []
    for pool in sorted({128, 256, 384, default_pool, 512}):
        for nprobe in sorted({16, 32, 64, 128, default_nprobe}):
            search.RERANK_MIN, index.header.nprobe = pool, nprobe
            svc = SearchService(store, VectorQueries(queries), index)
            found, ms = [], []
            for i in range(len(queries)):
                res = svc.search(SearchRequest(text=f"q{i}", k=K))
                found.append([h.id for h in res.hits])
                ms.append(sum(res.timings.get(k, 0.0) for k in ("ann_ms", "rerank_ms", "metadata_ms")))
            rows.append(
                {
                    "nprobe": nprobe,
                    "pool": max(pool, RERANK_FACTOR * K),
                    "recall_served": recall(found, truth),
                    "beyond_encode_ms_p50": float(np.median(ms)),
                    "default": nprobe == default_nprobe and pool == default_pool,
                }
            )
    search.RERANK_MIN, index.header.nprobe = default_pool, default_nprobe
    return rows


def measure_n(n: int, n_queries: int, layouts: list[tuple[str, int]]) -> list[dict]:
    home, _info = synthetic_store(n)
    store = Store.open(Settings(home=home))
    ids, mat = catalog_matrix(store)
    queries = query_vectors(make_world(n, 0), n_queries, seed=99)
    truth = exact_topk(ids, mat, queries)
    del mat
    rows = []
    for label, flat_max in layouts:
        index, info = timed_build(store, flat_max)
        info.update(evaluate(store, index, queries, truth), n=n, choice=label)
        if index.kind == "ivfpq":
            info["sweep"] = sweep(store, index, queries[:100], truth[:100])
        rows.append(info)
        print(
            n,
            label,
            {k: info[k] for k in ("kind", "recall_served", "recall_index_only", "bytes_per_vector", "train_s")},
            flush=True,
        )
        del index
    store.close()
    return rows


def _sweep_table(res: dict) -> str:
    rows = []
    for r in res["rows"]:
        for w in r.get("sweep", []):
            rows.append(
                [
                    f"{r['n']:,}",
                    w["nprobe"],
                    w["pool"],
                    f"{w['recall_served']:.3f}",
                    fmt(w["beyond_encode_ms_p50"]),
                    "policy default" if w["default"] else "",
                ]
            )
    if not rows:
        return ""
    return (
        "Trade-off on the same IVF-PQ index (first 100 queries; pool = candidates re-ranked exactly; search time = "
        "ANN + re-rank + metadata p50 from `SearchResult.timings`):\n\n"
        + table(["N", "nprobe", "re-rank pool", "recall@10 served", "search p50 (ms)", ""], rows)
        + "\n"
    )


def section(res: dict, quick: bool) -> str:
    rows = []
    for r in res["rows"]:
        rerank = "exact (flat)" if r["kind"] == "flat" else f"top {max(RERANK_MIN, RERANK_FACTOR * K)} from the catalog"
        rows.append(
            [
                f"{r['n']:,}",
                r["choice"],
                f"`{r['factory']}`" + (f" nprobe {r['nprobe']}" if r["nprobe"] else ""),
                f"**{r['recall_served']:.3f}**",
                f"{r['recall_index_only']:.3f}",
                rerank,
                f"**{fmt(r['bytes_per_vector'], 1)}**",
                fmt(r["train_s"], 2) if r["kind"] != "flat" else "-",
                f"{r['trained_on']:,}" if r["trained_on"] else "-",
                fmt(r["add_s"], 2),
                fmt(r["served_ms_p50"], 2),
            ]
        )
    policy = [r for r in res["rows"] if r["choice"] == "policy" and r["kind"] == "ivfpq"]
    ok = all(r["recall_served"] >= 0.97 and r["bytes_per_vector"] <= 100 for r in policy) if policy else None
    sizes = ", ".join(f"{n:,}" for n in res["sizes"])
    missing = (
        ""
        if 1_000_000 in res["sizes"]
        else " 1M vectors were not measured in this run (quick mode); the 1M row is unverified here."
    )
    return f"""## 3. Index quality and memory

Command: `{command_line("index_quality", quick)}`

Machine: {machine_line(res["machine"])}

Same synthetic clustered CLIP-like vectors as the query-latency stores (`bench/synth.py`), N = {sizes}; {res["queries"]}
queries from the text-side distribution. Exact top-{K} = brute force over the catalog's stored (float16) vectors.
"Served" = the real `SearchService` ranking path (ANN candidates, exact re-rank of the candidates with vectors read
from the catalog, metadata), driven with the query vectors by a stub encoder; "index only" = the FAISS index's own
top-{K} without re-ranking. Bytes per vector = `faiss.serialize_index` size / N (the whole index: codes, ids, coarse
centroids, PQ tables); re-rank vectors stay in the catalog, not in RAM. "policy" = the store's default choice
(`CLIPSEARCH_FLAT_MAX` = 50,000); "flat forced" = the exact index the policy would use below the threshold.
Training = `VectorIndex.train` on the policy's sample (`training_size`), as `build_index` does.

{table(["N", "choice", "index", "recall@10 served (with re-rank)", "recall@10 index only", "re-rank", "bytes/vector", "train (s)", "trained on", "add (s)", "served query p50 (ms)"], rows)}

Target: recall@10 >= 0.97 at <= 100 bytes/vector for the policy's IVF-PQ choice: {verdict(ok)}.{missing}

{_sweep_table(res)}"""


def main() -> None:
    args = arguments(__doc__, "100k vectors only (under 2 minutes once the store is cached)", sizes=True).parse_args()
    sizes = chosen_sizes(args, [100_000], [100_000, 1_000_000])
    n_queries = 100 if args.quick else 200
    res = {"machine": machine(), "quick": args.quick, "queries": n_queries, "sizes": sizes, "rows": [], "dim": DIM}
    for n in sizes:
        layouts = [("policy", Settings.flat_max)]
        if n <= 200_000:
            layouts.append(("flat forced", UNBOUNDED))
        res["rows"].extend(measure_n(n, n_queries, layouts))
    publish("index_quality", res, section(res, args.quick))


if __name__ == "__main__":
    main()
