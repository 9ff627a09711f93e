"""Kill campaign: random SIGKILLs during `clipsearch index`, with the folder changing between runs.

For each backend (SQLite, and PostgreSQL when --pg-url is given) it runs N cycles: mutate the
photo folder (add, delete, move, rewrite, copy, touch), start an index run, SIGKILL it after a
random delay, and note the phase it was in (the last fault point it passed, traced through
CLIPSEARCH_FAULT_TRACE); four in ten are killed at a random fault point instead of a random moment,
so that every phase is hit. Every tenth cycle kills a run on a brand-new store instead, early or at
the end of its schema setup. After the kills, one uninterrupted run finishes the store, and it is
compared row for row and vector for vector (float16 bytes) with a fresh uninterrupted index of
the final folder. Not part of CI: it takes tens of minutes.

    .venv/bin/python bench/campaign.py --kills 60 --pg-url postgresql+psycopg://postgres@127.0.0.1:54329/db

Writes bench/results/campaign.json and replaces the campaign section of docs/reliability.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import sqlalchemy
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DOC = ROOT / "docs" / "reliability.md"
MODEL = "random:cs-tiny"
RUN_ARGS = ["--model", MODEL, "--batch-size", "8", "--workers", "2"]


def _photo(path: Path, seed: int) -> None:
    """A seeded photo-like JPEG: a coarse colour grid, upscaled smoothly (draft decoding matters)."""
    rng = np.random.default_rng(seed)
    cells = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    size = (640, 480) if seed % 2 else (400, 300)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(cells, "RGB").resize(size, Image.Resampling.BILINEAR).save(path, quality=90)


class Folder:
    """The photo folder and its seeded mutations."""

    def __init__(self, root: Path, rng: random.Random, n: int):
        self.root, self.rng, self.next_seed = root, rng, 0
        for _ in range(n):
            self.add()

    def files(self) -> list[Path]:
        return sorted(p for p in self.root.rglob("*.jpg"))

    def add(self) -> None:
        self.next_seed += 1
        _photo(self.root / f"d{self.next_seed % 7}" / f"p{self.next_seed:05d}.jpg", self.next_seed)

    def mutate(self) -> Counter:
        done: Counter = Counter()
        # Enough new work per cycle that kills land in every phase, not only in start-up.
        for _ in range(self.rng.randint(5, 30)):
            files = self.files()
            kind = self.rng.choice(["add", "add", "delete", "move", "rewrite", "copy", "touch"])
            if kind != "add" and not files:
                continue
            victim = self.rng.choice(files) if files else None
            if kind == "add":
                self.add()
            elif kind == "delete":
                victim.unlink()
            elif kind == "move":
                target = self.root / f"d{self.rng.randint(0, 9)}" / f"m{self.rng.randint(0, 10**9)}.jpg"
                target.parent.mkdir(exist_ok=True)
                victim.rename(target)
            elif kind == "rewrite":
                self.next_seed += 1
                _photo(victim, self.next_seed)
            elif kind == "copy":
                shutil.copyfile(victim, victim.with_name(f"c{self.rng.randint(0, 10**9)}.jpg"))
            else:
                os.utime(victim)
            done[kind] += 1
        return done


def _env(home: Path, url: str | None, **extra: str) -> dict:
    env = {**os.environ, "CLIPSEARCH_HOME": str(home), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **extra}
    # One model cache for every home: the ONNX export is made once, not in every new store.
    env["CLIPSEARCH_MODEL_CACHE"] = str(RESULTS.parent / ".campaign-models")
    env.pop("DATABASE_URL", None)
    if url:
        env["DATABASE_URL"] = url
    return env


def _index(folder: Path, home: Path, url: str | None) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "clipsearch", "index", str(folder), *RUN_ARGS, "--json"]
    return subprocess.run(args, env=_env(home, url), capture_output=True, text=True, timeout=900)


# Fault points a "pointed" kill may pick (with how many passages it may wait for).
POINTS = {"planned": 1, "thumbnail-saved": 12, "batch-committed": 3, "swept": 1, "index-temp-written": 1}


def _killed_run(folder: Path, home: Path, url: str | None, delay: float, trace: Path, fault: str = "") -> str:
    """Start a run and SIGKILL it: after `delay` seconds, or at the fault point `fault` when given.

    Returns the phase it was in (the last fault point passed, 'startup' before any), or 'finished'
    when the run ended before the kill.
    """
    trace.unlink(missing_ok=True)
    args = [sys.executable, "-m", "clipsearch", "index", str(folder), *RUN_ARGS]
    env = _env(home, url, CLIPSEARCH_FAULT_TRACE=str(trace), CLIPSEARCH_FAULT=fault)
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        proc.wait(timeout=900 if fault else delay)
        if proc.returncode == -signal.SIGKILL:
            return fault.split(":")[0]
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        lines = trace.read_text().split() if trace.exists() else []
        return lines[-1] if lines else "startup"
    err = proc.stderr.read() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"an index run failed on its own (exit {proc.returncode}): {err.strip()[-500:]}")
    return "finished"


def _rows(url: str) -> dict[str, tuple]:
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as con:
            rows = con.execute(sqlalchemy.text("SELECT path, status, content_hash, embedding FROM images")).all()
    finally:
        engine.dispose()
    return {r[0]: (r[1], r[2], bytes(r[3]) if r[3] is not None else None) for r in rows}


def _reset_pg(url: str) -> None:
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as con:
        con.execute(sqlalchemy.text("DROP SCHEMA public CASCADE"))
        con.execute(sqlalchemy.text("CREATE SCHEMA public"))
    engine.dispose()


def _url(kind: str, home: Path, pg: str | None) -> str | None:
    return pg if kind == "postgresql" else None


def _catalog(kind: str, home: Path, pg: str | None) -> str:
    return pg if kind == "postgresql" else f"sqlite:///{home / 'catalog.db'}"


def campaign(kind: str, kills: int, work: Path, pg: str | None, pg_ref: str | None, seed: int) -> dict:
    rng = random.Random(seed)
    folder = Folder(work / kind / "photos", rng, 160)
    home = work / kind / "home"
    trace = work / kind / "trace"
    url = _url(kind, home, pg)
    if kind == "postgresql":
        _reset_pg(pg)
    phases: Counter = Counter()
    mutations: Counter = Counter()
    fresh_ok = 0
    started = time.perf_counter()
    # Kills are spread over a whole incremental run: time one after a mutation (the first, full run
    # also warms the model cache). The probe's mutation stays: the campaign starts from it.
    probe = work / kind / "probe"
    if kind == "postgresql":
        _reset_pg(pg_ref)
    _index(folder.root, probe, pg_ref if kind == "postgresql" else None)
    mutations.update(folder.mutate())
    t0 = time.perf_counter()
    _index(folder.root, probe, pg_ref if kind == "postgresql" else None)
    span = max(3.0, 1.1 * (time.perf_counter() - t0))
    shutil.rmtree(probe, ignore_errors=True)
    for cycle in range(kills):
        if cycle % 10 == 9:
            # A kill early in a brand-new store's first run: schema setup must never brick it.
            fresh = work / kind / f"fresh{cycle}"
            fresh_url = url
            if kind == "postgresql":
                _reset_pg(pg_ref)
                fresh_url = pg_ref
            fault = "schema-migrated" if rng.random() < 0.5 else ""
            phase = _killed_run(folder.root, fresh, fresh_url, rng.uniform(0.3, 0.5 * span), trace, fault)
            phases[f"new store: {phase}"] += 1
            done = _index(folder.root, fresh, fresh_url)
            if done.returncode != 0:
                raise SystemExit(f"a store killed during its first run is unusable: {done.stderr.strip()[-500:]}")
            fresh_ok += 1
            shutil.rmtree(fresh, ignore_errors=True)
            continue
        mutations.update(folder.mutate())
        # Most kills at a random moment; some at a random fault point, so every phase is hit.
        fault = ""
        if rng.random() < 0.4:
            point = rng.choice(sorted(POINTS))
            fault = f"{point}:{rng.randint(1, POINTS[point])}"
        phases[_killed_run(folder.root, home, url, rng.uniform(0.3, span), trace, fault)] += 1
        print(f"{kind}: cycle {cycle + 1}/{kills}, phases so far {dict(phases)}", flush=True)
    final = _index(folder.root, home, url)
    if final.returncode != 0:
        raise SystemExit(f"the run after the kills failed: {final.stderr.strip()[-500:]}")
    ref_home = work / kind / "reference"
    ref_url = pg_ref if kind == "postgresql" else None
    if kind == "postgresql":
        _reset_pg(pg_ref)
    reference = _index(folder.root, ref_home, ref_url)
    if reference.returncode != 0:
        raise SystemExit(f"the reference run failed: {reference.stderr.strip()[-500:]}")
    got = _rows(_catalog(kind, home, pg))
    want = _rows(pg_ref if kind == "postgresql" else f"sqlite:///{ref_home / 'catalog.db'}")
    status = json.loads(
        subprocess.run(
            [sys.executable, "-m", "clipsearch", "status", "--json"],
            env=_env(home, url),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    return {
        "backend": kind,
        "kills": sum(n for p, n in phases.items() if p != "finished" and not p.endswith(": finished")),
        "cycles": kills,
        "runs_that_finished_before_the_kill": phases.get("finished", 0),
        "phases": dict(sorted(phases.items())),
        "new_stores_killed_then_usable": fresh_ok,
        "mutations": dict(sorted(mutations.items())),
        "files_at_end": len(folder.files()),
        "rows_reference": len(want),
        "rows_lost": len(want.keys() - got.keys()),
        "rows_extra": len(got.keys() - want.keys()),
        "rows_differing": sum(1 for p in want.keys() & got.keys() if got[p][:2] != want[p][:2]),
        "vectors_differing": sum(1 for p in want.keys() & got.keys() if got[p][2] != want[p][2]),
        "index_vectors_vs_images": [status.get("vectors"), status.get("images")],
        "seconds": round(time.perf_counter() - started, 1),
        "kill_window_s": round(span, 1),
    }


def _write_doc(results: list[dict], command: str) -> None:
    lines = [
        "<!-- campaign:start -->",
        "## Kill campaign",
        "",
        f"Measured {datetime.now(timezone.utc):%Y-%m-%d} on a 2-core CPU machine with `random:cs-tiny`, "
        f"batch 8, 2 decode threads; folder of 160 photo-like JPEGs mutated between kills. Reproduce:",
        "",
        f"    {command}",
        "",
        "| backend | kills | runs finished first | new stores killed, then usable | rows (reference) | "
        "rows lost | rows extra | rows differing | vectors differing | index vectors / images |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        lines.append(
            f"| {r['backend']} | {r['kills']} | {r['runs_that_finished_before_the_kill']} | "
            f"{r['new_stores_killed_then_usable']} | {r['rows_reference']} | {r['rows_lost']} | {r['rows_extra']} | "
            f"{r['rows_differing']} | {r['vectors_differing']} | {r['index_vectors_vs_images'][0]} / "
            f"{r['index_vectors_vs_images'][1]} |"
        )
    lines += ["", "Phases the kills hit (the last fault point each killed run had passed):", ""]
    for r in results:
        phases = ", ".join(f"{name} {count}" for name, count in r["phases"].items())
        mutations = ", ".join(f"{name} {count}" for name, count in r["mutations"].items())
        lines.append(f"- {r['backend']}: {phases}. Folder mutations: {mutations}.")
    lines.append("<!-- campaign:end -->")
    section = "\n".join(lines) + "\n"
    text = DOC.read_text() if DOC.exists() else "# Reliability\n\n"
    if "<!-- campaign:start -->" in text:
        head, rest = text.split("<!-- campaign:start -->", 1)
        text = head + section + rest.split("<!-- campaign:end -->\n", 1)[-1]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    DOC.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=60, help="kill cycles per backend")
    parser.add_argument("--pg-url", help="a PostgreSQL database this campaign may wipe (skip PostgreSQL without)")
    parser.add_argument("--pg-ref-url", help="a second database for the reference runs (default: PG_URL + '_ref')")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temp dir, removed at the end)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="clipsearch-campaign-"))
    pg_ref = args.pg_ref_url or (args.pg_url + "_ref" if args.pg_url else None)
    results = []
    for kind in ["sqlite"] + (["postgresql"] if args.pg_url else []):
        results.append(campaign(kind, args.kills, work, args.pg_url, pg_ref, args.seed))
        print(json.dumps(results[-1], indent=2), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "campaign.json").write_text(json.dumps(results, indent=2) + "\n")
    command = f".venv/bin/python bench/campaign.py --kills {args.kills}" + (" --pg-url URL" if args.pg_url else "")
    _write_doc(results, command)
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
