"""A paper plan for indexing 1B images on a Ray cluster, computed from the figures measured here.

Reads bench/results/indexing.json (per-image CPU stages), ray_engine.json (Ray/local ratio,
PostgreSQL writes) and scale_index[.quick].json (the sharded FAISS build) and prints the plan as
Markdown. Every input is labelled measured (with its source) or assumed (no GPU was lent to the
sessions that measured these). Usage: .venv/bin/python bench/plan_1b.py
"""

from __future__ import annotations

import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import RESULTS, table

from clipsearch.vectors.policy import choose_layout, index_bytes_per_vector, training_size

N = 1_000_000_000
TARGET_HOURS = 24
# Assumed, not measured here: no GPU was lent.
GPU_IMG_S = 3_000  # ViT-B/32 image tower, bf16, one A100/H100-class GPU, batches of 256
NODE_CORES = 96  # a CPU node
NODE_GPUS = 8  # a GPU node (with its own 96 cores)
USABLE = 0.8  # share of a node's cores left for decode tasks after Ray, the OS and the actors' feeding


def _load(name: str) -> dict | None:
    for stem in (name, f"{name}.quick"):
        path = RESULTS / f"{stem}.json"
        if path.exists():
            return json.loads(path.read_text())
    return None


def _driver_writes(ray_res: dict | None) -> dict:
    """PostgreSQL writes as the Ray driver makes them now (this code, 1,000-row commits)."""
    if not ray_res:
        return {}
    for w in ray_res.get("writes") or []:
        if w["catalog"] == "postgresql" and w["code"] == "this" and w["batch"] >= 1000:
            return w
    return ray_res.get("postgres") or {}  # results from before the writes table


def _served_recall(scale: dict) -> float:
    return scale["served"]["recall_served"] if "served" in scale else scale["recall_served"]


def plan() -> str:
    indexing = _load("indexing")
    ray_res = _load("ray_engine")
    scale = _load("scale_index")
    stages = indexing["sets"]["12mp"]["stages_ms"]
    cpu_ms = (
        stages["read_hash_ms"] + stages["decode_draft_ms"] + stages["resize_from_draft_ms"] + stages["thumbnail_ms"]
    )
    rate = N / (TARGET_HOURS * 3600)
    cores = rate * cpu_ms / 1000 / USABLE
    gpus = rate / GPU_IMG_S
    gpu_nodes = math.ceil(gpus / NODE_GPUS)
    cpu_nodes = max(0, math.ceil(cores / NODE_CORES) - gpu_nodes)  # GPU nodes decode on their cores too
    pg = _driver_writes(ray_res)
    rows_s = pg.get("rows_per_s")
    row_bytes = pg.get("bytes_per_row")
    layout = choose_layout(N, 512, 50_000)
    bpv = index_bytes_per_vector(N, 512, layout.nlist, layout.pq_m)
    lines = [
        [
            "CPU per image outside the model (12 MP JPEG: read+hash, draft decode, resize, thumbnail)",
            f"{cpu_ms:.1f} core-ms",
            "measured (bench/indexing.py, section 1)",
        ],
        ["GPU throughput, ViT-B/32", f"{GPU_IMG_S:,} images/s per GPU", "**assumed** (no GPU lent)"],
        ["rate for 1B in 24 h", f"{rate:,.0f} images/s", "arithmetic"],
        ["decode cores", f"{cores:,.0f} ({USABLE:.0%} of each node's cores usable: assumed)", "arithmetic"],
        [
            "nodes",
            f"{cpu_nodes} x {NODE_CORES}-core CPU nodes + {gpu_nodes} GPU node(s) with {NODE_GPUS} GPUs "
            f"({gpus:.1f} GPUs busy)",
            "arithmetic on assumed node shapes",
        ],
        [
            "CPU / GPU hours",
            f"{N * cpu_ms / 1000 / 3600:,.0f} core-hours, {N / GPU_IMG_S / 3600:,.0f} GPU-hours",
            "arithmetic",
        ],
        ["storage reads", f"{rate * 3e6 / 1e9:,.0f} GB/s at 3 MB per camera JPEG (assumed size)", "arithmetic"],
    ]
    if rows_s:
        lines += [
            [
                "catalog writes (one driver, PostgreSQL)",
                f"{rows_s:,.0f} rows/s measured: 1B rows take {N / rows_s / 3600:,.0f} h",
                f"measured (bench/ray_engine.py, {pg['rows']:,} rows)",
            ],
            ["PostgreSQL size", f"{row_bytes:,.0f} bytes per row: {N * row_bytes / 1e12:,.2f} TB", "measured per row"],
        ]
    lines.append(
        [
            "FAISS index (policy layout at 1B)",
            f"{layout.factory}: {bpv:.1f} B/vector, {N * bpv / 1e9:,.0f} GB RAM",
            "policy estimate, matched by measured bytes/vector below",
        ]
    )
    if scale:
        t, tasks = scale["timings"], scale["task_seconds_summed"]
        # CPU seconds where the run recorded them (a loaded machine's wall time is mostly waiting);
        # adding's share of the tasks' CPU taken from its share of their wall time.
        cpu = "cpu_s" in tasks and "train_cpu_s" in t
        add = tasks["cpu_s"] * tasks["add_s"] / tasks["task_s"] if cpu else tasks["add_s"]
        train = t["train_cpu_s"] if cpu else t["train_s"]
        unit = "CPU" if cpu else "wall"
        # Adding costs n x nlist (coarse assignment dominates): scale the measured add time.
        add_1b = add * (N / scale["n"]) * (layout.nlist / scale["nlist"])
        # k-means costs sample x nlist per iteration: scale the measured training time the same way.
        sample_1b = training_size(layout, N, 512)
        train_1b = train * (sample_1b / scale["trained_on"]) * (layout.nlist / scale["nlist"])
        lines += [
            [
                f"FAISS build measured at {scale['n']:,}",
                f"{scale['bytes_per_vector']:.1f} B/vector (policy "
                f"{scale['policy_bytes_per_vector']:.1f}), train {train:,.0f} {unit}-s, add {add:,.0f} {unit}-s, recall@10 "
                f"{_served_recall(scale):.3f}",
                "measured (bench/scale_index.py)",
            ],
            [
                "FAISS add at 1B",
                f"~{add_1b / 3600:,.0f} {unit}-hours in shard tasks: ~{add_1b / 3600 / (cpu_nodes * NODE_CORES):.1f} h "
                f"on the {cpu_nodes} CPU nodes",
                "extrapolated (n x nlist)",
            ],
            [
                "FAISS training at 1B",
                f"{sample_1b:,} vectors ({sample_1b / layout.nlist:.0f} per list, {sample_1b * 512 * 4 / 1e9:.1f} GB "
                f"float32) on the driver: ~{train_1b / 3600:,.1f} {unit}-hours (FAISS k-means uses every core of the driver)",
                "policy sample; extrapolated (sample x nlist)",
            ],
        ]
    return table(["figure", "value", "source"], [[a, b, c] for a, b, c in lines])


if __name__ == "__main__":
    print(plan())
