"""The Ray engine against the local engine, and the catalog figures the 1B-image plan rests on.

1. Throughput: the same folder indexed into fresh stores by the local engine and by the Ray
   engine (a local 2-CPU Ray cluster started in-process), same model, same batch size; the
   ratio (Ray / local images per second) is the engine's overhead on one machine. The Ray run
   is timed twice: with the cluster's start-up, and the run alone.
2. Catalog writes on PostgreSQL: committed batches of 1,000 rows with a 512-d float16 vector,
   as the driver writes them; rows per second and bytes per row on disk (table + indexes).

Usage: .venv/bin/python bench/ray_engine.py [--quick]  (PostgreSQL part: set CLIPSEARCH_BENCH_DATABASE_URL)
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np
from common import CACHE, arguments, command_line, fmt, machine, machine_line, publish, table
from photos import ensure_collection

from clipsearch.catalog import Catalog, ImageRecord
from clipsearch.indexer import IndexOptions, run_index
from clipsearch.indexer.ray_engine import RayOptions, run_index_ray
from clipsearch.settings import Settings
from clipsearch.store import Store

MODEL = "random:ViT-B-32"
BATCH = 32
WRITE_BATCH = 1000


def _fresh(name: str) -> Store:
    home = CACHE / "ray-engine" / name
    shutil.rmtree(home, ignore_errors=True)
    return Store.open(Settings(home=home))


def _loader(store: Store):
    def load():
        encoder = store.load_encoder(MODEL, "cpu")
        store.bind(encoder)
        return encoder

    return load


def engines(folder, n: int, cpus: int) -> dict:
    import ray

    local_store = _fresh("local")
    t = time.perf_counter()
    local = run_index(local_store.catalog, _loader(local_store), [folder], local_store.settings, IndexOptions(BATCH))
    local_s = time.perf_counter() - t
    local_store.close()

    ray_store = _fresh("ray")
    t = time.perf_counter()
    ray.init(num_cpus=cpus, object_store_memory=500 * 2**20, include_dashboard=False, logging_level=logging.WARNING)
    init_s = time.perf_counter() - t
    t = time.perf_counter()
    remote = run_index_ray(
        ray_store.catalog, _loader(ray_store), [str(folder)], ray_store.settings, RayOptions(batch_size=BATCH)
    )
    ray_s = time.perf_counter() - t
    ray.shutdown()
    ray_store.close()
    assert remote.new == local.new == n, (remote.line(), local.line())
    return {
        "n": n,
        "cpus": cpus,
        "local_s": local_s,
        "ray_s": ray_s,
        "ray_init_s": init_s,
        "local_img_s": n / local_s,
        "ray_img_s": n / ray_s,
        "ray_img_s_with_init": n / (ray_s + init_s),
        "ratio": (n / ray_s) / (n / local_s),
    }


def postgres_writes(url: str, rows: int) -> dict:
    from sqlalchemy import text

    catalog = Catalog.open(url)
    with catalog.engine.begin() as conn:
        conn.execute(text("TRUNCATE images, tombstones, store_meta RESTART IDENTITY"))
    catalog.facts.bind_model(MODEL, MODEL, 512)
    rng = np.random.default_rng(0)
    spent = 0.0
    for start in range(0, rows, WRITE_BATCH):
        vectors = rng.standard_normal((WRITE_BATCH, 512), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        records = [
            ImageRecord(
                f"/archive/{(start + i) // 1000:05d}/IMG_{start + i:08d}.jpg",
                "/archive",
                2_500_000,
                1_700_000_000 + i,
                f"{start + i:064x}",
                "ok",
                width=4000,
                height=3000,
                camera="Bench Cam",
                vector=v,
            )
            for i, v in enumerate(vectors)
        ]
        t = time.perf_counter()
        catalog.writes.write(records, {}, model_id=MODEL)
        spent += time.perf_counter() - t
    with catalog.engine.connect() as conn:
        size = conn.execute(
            text("SELECT pg_total_relation_size('images') + pg_total_relation_size('tombstones')")
        ).scalar()
    catalog.close()
    return {"rows": rows, "write_s": spent, "rows_per_s": rows / spent, "bytes_per_row": size / rows}


def main() -> None:
    args = arguments(__doc__, "fewer images and rows")
    args = args.parse_args()
    m = machine()
    n = 96 if args.quick else 192
    folder = ensure_collection("1mp", n)
    res: dict = {"quick": args.quick, "machine": m, "model": MODEL, "batch": BATCH}
    res["engines"] = engines(folder, n, cpus=os.cpu_count() or 2)
    url = os.environ.get("CLIPSEARCH_BENCH_DATABASE_URL")
    res["postgres"] = postgres_writes(url, 20_000 if args.quick else 100_000) if url else None
    section = _section(res, m)
    print(section)
    publish("ray_engine", res, section)


def _section(res: dict, m: dict) -> str:
    e, pg = res["engines"], res["postgres"]
    rows = [
        ["local engine", fmt(e["local_img_s"], 1), fmt(e["local_s"], 1), "-"],
        ["Ray engine (run)", fmt(e["ray_img_s"], 1), fmt(e["ray_s"], 1), f"**{e['ratio']:.2f}**"],
        [
            "Ray engine (with cluster start)",
            fmt(e["ray_img_s_with_init"], 1),
            fmt(e["ray_s"] + e["ray_init_s"], 1),
            "-",
        ],
    ]
    text = (
        "## 9. Ray engine and catalog writes\n\n"
        f"Machine: {machine_line(m)}.\nReproduce: `{command_line('ray_engine', res['quick'])}` "
        "(PostgreSQL part with `CLIPSEARCH_BENCH_DATABASE_URL` set).\n\n"
        f"{e['n']} generated 1 MP JPEGs, `{res['model']}`, batch {res['batch']}, fresh stores; the Ray engine on a "
        f"local {e['cpus']}-CPU cluster (one model actor, decode tasks on the other CPU).\n\n"
        + table(["engine", "images/s", "seconds", "Ray / local"], rows)
        + "\n"
    )
    if pg:
        text += (
            f"\nPostgreSQL catalog writes (committed batches of {WRITE_BATCH:,} rows, 512-d float16 vectors, "
            f"{pg['rows']:,} rows): **{fmt(pg['rows_per_s'], 0)} rows/s**, **{fmt(pg['bytes_per_row'], 0)} bytes "
            "per row** on disk (table, TOAST and indexes).\n"
        )
    return text


if __name__ == "__main__":
    main()
