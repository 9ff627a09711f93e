"""Text encoder speed: ONNX Runtime (cut to the text's tokens, full context, int8) against torch fp32, and session start-up.

Usage: .venv/bin/python bench/text_encoder.py [--quick]
One process, encoders interleaved call by call, after 3 warm-up calls each, on the default
model's architecture with seeded random weights (random:ViT-B-32-256) and on the bundled
shapes-mini. CPU ms = the process's CPU time per call, the steady figure on a shared machine.
Start-up: fresh processes that load the ONNX encoder and encode one query, with the text
session optimised from the export each time, and loaded from the model cache's optimised graph.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np
from common import CACHE, arguments, command_line, fmt, machine, machine_line, median, percentile, publish, table
from query_latency import query_texts

from clipsearch.models import load_encoder

ARCH_SPEC = "random:ViT-B-32-256"  # the default model's architecture at rclip's 256 px
BUNDLED = "shapes-mini"
TYPICAL = "a dog on a beach"
ENCODERS = {
    "onnx": "ONNX fp32, cut to the tokens (the default)",
    "onnx_full": "ONNX fp32, full context",
    "onnx_int8": "ONNX int8, cut (CLIPSEARCH_TEXT_INT8)",
    "torch": "torch fp32 (1 thread)",
}


def encoders(spec: str) -> dict:
    cache = CACHE / "models"
    onnx = load_encoder(spec, cache_dir=cache, runtime="onnx")
    full = load_encoder(spec, cache_dir=cache, runtime="onnx")
    full.shorten = False
    int8 = load_encoder(spec, cache_dir=cache, runtime="onnx")
    int8.quantize_text_tower()
    torch_ = load_encoder(spec, cache_dir=cache, runtime="torch")
    assert onnx.shorten, f"the export of {spec} does not record shortening: delete it to export it again"
    return {"onnx": onnx, "onnx_full": full, "onnx_int8": int8, "torch": torch_}


def cases(n: int) -> dict[str, list[list[str]]]:
    texts = query_texts(8 * n)
    return {
        f'one query, "{TYPICAL}"': [[TYPICAL]] * n,
        "one query, varied captions": [[t] for t in texts[:n]],
        "batch of 8 captions": [texts[i : i + 8] for i in range(0, 8 * n, 8)],
    }


def run_case(encs: dict, batches: list[list[str]]) -> dict:
    for enc in encs.values():
        for batch in batches[:3]:
            enc.encode_texts(batch)
    cpu: dict[str, list[float]] = {name: [] for name in encs}
    wall: dict[str, list[float]] = {name: [] for name in encs}
    names = list(encs)
    for i, batch in enumerate(batches):
        for name in names[i % len(names) :] + names[: i % len(names)]:  # rotate who goes first
            t, c = time.perf_counter(), time.process_time()
            encs[name].encode_texts(batch)
            wall[name].append((time.perf_counter() - t) * 1000)
            cpu[name].append((time.process_time() - c) * 1000)
    out = {name: {"cpu_p50": percentile(cpu[name], 50), "wall_p50": percentile(wall[name], 50)} for name in encs}
    for name in encs:
        out[name]["cpu_over_torch"] = out[name]["cpu_p50"] / out["torch"]["cpu_p50"]
        out[name]["wall_over_torch"] = out[name]["wall_p50"] / out["torch"]["wall_p50"]
    encs["onnx"].encode_texts(batches[-1])
    out["positions"] = encs["onnx"].last_text_length
    return out


def cosines(encs: dict, texts: list[str]) -> dict:
    ref = encs["torch"].encode_texts(texts)
    return {name: float(np.sum(encs[name].encode_texts(texts) * ref, axis=1).min()) for name in encs if name != "torch"}


PROBE = """
import json, sys, time
from pathlib import Path
c0, t0 = time.process_time(), time.perf_counter()
from clipsearch.models import load_encoder
enc = load_encoder(sys.argv[1], cache_dir=Path(sys.argv[2]), runtime="onnx")
if sys.argv[3] == "optimise":
    enc.cache_dir = None  # no saved graph: ONNX Runtime optimises the export at every start
c1, t1 = time.process_time(), time.perf_counter()
enc.textual
c2, t2 = time.process_time(), time.perf_counter()
enc.encode_text("a dog on a beach")
c3, t3 = time.process_time(), time.perf_counter()
print(json.dumps({"session_cpu": c2 - c1, "session_wall": t2 - t1, "first_cpu": c3 - c2, "total_cpu": c3 - c0,
                  "total_wall": t3 - t0}))
