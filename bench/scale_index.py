"""The FAISS index at scale, built the Ray engine's way: train once, fill shards in Ray tasks, merge.

Synthetic CLIP-like vectors (bench/synth.py's model), generated deterministically chunk by chunk
inside the tasks (synth.vector_chunk: chunk c from seed (seed, c)), so no process ever holds the
collection. A shard task makes its chunks, adds them to its shard, writes their float16 rounding
(what the catalog stores and re-ranks with) to a memmap file on disk (the catalog stand-in: a
10M-row catalog would not fit the scratch budget next to it), and keeps the exact top-10 of every
query among them: the ground truth, by streaming brute force.

Serving is measured in a fresh process (bench/scale_serve.py) that loads the index file the way a
store does (VectorIndex.load), searches every query for the store's candidate pool and re-ranks the
candidates exactly from the memmap's float16 rows, as SearchService does from the catalog.

Usage: nice .venv/bin/python bench/scale_index.py [--quick] [--n N] [--shards S] [--cpus C] [--scratch DIR]
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np
from common import arguments, fmt, machine, machine_line, publish, table
from synth import DIM, make_world, query_vectors, vector_chunk

from clipsearch.indexer import ray_faiss
from clipsearch.indexer.ray_cluster import require_ray
from clipsearch.search import RERANK_MIN
from clipsearch.vectors.policy import choose_layout, default_nprobe, index_bytes_per_vector, training_size

K = 10
CHUNK = 50_000
QUERIES = 300
MODEL_ID = "random:ViT-B-32"
HERE = Path(__file__).resolve().parent


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] load {os.getloadavg()[0]:.1f}  {msg}", flush=True)


def _top(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    part = np.argpartition(-scores, min(k, scores.shape[1] - 1), axis=1)[:, :k]
    return np.take_along_axis(scores, part, 1), ids[part]


def merge_top(a, b, k: int = K):
    scores = np.concatenate([a[0], b[0]], axis=1)
    ids = np.concatenate([a[1], b[1]], axis=1)
    order = np.argsort(-scores, axis=1)[:, :k]
    return np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1)


def fill_task(world, trained, chunks: list[int], n: int, seed: int, queries: np.ndarray, rows_path: str):
    """One shard: its chunks added to the trained index, written to the float16 rows file, and the
    exact top-10 of each query among them. Idempotent: a retried task rewrites the same rows."""
    t0, cpu0 = time.perf_counter(), time.process_time()
    best = None
    gen_s = exact_s = 0.0
    rows = np.memmap(rows_path, dtype=np.float16, mode="r+", shape=(n, DIM))

    def produce():
        nonlocal best, gen_s, exact_s
        for c in chunks:
            t = time.perf_counter()
            ids, v = vector_chunk(world, c, n, seed, CHUNK)
            half = v.astype(np.float16)
            rows[ids[0] : ids[-1] + 1] = half
            gen_s += time.perf_counter() - t
            t = time.perf_counter()
            top = _top(queries @ half.astype(np.float32).T, ids, K)
            best = top if best is None else merge_top(best, top)
            exact_s += time.perf_counter() - t
            yield ids, v

    blob = ray_faiss.fill_shard(trained, produce())
    rows.flush()
    total = time.perf_counter() - t0
    stats = {"task_s": total, "generate_s": gen_s, "exact_s": exact_s, "add_s": total - gen_s - exact_s}
    # CPU seconds too: on a shared machine a task's wall time is mostly waiting for a core.
    stats["cpu_s"] = time.process_time() - cpu0
    return blob, best, stats


class LoadWatch:
    """The 1-minute load average sampled every 30 s while the run lasts (the machine is shared)."""

    def __init__(self):
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            self.samples.append(os.getloadavg()[0])
            self._stop.wait(30)

    def summary(self) -> dict:
        self._stop.set()
        s = self.samples or [float("nan")]
        return {"mean": float(np.mean(s)), "min": float(min(s)), "max": float(max(s)), "samples": len(s)}


def training_sample(world, n: int, sample_n: int, seed: int) -> np.ndarray:
    """A sample from the same distribution (its own seed: the collection is never held), filled in place."""
    sample = np.empty((sample_n, DIM), dtype=np.float32)
    for c in range((sample_n + CHUNK - 1) // CHUNK):
        _ids, v = vector_chunk(world, c, sample_n, seed, CHUNK)
        sample[c * CHUNK : c * CHUNK + len(v)] = v
    return sample


def build(ray, args, n: int, seed: int, rows_path: Path, index_path: Path, timings: dict) -> dict:
    layout = choose_layout(n, DIM, flat_max=50_000)
    n_chunks = (n + CHUNK - 1) // CHUNK
    shards = args.shards or max(2, n // 500_000)
    groups = [[int(c) for c in g] for g in np.array_split(np.arange(n_chunks), shards) if len(g)]

    t = time.perf_counter()
    world = make_world(n, seed)
    world.cumulative  # noqa: B018  computed once, shipped with the world
    queries = query_vectors(world, QUERIES, seed + 2)
    world_ref, queries_ref = ray.put(world), ray.put(queries)
    timings["world_s"] = time.perf_counter() - t

    t = time.perf_counter()
    sample_n = training_size(layout, n, DIM)
    sample = training_sample(world, n, sample_n, seed + 7)
    timings["sample_s"] = time.perf_counter() - t
    log(f"training {layout.factory} on {sample_n:,} vectors")
    t, cpu = time.perf_counter(), time.process_time()
    trained = ray_faiss.train_empty(layout, DIM, sample)
    timings["train_s"] = time.perf_counter() - t
    timings["train_cpu_s"] = time.process_time() - cpu
    del sample
    log(f"trained in {timings['train_s']:.0f} s; filling {len(groups)} shards")

    with open(rows_path, "wb") as fh:  # the catalog stand-in: n float16 rows, written by the shards
        fh.truncate(n * DIM * 2)
    t = time.perf_counter()
    fill = ray.remote(fill_task)
    trained_ref = ray.put(trained)
    refs = [fill.remote(world_ref, trained_ref, g, n, seed, queries_ref, str(rows_path)) for g in groups]
    truth, task_stats = None, []

    def blobs():
        nonlocal truth
        for i, (blob, top, stats) in enumerate(ray_faiss.completed(ray, refs), 1):
            truth = top if truth is None else merge_top(truth, top)
            task_stats.append(stats)
            log(f"shard {i}/{len(groups)} done ({stats['task_s']:.0f} s in its task)")
            yield blob

    index = ray_faiss.merge_shards(trained, blobs())
    timings["fill_and_merge_s"] = time.perf_counter() - t  # shards merged as they finish
    t = time.perf_counter()
    vindex = ray_faiss.wrap(index, layout, DIM, MODEL_ID, 0, sample_n, n)
    vindex.save(index_path)
    timings["save_s"] = time.perf_counter() - t
    del vindex, index
    refs.clear()
    np.save(index_path.with_suffix(".truth.npy"), truth[1])
    np.save(index_path.with_suffix(".queries.npy"), queries)
    sums = {k: sum(s[k] for s in task_stats) for k in task_stats[0]}
    return {
        "layout": layout,
        "shards": len(groups),
        "trained_on": sample_n,
        "task_seconds_summed": sums,
        "serialized_bytes": index_path.stat().st_size,
    }


def serve(index_path: Path, rows_path: Path, n: int, cpus: int) -> dict:
    """The served figures, from a fresh process (its memory is the index's, not the build's)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(cpus))
    out = subprocess.run(
        [sys.executable, str(HERE / "scale_serve.py"), str(index_path), str(rows_path), str(n)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = arguments(__doc__, "1M vectors instead of 10M")
    ap.add_argument("--n", type=int, help="vectors (default 10,000,000; 1,000,000 with --quick)")
    ap.add_argument("--shards", type=int, default=0, help="shard tasks (default: one per 500k vectors)")
    ap.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray cluster")
    ap.add_argument("--scratch", default="/tmp/clipsearch-bench/scale-index", help="float16 rows and index file")
    ap.add_argument("--keep-scratch", action="store_true", help="leave the rows and index files")
    args = ap.parse_args()
    n = args.n or (1_000_000 if args.quick else 10_000_000)
    seed = 0
    m = machine()
    m["niceness"] = os.nice(0)
    watch = LoadWatch()
    scratch = Path(args.scratch)
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    rows_path, index_path = scratch / "rows.f16", scratch / "index.clipsidx"
    # Ray renices its task workers to 15 by default; on a shared machine that starves them
    # (an earlier 10M attempt got ~1% of a core). They run at the script's own niceness instead.
    os.environ.setdefault("RAY_worker_niceness", "0")
    ray = require_ray()
    ray.init(num_cpus=args.cpus, object_store_memory=1_000 * 2**20, include_dashboard=False, logging_level="WARNING")
    timings: dict = {}
    t0 = time.perf_counter()
    built = build(ray, args, n, seed, rows_path, index_path, timings)
    ray.shutdown()
    timings["build_s"] = timings["train_s"] + timings["fill_and_merge_s"]
    log(f"built in {timings['build_s']:.0f} s; serving from a fresh process")
    served = serve(index_path, rows_path, n, args.cpus)
    timings["total_s"] = time.perf_counter() - t0
    layout = built.pop("layout")
    data = {
        "quick": args.quick,
        "machine": m,
        "n": n,
        "dim": DIM,
        "cpus": args.cpus,
        "factory": layout.factory,
        "nlist": layout.nlist,
        "nprobe": default_nprobe(layout.nlist),
        "rerank_pool": max(RERANK_MIN, K),
        "timings": timings,
        **built,
        "bytes_per_vector": built["serialized_bytes"] / n,
        "policy_bytes_per_vector": index_bytes_per_vector(n, DIM, layout.nlist, layout.pq_m),
        "served": served,
        "queries": QUERIES,
        "load": watch.summary(),
        "scratch_bytes": sum(p.stat().st_size for p in scratch.iterdir()),
    }
    if not args.keep_scratch:
        shutil.rmtree(scratch, ignore_errors=True)
    section = _section(data, m)
    print(section)
    publish("scale_index", data, section)


def _command(d: dict) -> str:
    size = "" if d["n"] == 10_000_000 else (" --quick" if d["quick"] else f" --n {d['n']}")
    return f"nice .venv/bin/python bench/scale_index.py{size}"


def _section(d: dict, m: dict) -> str:
    t, s, sv, ld = d["timings"], d["task_seconds_summed"], d["served"], d["load"]
    nice = d.get("niceness_note") or f"run at niceness {m['niceness']}, Ray workers too"
    rows = [
        [
            "vectors",
            f"{d['n']:,} x {d['dim']} (synthetic, CLIP-like; made in {CHUNK:,}-vector chunks inside the shard tasks, never all held)",
        ],
        ["layout", f"{d['factory']} (nprobe {d['nprobe']}), trained on {d['trained_on']:,} vectors"],
        [
            "**memory per vector, index alone**",
            f"**{d['bytes_per_vector']:.1f} B** (index file {d['serialized_bytes'] / 2**20:,.0f} MiB; policy estimate {d['policy_bytes_per_vector']:.1f} B)",
        ],
        [
            "**memory per vector, as served**",
            f"**{sv['rss_index_bytes'] / d['n']:.1f} B** resident for the loaded index in a fresh serving process "
            f"({sv['rss_after_load'] / 2**20:,.0f} MiB resident in all, {sv['rss_before_load'] / 2**20:,.0f} MiB before the load; "
            f"peak {sv['peak_rss'] / 2**20:,.0f} MiB, memmapped rows included); re-rank rows on disk: {d['dim'] * 2:,} B per vector (float16)",
        ],
        [
            "**build time**",
            f"**{fmt(t['build_s'], 0)} s** = train {fmt(t['train_s'], 0)} s + {d['shards']} shard tasks, merged as they finish, "
            f"{fmt(t['fill_and_merge_s'], 0)} s (wall, {d['cpus']} CPUs); then save {fmt(t['save_s'], 0)} s",
        ],
        [
            "**CPU time** (what a build costs without other jobs)",
            f"**train {fmt(t['train_cpu_s'], 0)} CPU-s** on the driver, **shard tasks {fmt(s['cpu_s'], 0)} CPU-s** in all "
            f"(adding about {fmt(s['cpu_s'] * s['add_s'] / s['task_s'], 0)} of them, by the tasks' wall-time shares)",
        ]
        if "cpu_s" in s and "train_cpu_s" in t
        else ["CPU time", "not recorded by this run"],
        [
            "inside the shard tasks (summed)",
            f"add to index {fmt(s['add_s'], 0)} s, generate and write float16 rows {fmt(s['generate_s'], 0)} s, exact top-10 for the ground truth {fmt(s['exact_s'], 0)} s",
        ],
        [
            f"**recall@10 served** (top-{d['rerank_pool']} re-ranked exactly from the float16 rows)",
            f"**{sv['recall_served']:.3f}** over {d['queries']} queries (index alone: {sv['recall_index_only']:.3f}); "
            f"{sv['ms_per_query']:.1f} ms per query (search + re-rank, load {sv['load_avg']:.1f})",
        ],
        [
            "machine load during the run",
            f"1-min load average {ld['mean']:.1f} on average (min {ld['min']:.1f}, max {ld['max']:.1f}; {ld['samples']} samples, "
            f"{nice})",
        ],
    ]
    return (
        f"## 8. The index at scale (sharded build)\n\n"
        f"Machine: {machine_line(m)}.\nReproduce: `{_command(d)}` (needs {d['scratch_bytes'] / 2**30:.1f} GiB scratch; "
        "peak memory: the driver with the training sample, then the merged index; each shard task one chunk and its shard).\n\n"
        f"The Ray engine's build path (`clipsearch/indexer/ray_faiss.py`): train once on a sample, fill shards in Ray "
        f"tasks ({d['cpus']} CPUs here), merge the IVF lists, pack for fast scan. Ground truth: exact top-10 of each "
        "query over all float16-rounded vectors, by streaming brute force inside the shard tasks.\n\n"
        + table(["figure", "value"], rows)
        + "\n"
    )


if __name__ == "__main__":
    main()
