"""The FAISS index at scale, built the Ray engine's way: train once, fill shards in Ray tasks, merge.

Synthetic CLIP-like vectors (bench/synth.py's model), generated deterministically chunk by chunk
inside the tasks (chunk c from seed (seed, c)), so no process ever holds the collection: a shard
task makes its chunks, adds them to its shard and, in the same pass, keeps the exact top-10 of
every query among its chunks' float16-rounded vectors (what the catalog stores and re-ranks with):
the ground truth. The served search re-ranks its candidates exactly, so its recall@10 is the share
of the true top-10 among the candidates the index returns.

Usage: .venv/bin/python bench/scale_index.py [--quick] [--n N] [--shards S] [--cpus C]
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import faiss
import numpy as np
from common import arguments, command_line, fmt, machine, machine_line, publish, table
from synth import DIM, World, make_world, query_vectors

from clipsearch.indexer import ray_faiss
from clipsearch.indexer.ray_cluster import require_ray
from clipsearch.search import RERANK_MIN
from clipsearch.vectors.policy import choose_layout, default_nprobe, index_bytes_per_vector, training_size

K = 10
CHUNK = 50_000
QUERIES = 100
MODEL_ID = "random:ViT-B-32"


def chunk_vectors(world: World, c: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, vectors) of chunk c (synth.py's model), the same numbers whichever process makes them."""
    ids = np.arange(c * CHUNK, min((c + 1) * CHUNK, n), dtype=np.int64)
    rng = np.random.default_rng([seed, c])
    which = np.searchsorted(world.cumulative, rng.random(len(ids)), side="right").clip(0, len(world.centres) - 1)
    v = world.centres[which]
    v *= np.float32(0.7)
    v += np.float32(0.5) * world.cone
    noise = rng.standard_normal(size=v.shape, dtype=np.float32)
    noise *= np.float32(0.45 / np.sqrt(DIM))
    v += noise
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return ids, v


def _top(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    part = np.argpartition(-scores, min(k, scores.shape[1] - 1), axis=1)[:, :k]
    return np.take_along_axis(scores, part, 1), ids[part]


def merge_top(a, b, k: int = K):
    scores = np.concatenate([a[0], b[0]], axis=1)
    ids = np.concatenate([a[1], b[1]], axis=1)
    order = np.argsort(-scores, axis=1)[:, :k]
    return np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1)


def fill_task(world, trained, chunks: list[int], n: int, seed: int, queries: np.ndarray):
    """One shard: its chunks added to the trained index, plus the exact top-10 of each query among them."""
    t0 = time.perf_counter()
    best = None
    gen_s = exact_s = 0.0

    def produce():
        nonlocal best, gen_s, exact_s
        for c in chunks:
            t = time.perf_counter()
            ids, v = chunk_vectors(world, c, n, seed)
            gen_s += time.perf_counter() - t
            t = time.perf_counter()
            # Ground truth over float16-rounded vectors: what the catalog keeps and re-ranks with.
            top = _top(queries @ v.astype(np.float16).astype(np.float32).T, ids, K)
            best = top if best is None else merge_top(best, top)
            exact_s += time.perf_counter() - t
            yield ids, v

    blob = ray_faiss.fill_shard(trained, produce())
    total = time.perf_counter() - t0
    return blob, best, {"task_s": total, "generate_s": gen_s, "exact_s": exact_s, "add_s": total - gen_s - exact_s}


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth, strict=False)]))


