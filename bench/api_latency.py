"""The HTTP API against the in-process search service on one synthetic store, in one run.

Measures, for the same text queries: the warm in-process `SearchService.search` time; the warm
end-to-end time of `POST /api/search` on loopback (a `clipsearch serve` subprocess, text encoding
included, one persistent connection); queries per second with 4 concurrent clients; and
`clipsearch query` as a whole process while the server runs (and with --no-server, for scale).

Usage: .venv/bin/python bench/api_latency.py [--quick] [--sizes N]
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import (
    K,
    LoadSampler,
    arguments,
    chosen_sizes,
    clipsearch_exe,
    command_line,
    fmt,
    machine,
    machine_line,
    median,
    open_store,
    process_seconds,
    publish,
    query_texts,
    store_env,
    table,
    timed_searches,
    verdict,
)
from common import pcts as _pcts
from synth import MODEL_ID, synthetic_store

from clipsearch.search import SearchService

CLIENTS = 4
WARMUP = 5


def in_process_fresh(home: Path, texts: list[str]) -> dict:
    """in_process() in a new Python process, like the server's: this one imported torch (for the machine
    facts), and with torch loaded the ONNX text encoder ran slower here (p50 29-32 ms against 18-25 without)."""
    code = (
        f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import api_latency; "
        f"print(json.dumps(api_latency.in_process(__import__('pathlib').Path(sys.argv[1]), json.loads(sys.argv[2]))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(home), json.dumps(texts)],
        env=store_env(home),
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def in_process(home: Path, texts: list[str]) -> dict:
    store = open_store(home)
    service = SearchService.open(store)
    timed = timed_searches(service, texts, WARMUP)
    wall = [ms for ms, _ in timed]
    encode = [timings.get("encode_ms", 0.0) for _, timings in timed]
    kind, runtime = service.index.kind, type(service.encoder).__name__
    store.close()
    return {"ms": _pcts(wall), "encode_ms": _pcts(encode), "index_kind": kind, "encoder": runtime}


class Client:
    """One keep-alive HTTP connection, as a client program would hold it."""

    def __init__(self, url: str):
        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)

    def search(self, text: str) -> dict:
        self.conn.request(
            "POST", "/api/search", body=json.dumps({"q": text, "k": K}), headers={"Content-Type": "application/json"}
        )
        response = self.conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"status {response.status}: {body[:200]!r}")
        return json.loads(body)

    def health(self) -> dict:
        self.conn.request("GET", "/healthz")
        return json.loads(self.conn.getresponse().read())

    def close(self) -> None:
        self.conn.close()


def _health(url: str) -> dict:
    """/healthz on a new connection (uvicorn closes one left idle for 5 s)."""
    client = Client(url)
    try:
        return client.health()
    finally:
        client.close()


def start_server(home: Path, env: dict) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [clipsearch_exe(), "--home", str(home), "serve", "--port", "0"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    record = home / "server.json"
    deadline = time.time() + 600
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"clipsearch serve exited with {proc.returncode}")
        try:
            data = json.loads(record.read_text())
            if data["pid"] == proc.pid:
                return proc, data["url"]
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("clipsearch serve did not start")


def over_http(url: str, texts: list[str]) -> dict:
    client = Client(url)
    for text in texts[:WARMUP]:
        client.search(text)
    wall, server_total = [], []
    for text in texts[WARMUP:]:
        t = time.perf_counter()
        answer = client.search(text)
        wall.append((time.perf_counter() - t) * 1000)
        server_total.append(answer["timings"]["total_ms"])
    client.close()
    overhead = [w - s for w, s in zip(wall, server_total, strict=True)]
    return {"ms": _pcts(wall), "search_in_server_ms": _pcts(server_total), "overhead_ms": _pcts(overhead)}


def concurrent(url: str, texts: list[str], clients: int) -> dict:
    per_client = [texts[i::clients] for i in range(clients)]
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()

    def work(mine: list[str]) -> None:
        client = Client(url)
        try:
            for text in mine:
                t = time.perf_counter()
                try:
                    client.search(text)
                except Exception as exc:  # recorded, not raised: the count of failures is a result
                    with lock:
                        failures.append(str(exc))
                    continue
                with lock:
                    latencies.append((time.perf_counter() - t) * 1000)
        finally:
            client.close()

    threads = [threading.Thread(target=work, args=(mine,)) for mine in per_client]
    before = _health(url)
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    seconds = time.perf_counter() - t0
    after = _health(url)
    calls = after.get("text_calls", 0) - before.get("text_calls", 0)
    texts = after.get("texts_encoded", 0) - before.get("texts_encoded", 0)
    return {
        "text_calls": calls,
        "texts_per_call": texts / calls if calls else float("nan"),
        "clients": clients,
        "queries": len(latencies),
        "failures": len(failures),
        "seconds": seconds,
        "qps": len(latencies) / seconds,
        "ms": _pcts(latencies),
    }


def measure_n(n: int, n_queries: int, cli_reps: int) -> dict:
    home, info = synthetic_store(n)
    texts = query_texts(n_queries + WARMUP)
    env = store_env(home)
    local = in_process_fresh(home, texts)
    query = [clipsearch_exe(), "--home", str(home), "query", "a dog on a beach", "-k", str(K)]
    cold = process_seconds([*query, "--no-server"], env, max(1, cli_reps // 3))
    proc, url = start_server(home, env)
    try:
        api = over_http(url, texts)
        load = concurrent(url, query_texts(4 * n_queries), CLIENTS)
        via_server = process_seconds(query, env, cli_reps)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    ratio = api["ms"]["p50"] / local["ms"]["p50"]
    return {
        "n": n,
        "store": info,
        "in_process": local,
        "api": api,
        "concurrent": load,
        "ratio_p50": ratio,
        "cli_via_server_s": {"median": median(via_server), "all": via_server},
        "cli_no_server_s": {"median": median(cold), "all": cold},
    }


def section(res: dict, quick: bool) -> str:
    rows, rows_load = [], []
    for r in res["sizes"]:
        loc, api = r["in_process"], r["api"]
        rows.append(
            [
                f"{r['n']:,}",
                loc["index_kind"],
                f"{fmt(loc['ms']['p50'])} / {fmt(loc['ms']['p95'])}",
                fmt(loc["encode_ms"]["p50"]),
                f"{fmt(api['ms']['p50'])} / {fmt(api['ms']['p95'])}",
                fmt(api["overhead_ms"]["p50"]) if "overhead_ms" in api else "n/a",
                f"**{fmt(r['ratio_p50'])}**",
                verdict(r["ratio_p50"] <= 1.5),
            ]
        )
        c = r["concurrent"]
        rows_load.append(
            [
                f"{r['n']:,}",
                c["clients"],
                c["queries"],
                c["failures"],
                f"**{fmt(c['qps'], 1)}**",
                f"{fmt(c['ms']['p50'])} / {fmt(c['ms']['p95'])}",
                fmt(c.get("texts_per_call", float("nan"))),
                f"**{fmt(r['cli_via_server_s']['median'])}**",
                verdict(r["cli_via_server_s"]["median"] <= 0.3),
                fmt(r["cli_no_server_s"]["median"]),
            ]
        )
    largest = res["sizes"][-1]
    loads = "; ".join(
        f"N={r['n']:,}: {fmt(r['load_avg']['min'])} / {fmt(r['load_avg']['mean'])} / {fmt(r['load_avg']['max'])}"
        for r in res["sizes"]
    )
    scale_note = (
        ""
        if largest["n"] >= 1_000_000
        else f"\n1M vectors were not measured in this run (largest: {largest['n']:,}); the 1M target is unverified here.\n"
    )
    return f"""## HTTP API

