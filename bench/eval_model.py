"""Score models on a generated held-out corpus, the way the model card's numbers are measured.

    python bench/eval_model.py MODEL [MODEL...] DATA [--workers N] [--out FILE]

MODEL is any --model spec (bundled name or checkpoint folder); DATA is a folder written by
`clipsearch demo-data --split heldout`. Each model is scored in two settings from the same pictures:

- the whole set (the card's 5,000 images, ~80 per colour+shape pair): recall@k, zero-shot colour and
  shape accuracy, colour+shape precision@10 on seen and held-out pairs, count-aware R-precision;
- album scale: `album_precision@10`, the set cut into consecutive 400-image albums (~7 pictures per
  pair, ~12 for the commonest), each searched for "a COLOUR SHAPE" over its 8 commonest pairs (a picture
  of one, two or three such objects is a hit); `album_precision@10_min` is the worst album's mean.

Prints one JSON object per model; --out writes them all to a file (bench/results/...).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np

from clipsearch.models import load_encoder
from clipsearch.synthetic.corpus import read_labels
from clipsearch.synthetic.metrics import ALBUM_SIZE, album_precision, scorer_for
from clipsearch.training.data import load_dataset
from clipsearch.training.evaluate import evaluate_encoder


def _worst_album(encoder, image_emb: np.ndarray, paths: list[Path], data: Path) -> float:
    labels = read_labels(data)
    rows = [labels[Path(p).name] for p in paths]
    colours, shapes = [r["colour"] for r in rows], [r["shape"] for r in rows]
    albums = [slice(s, s + ALBUM_SIZE) for s in range(0, len(rows) - ALBUM_SIZE + 1, ALBUM_SIZE)]
    embed = encoder.encode_texts
    return float(min(album_precision(image_emb[a], colours[a], shapes[a], embed) for a in albums))


def score(spec: str, data: Path, workers: int) -> dict:
    started = time.time()
    encoder = load_encoder(spec, device="cpu")
    dataset, skipped = load_dataset(data, encoder.preprocess_cfg, workers)
    captions = [c[0] for c in dataset.captions]
    metrics = evaluate_encoder(encoder, dataset.pixels, captions, list(dataset.paths), scorer_for(data))
    image_emb = np.concatenate(
        [encoder.encode_images(dataset.pixels[i : i + 256]) for i in range(0, len(dataset), 256)]
    )
    metrics["album_precision@10_min"] = _worst_album(encoder, image_emb, list(dataset.paths), data)
    metrics.update(
        model=encoder.model_id, data=str(data), skipped=len(skipped), seconds=round(time.time() - started, 1)
    )
    return metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="one or more --model specs")
    parser.add_argument("data", type=Path)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, help="also write the results here as JSON")
    args = parser.parse_args()
    results = []
    for spec in args.models:
        results.append({"spec": spec, **score(spec, args.data, args.workers)})
        print(json.dumps(results[-1], indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"data": str(args.data), "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
