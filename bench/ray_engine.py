"""The Ray engine against the local engine, and the catalog figures the 1B-image plan rests on.

1. Throughput: the same folder indexed into fresh stores by the local engine and by the Ray
   engine (a local 2-CPU Ray cluster started in-process), same model, same batch size; the
   ratio (Ray / local images per second) is the engine's overhead on one machine. The Ray run
   is timed twice: with the cluster's start-up, and the run alone.
2. Catalog writes on SQLite and PostgreSQL: committed batches of 1,000 new rows with a 512-d float16
   vector, as the driver writes them; rows per second and bytes per row on disk (table + indexes).
   With --before REV the same writes are measured in the same run with the catalog code of git
   revision REV (extracted to a temporary folder and run in a subprocess): the before/after ratio.

Usage: .venv/bin/python bench/ray_engine.py [--quick] [--writes-only] [--before REV]
       (PostgreSQL part: set CLIPSEARCH_BENCH_DATABASE_URL)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import CACHE, RESULTS, ROOT, arguments, fmt, machine, machine_line, publish, table
from photos import ensure_collection
from synth import chunk_starts, make_world, vector_chunk

from clipsearch.catalog import Catalog, ImageRecord
from clipsearch.indexer import IndexOptions, run_index
from clipsearch.indexer.ray_engine import RayOptions, run_index_ray
from clipsearch.settings import Settings
from clipsearch.store import Store

MODEL = "random:ViT-B-32"
BATCH = 32
WRITE_BATCH = 1000  # the Ray driver's commits (indexer/ray_engine.py WRITE_ROWS)
CPU_MODEL_BATCH = 32  # ...which used to follow the model's batch: 32 images on a CPU


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


def catalog_writes(url: str, rows: int, batch: int) -> dict:
    """Committed batches of `batch` new rows through Catalog.writes.write, as the Ray driver writes them
    (CLIP-like 512-d vectors from synth.vector_chunk); rows per second, and bytes per row on disk."""
    from sqlalchemy import text

    catalog = Catalog.open(url)
    if catalog.engine.dialect.name == "postgresql":
        with catalog.engine.begin() as conn:
            conn.execute(text("TRUNCATE images, tombstones, store_meta RESTART IDENTITY"))
    catalog.facts.bind_model(MODEL, MODEL, 512)
    world = make_world(rows)
    spent = 0.0
    for c, (start, _stop) in enumerate(chunk_starts(rows, batch)):
        _ids, vectors = vector_chunk(world, c, rows, 0, batch)
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
    if catalog.engine.dialect.name == "postgresql":
        with catalog.engine.connect() as conn:
            size = conn.execute(
                text("SELECT pg_total_relation_size('images') + pg_total_relation_size('tombstones')")
            ).scalar()
    else:
        size = sum(p.stat().st_size for p in Path(url.split("///", 1)[1]).parent.glob("catalog.db*"))
    catalog.close()
    import clipsearch

    return {
        "code_at": str(Path(clipsearch.__file__).parent),
        "rows": rows,
        "batch": batch,
        "write_s": spent,
        "rows_per_s": rows / spent,
        "bytes_per_row": size / rows,
    }


def _write_targets() -> dict[str, str]:
    home = CACHE / "ray-engine" / "writes"
    out = {"sqlite": f"sqlite:///{home / 'catalog.db'}"}
    url = os.environ.get("CLIPSEARCH_BENCH_DATABASE_URL")
    if url:
        out["postgresql"] = url
    return out


def _measure(url: str, rows: int, batch: int, rev: str | None) -> dict:
    """One catalog_writes into an empty catalog, with this checkout's catalog code or, given `rev`,
    with the code of that git revision (extracted to a temporary folder, run in a subprocess)."""
    if url.startswith("sqlite"):
        shutil.rmtree(CACHE / "ray-engine" / "writes", ignore_errors=True)
        (CACHE / "ray-engine" / "writes").mkdir(parents=True)
    if rev is None:
        return catalog_writes(url, rows, batch)
    with tempfile.TemporaryDirectory(prefix="clipsearch-rev-") as tmp:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        # This script and its helpers run from the extracted tree (common.py puts its tree first on
        # sys.path), so `clipsearch` is that revision's.
        for helper in ("ray_engine.py", "common.py", "synth.py", "photos.py", "summary.py"):
            shutil.copy(Path(__file__).parent / helper, Path(tmp) / "bench" / helper)
        res = subprocess.run(
            [
                sys.executable,
                str(Path(tmp) / "bench" / "ray_engine.py"),
                "--measure-writes",
                url,
                str(rows),
                str(batch),
            ],
            env=dict(os.environ, PYTHONPATH=tmp),
            check=True,
            capture_output=True,
            text=True,
        )
    return json.loads(res.stdout.strip().splitlines()[-1])


def writes(before: str | None, quick: bool) -> list[dict]:
    """Rows/s on each catalog, in commits of the model batch (what the Ray driver did) and of
    WRITE_BATCH rows (what it does now), with this code and, given `before`, that revision's."""
    rows = 10_000 if quick else 30_000
    out = []
    for name, url in _write_targets().items():
        for batch in (CPU_MODEL_BATCH, WRITE_BATCH):
            for rev in (before, None) if before else (None,):
                out.append({"catalog": name, "code": rev or "this", **_measure(url, rows, batch, rev)})
    return out