Command: `{command_line("api_latency", quick)}`

Machine: {machine_line(res["machine"])}. 1-min load average during the measurement (min / mean / max; 2 cores, so
above 2 the run shared the cores with other work and every number is slower than on an idle machine): {loads}.

Stores: the synthetic stores of the query latency section (`bench/synth.py`, SQLite). Model `{MODEL_ID}` (text
encoder: `{largest["in_process"]["encoder"]}`). The same {res["queries"]} text queries (k={K}, after {WARMUP} warm-up
queries) are timed in-process (`SearchService.search`, wall, in a new Python process that has not loaded torch, as
the server has not) and end to end over HTTP on loopback (`POST /api/search`
to a `clipsearch serve` subprocess on one keep-alive connection: JSON in, text encoding, search, JSON out).
{scale_note}
{table(["N", "index", "in-process p50 / p95 (ms)", "of which text encoding p50", "HTTP API p50 / p95 (ms)", "HTTP and server work p50", "API / in-process p50", "target <= 1.5"], rows)}

"HTTP and server work": per request, the client's wall time minus the search's own `timings.total_ms` in the answer
(parsing, routing, the thread hop, the index freshness check, JSON both ways, loopback TCP).

Load and the CLI: {CLIENTS} client threads, each with its own connection, send {4 * res["queries"]} queries in all
(texts per model call: the query texts the server encoded over the model calls it made meanwhile, from `/healthz`;
texts that arrive while the model runs share its next call);
`clipsearch query "a dog on a beach" -k {K}` timed as a whole new process while the server runs (median of
{res["cli_reps"]}), and with `--no-server` for scale:

{table(["N", "clients", "queries", "failures", "queries/s", "latency p50 / p95 (ms)", "texts per model call", "CLI via server (s)", "target <= 0.3 s", "CLI --no-server (s)"], rows_load)}
"""


def main() -> None:
    args = arguments(__doc__, "100k vectors only, fewer queries", sizes=True).parse_args()
    sizes = chosen_sizes(args, [100_000], [1_000_000])
    n_queries, cli_reps = (40, 5) if args.quick else (100, 9)
    res = {"machine": machine(), "quick": args.quick, "queries": n_queries, "cli_reps": cli_reps, "sizes": []}
    for n in sizes:
        with LoadSampler() as load:
            res["sizes"].append(measure_n(n, n_queries, cli_reps))
        r = res["sizes"][-1]
        r["load_avg"] = load.summary()
        print(
            n,
            "ratio",
            round(r["ratio_p50"], 3),
            "qps",
            round(r["concurrent"]["qps"], 1),
            "cli",
            r["cli_via_server_s"]["median"],
            flush=True,
        )
    publish("api_latency", res, section(res, args.quick))


if __name__ == "__main__":
    main()