def main() -> None:
    ap = arguments(__doc__, "1M vectors instead of 10M")
    ap.add_argument("--n", type=int, help="vectors (default 10,000,000; 1,000,000 with --quick)")
    ap.add_argument("--shards", type=int, default=0, help="shard tasks (default: one per 500k vectors)")
    ap.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray cluster")
    args = ap.parse_args()
    n = args.n or (1_000_000 if args.quick else 10_000_000)
    seed = 0
    m = machine()
    ray = require_ray()
    ray.init(num_cpus=args.cpus, object_store_memory=1_500 * 2**20, include_dashboard=False, logging_level="WARNING")
    layout = choose_layout(n, DIM, flat_max=50_000)
    pool = max(RERANK_MIN, K)
    n_chunks = (n + CHUNK - 1) // CHUNK
    shards = args.shards or max(2, n // 500_000)
    groups = [list(g) for g in np.array_split(np.arange(n_chunks), shards) if len(g)]
    timings: dict = {}

    t = time.perf_counter()
    world = make_world(n, seed)
    world.cumulative = np.cumsum(world.weights)
    queries = query_vectors(world, QUERIES, seed + 2)
    world_ref, queries_ref = ray.put(world), ray.put(queries)
    timings["world_s"] = time.perf_counter() - t

    t = time.perf_counter()
    sample_n = training_size(layout, n)
    # A training sample from the same distribution (its own seed: the collection is never held).
    sample = np.concatenate(
        [chunk_vectors(world, c, n_chunks * CHUNK, seed + 7)[1] for c in range((sample_n + CHUNK - 1) // CHUNK)]
    )[:sample_n]
    timings["sample_s"] = time.perf_counter() - t
    t = time.perf_counter()
    trained = ray_faiss.train_empty(layout, DIM, sample)
    timings["train_s"] = time.perf_counter() - t
    del sample

    t = time.perf_counter()
    fill = ray.remote(fill_task).options(num_returns=3)
    trained_ref = ray.put(trained)
    refs = [fill.remote(world_ref, trained_ref, g, n, seed, queries_ref) for g in groups]
    blobs, tops, stats = zip(*refs, strict=False)
    truth = None
    for top in ray.get(list(tops)):
        truth = top if truth is None else merge_top(truth, top)
    task_stats = ray.get(list(stats))
    timings["fill_s"] = time.perf_counter() - t  # wall time of the shard pass (tasks run 2 at a time here)
    t = time.perf_counter()
    index = ray_faiss.merge_shards(trained, ray_faiss.completed(ray, list(blobs)))
    timings["merge_s"] = time.perf_counter() - t
    del blobs, refs

    serialized = int(faiss.serialize_index(index).size)
    index.nprobe = default_nprobe(layout.nlist)
    faiss.omp_set_num_threads(args.cpus)
    t = time.perf_counter()
    _s, ann_top = index.search(queries, K)
    _s, cand = index.search(queries, pool)
    timings["search_s"] = time.perf_counter() - t
    # The served search re-ranks the candidates exactly, so its top-10 holds every true
    # neighbour that is among them: served recall@10 is the share of the truth in the candidates.
    served_recall = float(np.mean([len(set(c) & set(t)) / K for c, t in zip(cand, truth[1], strict=False)]))

    sum_tasks = {k: sum(s[k] for s in task_stats) for k in task_stats[0]}
    build_s = timings["train_s"] + timings["fill_s"] + timings["merge_s"]
    data = {
        "quick": args.quick,
        "machine": m,
        "n": n,
        "dim": DIM,
        "shards": len(groups),
        "cpus": args.cpus,
        "factory": layout.factory,
        "nlist": layout.nlist,
        "nprobe": default_nprobe(layout.nlist),
        "rerank_pool": pool,
        "trained_on": sample_n,
        "timings": timings,
        "task_seconds_summed": sum_tasks,
        "build_s": build_s,
        "add_s_summed": sum_tasks["add_s"],
        "serialized_bytes": serialized,
        "bytes_per_vector": serialized / n,
        "policy_bytes_per_vector": index_bytes_per_vector(n, DIM, layout.nlist, layout.pq_m),
        "recall_index_only": recall(ann_top, truth[1]),
        "recall_served": served_recall,
        "queries": QUERIES,
    }
    ray.shutdown()
    section = _section(data, m)
    print(section)
    publish("scale_index", data, section)


def _section(d: dict, m: dict) -> str:
    t, s = d["timings"], d["task_seconds_summed"]
    rows = [
        [
            "vectors",
            f"{d['n']:,} x {d['dim']} (synthetic, CLIP-like; generated in {CHUNK:,}-vector chunks, never all held)",
        ],
        ["layout", f"{d['factory']} (nprobe {d['nprobe']}), trained on {d['trained_on']:,} vectors"],
        [
            "**memory per vector**",
            f"**{d['bytes_per_vector']:.1f} B** serialized ({d['serialized_bytes'] / 2**20:,.0f} MiB; policy estimate {d['policy_bytes_per_vector']:.1f} B)",
        ],
        [
            "**build time**",
            f"**{fmt(d['build_s'], 0)} s** = train {fmt(t['train_s'], 0)} s + {d['shards']} shard tasks {fmt(t['fill_s'], 0)} s (wall, {d['cpus']} CPUs) + merge and pack {fmt(t['merge_s'], 0)} s",
        ],
        [
            "inside the shard tasks (summed)",
            f"add to index {fmt(s['add_s'], 0)} s, generate vectors {fmt(s['generate_s'], 0)} s, exact top-10 for the ground truth {fmt(s['exact_s'], 0)} s",
        ],
        [
            "**recall@10 served** (top-{} re-ranked exactly)".format(d["rerank_pool"]),
            f"**{d['recall_served']:.3f}** over {d['queries']} queries (index alone: {d['recall_index_only']:.3f})",
        ],
    ]
    return (
        f"## 8. The index at scale (sharded build)\n\n"
        f"Machine: {machine_line(m)}.\nReproduce: `{command_line('scale_index', d['quick'])}` (run niced on a shared machine).\n\n"
        f"The Ray engine's build path (`clipsearch/indexer/ray_faiss.py`): train once on a sample, fill shards in Ray "
        f"tasks ({d['cpus']} CPUs here), merge the IVF lists, pack for fast scan.\n\n"
        + table(["figure", "value"], rows)
        + "\n"
    )


if __name__ == "__main__":
    main()
