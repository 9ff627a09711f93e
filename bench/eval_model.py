"""Score a model on a generated held-out corpus, the way the model card's numbers are measured.

    python bench/eval_model.py MODEL DATA [--workers N]

MODEL is any --model spec (bundled name or checkpoint folder); DATA is a folder written by
`clipsearch demo-data --split heldout`. Prints one JSON object of metrics.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from clipsearch.models import load_encoder
from clipsearch.synthetic.metrics import scorer_for
from clipsearch.training.data import load_dataset
from clipsearch.training.evaluate import evaluate_encoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("data", type=Path)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    started = time.time()
    encoder = load_encoder(args.model, device="cpu")
    dataset, skipped = load_dataset(args.data, encoder.preprocess_cfg, args.workers)
    captions = [c[0] for c in dataset.captions]
    metrics = evaluate_encoder(encoder, dataset.pixels, captions, list(dataset.paths), scorer_for(args.data))
    metrics.update(
        model=encoder.model_id, data=str(args.data), skipped=len(skipped), seconds=round(time.time() - started, 1)
    )
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    main()
