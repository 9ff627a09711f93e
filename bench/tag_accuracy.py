"""Zero-shot tagging accuracy of the bundled model on a held-out demo set, through the real CLI.

Generates N held-out scenes (`clipsearch demo-data --split heldout`), indexes them with
shapes-mini, runs `clipsearch tag --labels circle,square,...` with each prompt set, and scores each
image's stored tag against its true shape. Writes bench/results/tag_accuracy.json.

    python bench/tag_accuracy.py [--n 600] [--seed 5151]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROMPT_SETS = {
    "default (a photo of a {}. / a picture of a {}. / a {}. / {})": [],
    "a {}": ["a {}"],
    "a photo of {}": ["a photo of {}"],
    "a {} / a small {} / a large {} / two {}s / three {}s": [
        "a {}",
        "a small {}",
        "a large {}",
        "two {}s",
        "three {}s",
    ],
}
SHAPES = "circle,square,triangle,star,hexagon,cross"


def cli(home: Path, *args: str) -> str:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "clipsearch", "--home", str(home), *args]
    return subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout


def score(home: Path, labels: dict) -> dict:
    con = sqlite3.connect(home / "catalog.db")
    rows = con.execute("SELECT i.path, t.label FROM image_tags t JOIN images i ON i.id = t.image_id").fetchall()
    con.close()
    tags: dict[str, list[str]] = {}
    for path, label in rows:
        tags.setdefault(Path(path).name, []).append(label)
    correct = sum(tags.get(name, [None])[0] == row["shape"] for name, row in labels.items())
    return {"accuracy": correct / len(labels), "tagged": len(tags) / len(labels)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=600)
    parser.add_argument("--seed", type=int, default=5151)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        photos, home = Path(tmp) / "photos", Path(tmp) / "home"
        subprocess.run(
            [sys.executable, "-m", "clipsearch", "demo-data", str(photos), "--n", str(args.n), "--seed", str(args.seed),
             "--split", "heldout"], check=True, capture_output=True,
        )  # fmt: skip
        cli(home, "index", str(photos), "--model", "shapes-mini")
        labels = {json.loads(line)["file"]: json.loads(line) for line in (photos / "scenes.jsonl").open()}
        results = {}
        for name, prompts in PROMPT_SETS.items():
            cli(home, "tag", "--labels", SHAPES, *[a for p in prompts for a in ("--prompt", p)])
            results[name] = score(home, labels)
            print(f"{name:60s} accuracy {results[name]['accuracy']:.3f}  tagged {results[name]['tagged']:.3f}")
    out = {"n": args.n, "seed": args.seed, "labels": SHAPES, "threshold": 0.5, "results": results}
    (ROOT / "bench" / "results" / "tag_accuracy.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