"""


def startup(spec: str, rounds: int) -> dict:
    """Median start-up figures of fresh processes, the two ways interleaved round by round."""
    args = [spec, str(CACHE / "models")]
    subprocess.run([sys.executable, "-c", PROBE, *args, "cached"], check=True, capture_output=True)  # saves the graph
    runs: dict[str, list[dict]] = {"optimise": [], "cached": []}
    for r in range(rounds):
        for way in ("optimise", "cached") if r % 2 == 0 else ("cached", "optimise"):
            out = subprocess.run([sys.executable, "-c", PROBE, *args, way], check=True, capture_output=True, text=True)
            runs[way].append(json.loads(out.stdout.strip().splitlines()[-1]))
    res = {way: {key: median([v[key] for v in vals]) for key in vals[0]} for way, vals in runs.items()}
    res["rounds"] = rounds
    res["session_cpu_ratio"] = res["cached"]["session_cpu"] / res["optimise"]["session_cpu"]
    return res


def measure(quick: bool) -> dict:
    import torch

    # torch's OpenMP threads spin-wait: on this shared machine two of them measured the contention,
    # not the model (bench/runtimes.py); one thread, as there.
    torch.set_num_threads(1)
    n = 12 if quick else 40
    res: dict = {"machine": machine(), "quick": quick, "format": 2, "models": []}
    for spec in (ARCH_SPEC, BUNDLED):
        encs = encoders(spec)
        row = {"model": spec, "context": encs["onnx"].context_length, "cases": {}}
        for name, batches in cases(n).items():
            row["cases"][name] = run_case(encs, batches)
            print(spec, name, row["cases"][name], flush=True)
        row["cos_min_vs_torch"] = cosines(encs, [TYPICAL, *query_texts(16), "three small circles " * 30])
        res["models"].append(row)
        del encs
    res["startup"] = startup(ARCH_SPEC, 3 if quick else 7)
    print(res["startup"], flush=True)
    return res


def section(res: dict, quick: bool) -> str:
    tables = []
    for row in res["models"]:
        rows = []
        for case, figures in row["cases"].items():
            for name, label in ENCODERS.items():
                f = figures[name]
                ratio = f"**{fmt(f['cpu_over_torch'])}**" if name != "torch" else "1"
                wall_ratio = fmt(f["wall_over_torch"]) if name != "torch" else "1"
                rows.append([case, label, fmt(f["cpu_p50"], 1), fmt(f["wall_p50"], 1), ratio, wall_ratio])
        cos = ", ".join(
            f"{ENCODERS[k].split(',')[0]} {'cut' if k != 'onnx_full' else 'full'} {v:.6f}"
            for k, v in row["cos_min_vs_torch"].items()
        )
        positions = ", ".join(f"{case}: {f['positions']}" for case, f in row["cases"].items())
        tables.append(
            f"`{row['model']}` (context {row['context']}; positions the cut tower ran: {positions}; "
            f"min cosine with torch: {cos})\n\n"
            + table(["case", "encoder", "CPU ms p50", "wall ms p50", "CPU / torch", "wall / torch"], rows)
        )
    st = res["startup"]
    start_rows = [
        [
            label,
            fmt(st[way]["session_cpu"], 3),
            fmt(st[way]["session_wall"], 3),
            fmt(st[way]["first_cpu"], 3),
            fmt(st[way]["total_cpu"], 2),
            f"{100 * st[way]['session_cpu'] / st[way]['total_cpu']:.0f}%",
        ]
        for label, way in (
            ("optimised at every start (before)", "optimise"),
            ("optimised graph from the cache (now)", "cached"),
        )
    ]
    typical = res["models"][0]["cases"][f'one query, "{TYPICAL}"']
    met = "met" if typical["onnx"]["cpu_over_torch"] <= 0.5 else "not met"
    return f"""## 4. Text encoder: warm latency and session start-up

Command: `{command_line("text_encoder", quick)}`

Machine: {machine_line(res["machine"])}

Encoders in one process, interleaved call by call after 3 warm-up calls each. "Cut" = the product's ONNX text tower
run on the batch's tokens only (up to its longest end token; the export checks that this gives the full context's
vectors); "full context" = the same graph fed all {res["models"][0]["context"]} positions, as before; int8 = ONNX Runtime's dynamic
quantisation of the MatMul weights of the cut tower. ONNX Runtime uses one intra-op thread per core, torch one thread
(see section 6). CPU ms is the process's CPU time per call.

{chr(10).join(chr(10) + t + chr(10) for t in tables)}
Target (warm text encoding of one typical query, ONNX fp32 <= 0.5x torch fp32): **{met}**
({fmt(typical["onnx"]["cpu_over_torch"])}x CPU, {fmt(typical["onnx"]["wall_over_torch"])}x wall on `{res["models"][0]["model"]}`).

Start-up of the text session (`{ARCH_SPEC}`, fresh processes that load the ONNX encoder and encode one query,
median of {st["rounds"]} interleaved rounds; seconds): "total" is the whole process from `import clipsearch.models` on
(no store, no search: the encoder's share of a cold query). The first query's CPU time is mostly loading the
tokenizer (a `tokenizers` BPE built from `tokenizer.json`).

{table(["text session", "creation CPU-s", "creation wall-s", "first query CPU-s", "process total CPU-s", "creation / total"], start_rows)}

The cached graph (`MODEL_CACHE/ort/`, weights in a separate memory-mapped file) makes creating the session cost
{fmt(st["session_cpu_ratio"])}x the CPU time of optimising the export at every start.
"""


def main() -> None:
    args = arguments(__doc__, "12 calls per case, 3 start-up rounds").parse_args()
    res = measure(args.quick)
    publish("text_encoder", res, section(res, args.quick))


if __name__ == "__main__":
    main()