def main() -> None:
    ap = arguments(__doc__, "fewer images and rows")
    ap.add_argument(
        "--before", metavar="REV", help="also measure catalog writes with the catalog code of git revision REV"
    )
    ap.add_argument(
        "--writes-only", action="store_true", help="catalog writes only (engine figures kept from the last run)"
    )
    ap.add_argument("--measure-writes", nargs=3, metavar=("URL", "ROWS", "BATCH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure_writes:  # the subprocess of --before: one measurement, as JSON
        url, rows, batch = args.measure_writes
        print(json.dumps(catalog_writes(url, int(rows), int(batch))))
        return
    m = machine()
    res: dict = {"quick": args.quick, "machine": m, "model": MODEL, "batch": BATCH}
    if args.writes_only:
        previous = json.loads((RESULTS / "ray_engine.json").read_text())
        res["engines"] = previous["engines"]
        res["engines_machine"] = previous.get("engines_machine") or previous["machine"]
    else:
        n = 96 if args.quick else 192
        res["engines"] = engines(ensure_collection("1mp", n), n, cpus=os.cpu_count() or 2)
    res["writes"] = writes(args.before, args.quick)
    res["before_rev"] = args.before
    res["writes_only"] = args.writes_only
    section = _section(res, m)
    print(section)
    publish("ray_engine", res, section)


def _section(res: dict, m: dict) -> str:
    e = res["engines"]
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
        f"Machine: {machine_line(m)}.\nReproduce: `{_command(res)}` "
        "(PostgreSQL part with `CLIPSEARCH_BENCH_DATABASE_URL` set).\n\n"
        f"{e['n']} generated 1 MP JPEGs, `{res['model']}`, batch {res['batch']}, fresh stores; the Ray engine on a "
        f"local {e['cpus']}-CPU cluster (one model actor, decode tasks on the other CPU).\n\n"
        + table(["engine", "images/s", "seconds", "Ray / local"], rows)
        + "\n"
    )
    em = res.get("engines_machine")
    if em:
        text += (
            f"\nThe engine figures are from an earlier full run ({em['date_utc']}, 1-minute load average "
            f"{em['load_avg_at_start']:.1f} at its start); this run (`--writes-only`) measured the writes below.\n"
        )
    text += (
        "\nRead the engine ratio with care: that run competed with other jobs' test suites (the local engine ran at "
        "0.9 images/s against 13.9 in section 1's quieter run), so a Ray / local ratio near 1 says that the Ray "
        "engine's overhead (tasks, actor, object store, the driver's routing) did not show on one machine, not that "
        "Ray is faster. On 2 cores the Ray engine gives its model actor one CPU and decoding the other.\n"
    )
    text += _writes_text(res)
    return text


def _command(res: dict) -> str:
    flags = (" --quick" if res["quick"] else "") + (" --writes-only" if res.get("writes_only") else "")
    flags += f" --before {res['before_rev']}" if res.get("before_rev") else ""
    return f".venv/bin/python bench/ray_engine.py{flags}"


def _writes_text(res: dict) -> str:
    rows = [
        [
            w["catalog"],
            f"{w['batch']:,}",
            f"`{w['code']}`" if w["code"] != "this" else "this commit",
            f"{w['rows']:,}",
            f"**{fmt(w['rows_per_s'], 0)}**",
            fmt(w["bytes_per_row"], 0),
        ]
        for w in res["writes"]
    ]
    before = [w for w in res["writes"] if w["code"] != "this"]
    ratios = ""
    if before:
        parts = []
        for name in dict.fromkeys(w["catalog"] for w in res["writes"]):
            old = next(w for w in before if w["catalog"] == name and w["batch"] == CPU_MODEL_BATCH)
            new = next(
                w for w in res["writes"] if w["catalog"] == name and w["code"] == "this" and w["batch"] == WRITE_BATCH
            )
            parts.append(f"{name} **{new['rows_per_s'] / old['rows_per_s']:.1f}x**")
        ratios = (
            "\nThe Ray driver's writes, now (this commit, batches of "
            f"{WRITE_BATCH:,}) against before (`{before[0]['code']}`, batches of {CPU_MODEL_BATCH}): "
            + ", ".join(parts)
            + ".\n"
        )
    note = (
        "\nThe before/after ratios are the figures to read: every row above ran in this one run, on a machine and a "
        "PostgreSQL server shared with other jobs (see the load average above), so the absolute rows/s are lower "
        "bounds. The gain has two parts: the catalog code (plain executemany, binary COPY on PostgreSQL, instead of "
        "an ORM object per row) and the commit size (the driver used to commit every model batch: 32 rows on a CPU).\n"
    )
    return (
        "\nCatalog writes: committed batches of new rows with 512-d float16 vectors through `Catalog.writes.write`, "
        "into an empty catalog, as the Ray driver writes them; each row of the table one measurement of this run "
        "(an older revision's catalog code runs from `git archive` in a subprocess).\n\n"
        + table(["catalog", "rows per commit", "catalog code", "rows", "rows/s", "bytes per row on disk"], rows)
        + "\n"
        + ratios
        + note
    )


if __name__ == "__main__":
    main()
