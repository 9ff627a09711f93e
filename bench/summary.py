"""Rebuild the summary table at the top of docs/benchmarks.md from bench/results/*.json.

Usage: .venv/bin/python bench/summary.py   (prefers each script's full-mode results, else its --quick ones)
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import DOCS_PAGE, RESULTS, fmt, table, verdict


def load(name: str, quick: bool | None = None) -> dict | None:
    stems = {None: (name, f"{name}.quick"), False: (name,), True: (f"{name}.quick",)}[quick]
    for stem in stems:
        path = RESULTS / f"{stem}.json"
        if path.exists():
            return json.loads(path.read_text())
    return None


def _key(figure: str) -> str:
    return figure


def _run(r: dict) -> str:
    return f"{r['machine']['date_utc']}{' (--quick)' if r.get('quick') else ''}"


def indexing_rows(r: dict) -> list[list]:
    rows, sets = [], r["sets"]
    for kind, s in sets.items():
        rows.append(
            [
                f"indexing {kind}: end-to-end / serial",
                f"**{fmt(s['e2e_over_serial'])}**",
                ">= 2 (12 MP)" if kind == "12mp" else "-",
                verdict(s["e2e_over_serial"] >= 2) if kind == "12mp" else "-",
                _run(r),
            ]
        )
        rows.append(
            [
                f"indexing {kind}: end-to-end / model-only",
                f"**{fmt(s['e2e_over_model'])}**",
                ">= 0.9 on GPU; CPU: as high as 2 cores allow",
                "GPU not lent",
                _run(r),
            ]
        )
    worst = min(min(s["cos_draft_vs_openclip_min"], s["cos_draft_vs_exact_min"]) for s in sets.values())
    rows.append(["fast decode fidelity: min cosine", f"**{worst:.5f}**", ">= 0.999", verdict(worst >= 0.999), _run(r)])
    tiny = r["tiny"]
    small = ", ".join(f"{k} {s['reindex']['files']} files: {fmt(s['reindex']['ratio'], 1)}" for k, s in sets.items())
    rows.append(
        [
            "re-index unchanged / walk+stat",
            f"**{fmt(tiny['ratio'])}** ({tiny['files']:,} files; small folders, fixed costs dominate: {small})",
            "<= 2",
            verdict(tiny["ratio"] <= 2),
            _run(r),
        ]
    )
    return rows


def query_rows(r: dict) -> list[list]:
    rows = []
    for s in r["sizes"]:
        n, beyond = s["n"], s["warm"]["beyond_encode_ms"]["p50"]
        target = n >= 1_000_000
        rows.append(
            [
                f"query {n:,}: ANN + re-rank + metadata p50 (ms)",
                f"**{fmt(beyond)}**",
                "<= 5 at 1M",
                verdict(beyond <= 5) if target else "(target is at 1M)",
                _run(r),
            ]
        )
        rows.append(
            [
                f"query {n:,}: brute force / served search",
                f"**{fmt(s['speedup_vs_brute'], 1)}x**",
                ">= 10x at 1M",
                verdict(s["speedup_vs_brute"] >= 10) if target else "(target is at 1M)",
                _run(r),
            ]
        )
    if not any(s["n"] >= 1_000_000 for s in r["sizes"]):
        rows.append(["query at 1M vectors", "not measured", "<= 5 ms, >= 10x", "unverified", _run(r)])
    return rows


def quality_rows(r: dict) -> list[list]:
    rows = []
    for q in r["rows"]:
        if q["kind"] != "ivfpq":
            continue
        ok = q["recall_served"] >= 0.97 and q["bytes_per_vector"] <= 100
        rows.append(
            [
                f"IVF-PQ {q['n']:,}: recall@10 served / bytes per vector",
                f"**{q['recall_served']:.3f}** / **{fmt(q['bytes_per_vector'], 1)}** (index only {q['recall_index_only']:.3f})",
                ">= 0.97 at <= 100 B",
                verdict(ok),
                _run(r),
            ]
        )
        rows.append([f"IVF-PQ {q['n']:,}: training time (s)", fmt(q["train_s"]), "report", "-", _run(r)])
    return rows


def text_rows(r: dict) -> list[list]:
    if r.get("format") != 2:  # results of the former int8-only benchmark
        return []
    rows = []
    for m in r["models"]:
        one, batch = (m["cases"][k] for k in m["cases"] if k.startswith('one query, "') or k.startswith("batch"))
        rows.append(
            [
                f"text, one typical query ({m['model']}): ONNX fp32 / torch fp32 CPU (full context; int8)",
                f"**{fmt(one['onnx']['cpu_over_torch'])}** ({fmt(one['onnx_full']['cpu_over_torch'])}; "
                f"{fmt(one['onnx_int8']['cpu_over_torch'])})",
                "<= 0.5",
                verdict(one["onnx"]["cpu_over_torch"] <= 0.5),
                _run(r),
            ]
        )
        rows.append(
            [
                f"text, batch of 8 ({m['model']}): ONNX fp32 / torch fp32 CPU",
                f"**{fmt(batch['onnx']['cpu_over_torch'])}**",
                "report",
                "-",
                _run(r),
            ]
        )
    st = r["startup"]
    rows.append(
        [
            "text session start-up: cached optimised graph / optimised at start (CPU-s)",
            f"**{fmt(st['session_cpu_ratio'])}** ({fmt(st['cached']['session_cpu'], 2)} / "
            f"{fmt(st['optimise']['session_cpu'], 2)})",
            "report",
            "-",
            _run(r),
        ]
    )
    return rows


def _load_note(size: dict) -> str:
    load = size.get("load_avg")
    return f" (1-min load average {fmt(load['mean'], 1)} on 2 cores during the run)" if load else ""


def api_rows(r: dict) -> list[list]:
    rows = []
    for s in r["sizes"]:
        n, c, cli = s["n"], s["concurrent"], s["cli_via_server_s"]["median"]
        rows.append(
            [
                f"HTTP API {n:,}: warm query p50, API / in-process",
                f"**{fmt(s['ratio_p50'])}**",
                "<= 1.5 at 1M",
                verdict(s["ratio_p50"] <= 1.5) if n >= 1_000_000 else "(target is at 1M)",
                _run(r),
            ]
        )
        rows.append(
            [
                f"HTTP API {n:,}: queries/s, {c['clients']} clients",
                f"**{fmt(c['qps'], 1)}**" + _load_note(s),
                ">= 50 (ONNX text tower)",
                verdict(c["qps"] >= 50),
                _run(r),
            ]
        )
        rows.append(
            [
                f"HTTP API {n:,}: CLI query via the server (s)",
                f"**{fmt(cli)}**" + _load_note(s),
                "<= 0.3",
                verdict(cli <= 0.3),
                _run(r),
            ]
        )
    return rows


def scale_rows(r: dict) -> list[list]:
    """The sharded FAISS build (bench/scale_index.py); older result files kept recall at the top level."""
    served = r.get("served") or {"recall_served": r["recall_served"], "recall_index_only": r["recall_index_only"]}
    n, build = r["n"], r.get("timings", {}).get("build_s", r.get("build_s"))
    return [
        [
            "sharded IVF-PQ build: recall@10 served / bytes per vector",
            f"**{served['recall_served']:.3f}** / **{fmt(r['bytes_per_vector'], 1)}** at {n:,} (index only {served['recall_index_only']:.3f})",
            ">= 0.97 at <= 100 B",
            verdict(served["recall_served"] >= 0.97 and r["bytes_per_vector"] <= 100),
            _run(r),
        ],
        ["sharded IVF-PQ build: train + fill + merge (s)", f"{fmt(build, 0)} at {n:,}", "report", "-", _run(r)],
    ]


def ray_rows(r: dict) -> list[list]:
    """Catalog writes as the Ray driver makes them now (bench/ray_engine.py)."""
    rows = []
    for w in r.get("writes") or []:
        if w["code"] == "this" and w["batch"] >= 1000:
            rows.append(
                [f"catalog writes, {w['catalog']} (rows/s)", f"**{fmt(w['rows_per_s'], 0)}**", "report", "-", _run(r)]
            )
    return rows


def rclip_rows(r: dict) -> list[list]:
    """The peer comparison: wall ratios with the steadier CPU-second ratios beside them."""
    queries, x = r.get("cold_queries") or [r["cold_query"]], r["reindex"]  # results before 1M: one size

    def both(ours: dict, theirs: dict) -> tuple[float, float]:
        return ours["wall_s"] / theirs["wall_s"], ours["cpu_s"] / theirs["cpu_s"]

    def cell(ratios: tuple[float, float]) -> str:
        return f"**{fmt(ratios[0])}** (CPU {fmt(ratios[1])})"

    load = f"load {r['machine'].get('load_avg_at_start', 0):.1f}"
    walk_r, rclip_i = both(x["clipsearch"], x["walk_stat"]), both(x["clipsearch"], x["rclip_index"])

    def row(label: str, ratios: tuple[float, float], target: float) -> list:
        return [label, cell(ratios), f"<= {target:g} (on CPU-s)", verdict(ratios[1] <= target)]

    rows = []
    for q in queries:
        rows.append(
            row(f"cold query {q['n']:,}: clipsearch / `import torch`", both(q["clipsearch"], q["import_torch"]), 0.5)
        )
        rows.append(row(f"cold query {q['n']:,}: clipsearch / rclip 4.0.8", both(q["clipsearch"], q["rclip"]), 1))
    rows.append(row(f"unchanged re-index {x['n']:,}: clipsearch / walk+stat", walk_r, 1.5))
    rows.append(row(f"unchanged re-index {x['n']:,}: clipsearch / rclip's index pass", rclip_i, 1))
    rows += [
        [
            f"CPU per indexed photo {p['kind']}: clipsearch / rclip",
            f"**{fmt(p['ratio'])}**",
            "<= 1",
            verdict(p["ratio"] <= 1),
        ]
        for p in r["per_photo"]
    ]
    return [row + [f"{_run(r)}, {load}"] for row in rows]


def write_summary() -> str:
    rows = []
    for name, fn in (
        ("indexing", indexing_rows),
        ("query_latency", query_rows),
        ("index_quality", quality_rows),
        ("text_encoder", text_rows),
        ("api_latency", api_rows),
        ("scale_index", scale_rows),
        ("ray_engine", ray_rows),
        ("rclip_peer", rclip_rows),
    ):
        r, q = load(name), load(name, quick=True)
        quick = {_key(row[0]): row[1] for row in fn(q)} if q and r is not q and not r.get("quick") else {}
        for row in fn(r) if r else [[name, "not run", "-", "-", "-"]]:
            rows.append(row[:2] + [quick.get(_key(row[0]), "-")] + row[2:])
    gpu = load("gpu")
    rows.append(
        [
            "GPU figures",
            "measured" if gpu else "**not measured: no GPU on the machine of these runs**",
            "-",
            "-",
            "-",
            _run(gpu) if gpu else "-",
        ]
    )
    text = (
        "## Summary\n\n"
        + table(["figure", "measured (full run)", "same figure, `--quick` rerun", "target", "met?", "run"], rows)
        + "\n\nThe `--quick` column is a separate, later run of the same script in quick mode (fewer images, queries and"
        " sizes; results in `bench/results/*.quick.json`): the check that quick mode reproduces the ratios.\n"
    )
    page = DOCS_PAGE.read_text()
    head, rest = page.split("<!-- summary -->", 1)
    _, tail = rest.split("<!-- /summary -->", 1)
    DOCS_PAGE.write_text(f"{head}<!-- summary -->\n{text}<!-- /summary -->{tail}")
    return text


if __name__ == "__main__":
    print(write_summary())
