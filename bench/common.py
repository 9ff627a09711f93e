"""Shared helpers for the benchmark scripts: machine facts, timing, results and the docs page.

Every script writes bench/results/NAME.json (all raw numbers) and bench/results/NAME.md
(its Markdown section), and replaces its own marked section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
logging.getLogger().setLevel(logging.ERROR)  # open_clip warns on every random init

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DOCS_PAGE = ROOT / "docs" / "benchmarks.md"
CACHE = Path(os.environ.get("CLIPSEARCH_BENCH_CACHE", "/tmp/clipsearch-bench"))

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def ram_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return float("nan")


_PROBE: dict = {}


def _busy_seconds() -> float:
    """CPU-seconds the whole machine has spent busy since boot (all processes), from /proc/stat."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError):
        return float("nan")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def interference() -> dict:
    """CPU time other processes used since machine() was called: the noise this run competed with."""
    if not _PROBE:
        return {}
    wall = time.time() - _PROBE["wall"]
    other = (_busy_seconds() - _PROBE["busy"]) - (_own_seconds() - _PROBE["own"])
    share = other / (wall * (os.cpu_count() or 1))
    return {"wall_s": wall, "other_cpu_s": other, "other_share": share}


def machine() -> dict:
    import torch

    _PROBE.update(busy=_busy_seconds(), own=_own_seconds(), wall=time.time())
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": ram_gib(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "date_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load_avg_at_start": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }


def machine_line(m: dict) -> str:
    return (
        f"{m['cores']} cores ({m['cpu']}), {m['ram_gib']} GiB RAM, "
        f"{'CUDA GPU' if m['cuda'] else 'no GPU'}, torch {m['torch']} ({m['torch_threads']} threads), "
        f"Python {m['python']}; {m['date_utc']}; 1-min load average at start {m['load_avg_at_start']:.2f}"
    )


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo, hi = int(pos), min(int(pos) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def fmt(x: float, digits: int = 2) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float) and x != x:
        return "n/a"
    return f"{x:,.{digits}f}"


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("**met**" if ok else "**not met**")


def arguments(doc: str, quick_help: str, sizes: bool = False) -> argparse.ArgumentParser:
    """The options every script takes (--quick, --no-docs), and --sizes for those measured at several N."""
    ap = argparse.ArgumentParser(description=doc)
    ap.add_argument("--quick", action="store_true", help=quick_help)
    if sizes:
        ap.add_argument("--sizes", type=str, help="comma-separated N values (overrides the mode's default)")
    ap.add_argument("--no-docs", action="store_true", help="write bench/results only, leave docs/benchmarks.md alone")
    return ap


def chosen_sizes(args: argparse.Namespace, quick: list[int], full: list[int]) -> list[int]:
    if args.sizes:
        return [int(s) for s in args.sizes.split(",")]
    return quick if args.quick else full


def process_seconds(command: list[str], env: dict, reps: int) -> list[float]:
    """Wall seconds of each of `reps` runs of `command` as a new process (output discarded)."""
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out.append(time.perf_counter() - t)
    return out


def command_line(script: str, quick: bool) -> str:
    return f".venv/bin/python bench/{script}.py" + (" --quick" if quick else "")


def publish(name: str, data: dict, section: str) -> None:
    """Write results/NAME[.quick].json and .md; unless --no-docs, update docs/benchmarks.md: its summary
    table, and the NAME section (from a full run, or a quick one when no full run was recorded)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    noise = interference()
    if noise:
        data["interference"] = noise
        section = section.rstrip() + (
            f"\n\nNoise check: other processes used {noise['other_cpu_s']:.0f} CPU-seconds during this {noise['wall_s']:.0f} s run "
            f"({100 * noise['other_share']:.0f}% of the machine's cores).\n"
        )
    stem = f"{name}.quick" if data.get("quick") else name
    (RESULTS / f"{stem}.json").write_text(json.dumps(data, indent=2, default=str) + "\n")
    (RESULTS / f"{stem}.md").write_text(section.rstrip() + "\n")
    print(f"wrote {RESULTS / (stem + '.json')}")
    if "--no-docs" in sys.argv or not DOCS_PAGE.exists():
        return
    if data.get("quick") and (RESULTS / f"{name}.json").exists():
        # The page's sections show full runs; a quick rerun is compared with them in the summary table.
        print(
            f"kept the full-run {name} section of {DOCS_PAGE.relative_to(ROOT)} (quick results: {RESULTS / (stem + '.md')})"
        )
    else:
        _replace_section(name, section)
    from summary import write_summary  # imports this module: a top-level import would be circular

    write_summary()
    print(f"updated the summary table of {DOCS_PAGE.relative_to(ROOT)}")


def _replace_section(name: str, section: str) -> None:
    begin, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    page = DOCS_PAGE.read_text()
    if begin in page and end in page:
        head, rest = page.split(begin, 1)
        _, tail = rest.split(end, 1)
        DOCS_PAGE.write_text(f"{head}{begin}\n{section.rstrip()}\n{end}{tail}")
    print(f"replaced the {name} section of {DOCS_PAGE.relative_to(ROOT)}")


# -- Query benchmarks on synthetic stores (query_latency.py, api_latency.py) -------------------

K = 10  # results per query
SUBJECTS = ["a dog", "two cats", "a red car", "an old man", "a child", "a bicycle", "a sailing boat", "a bowl of fruit"]
PLACES = ["on a beach", "in the snow", "at night in a city", "in a kitchen", "under a tree", "next to a lake"]


def query_texts(n: int) -> list[str]:
    return [f"{SUBJECTS[i % len(SUBJECTS)]} {PLACES[(i // len(SUBJECTS)) % len(PLACES)]}, photo {i}" for i in range(n)]


def pcts(values: list[float]) -> dict:
    return {"p50": percentile(values, 50), "p95": percentile(values, 95), "n": len(values)}


def open_store(home: Path):  # -> clipsearch.store.Store; imported here so scripts that never query stay light
    from clipsearch.settings import Settings
    from clipsearch.store import Store

    return Store.open(Settings.from_env(home=home))


def store_env(home: Path) -> dict:
    """The environment of a `clipsearch` subprocess on this store."""
    return dict(os.environ, CLIPSEARCH_HOME=str(home), HF_HUB_OFFLINE="1")


def clipsearch_exe() -> str:
    return os.path.join(os.path.dirname(sys.executable), "clipsearch")


def timed_searches(service, texts: list[str], warmup: int) -> list[tuple[float, dict]]:
    """(wall ms, SearchResult.timings) of each warm `service.search` of texts[warmup:] (k=K)."""
    from clipsearch.search import SearchRequest

    for text in texts[:warmup]:
        service.search(SearchRequest(text=text, k=K))
    out = []
    for text in texts[warmup:]:
        t = time.perf_counter()
        result = service.search(SearchRequest(text=text, k=K))
        out.append(((time.perf_counter() - t) * 1000, result.timings))
    return out


class LoadSampler:
    """The machine's 1-minute load average, sampled in the background while a measurement runs."""

    def __init__(self, every_s: float = 2.0):
        import threading

        self.samples: list[float] = []
        self._stop = threading.Event()
        self._every = every_s
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(os.getloadavg()[0])
            self._stop.wait(self._every)

    def __enter__(self) -> LoadSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict:
        s = self.samples or [float("nan")]
        return {"min": min(s), "mean": sum(s) / len(s), "max": max(s), "samples": len(self.samples)}
