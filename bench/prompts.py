"""Query prompt ensembling on the bundled model's held-out demo set: raw text vs text averaged with templates.

Generates N held-out scenes (the demo split: colour+shape pairs the model never saw together are
included), embeds them with the model as the indexer does, and ranks every image for each colour+shape
query ("a red triangle" and "red triangle") embedded the two ways the search service can: as typed
(`--raw`), and averaged with each candidate template set (`--prompts`, the same code path). Scores
precision@10 and recall@10 per query (relevant: every image of that colour and shape). Writes
bench/results/prompts.json; with --record, writes the decision into the model's open_clip_config.json
("clipsearch" -> "query_prompts"), which is where `clipsearch query` reads its default.

    python bench/prompts.py [--model shapes-mini] [--n 1200] [--seed 5151] [--record]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from clipsearch.models import load_encoder, parse_model_spec
from clipsearch.models.checkpoint import CONFIG_NAME, read_config
from clipsearch.models.prompts import GENERIC_TEMPLATES, RECORD_KEY, QueryPrompts
from clipsearch.search.tagging import label_embeddings
from clipsearch.synthetic.corpus import generate_corpus, read_labels
from clipsearch.training.data import load_dataset

ROOT = Path(__file__).resolve().parent.parent
K = 10
# Candidate templates: the paper's photo template adapted to phrases, and the prefixes the bundled
# model's training captions use (clipsearch/synthetic/captions.py).
TEMPLATE_SETS = {
    "generic": GENERIC_TEMPLATES,
    "caption prefixes": ("a picture of {}", "an image of {}", "a drawing of {}"),
}
PHRASINGS = ("a {c} {s}", "{c} {s}")
# A template set is on by default only if it beats raw text on mean precision@10 by at least this
# much without lowering mean recall@10 (a smaller gap is within run-to-run noise of the scene sample).
MIN_GAIN = 0.01


def scores(image_emb: np.ndarray, query_emb: np.ndarray, relevant: list[np.ndarray]) -> list[dict]:
    top = np.argsort(-(query_emb @ image_emb.T), axis=1, kind="stable")[:, :K]
    out = []
    for row, mask in zip(top, relevant, strict=True):
        hits = int(mask[row].sum())
        out.append({"precision@10": hits / K, "recall@10": hits / int(mask.sum())})
    return out


def summary(per_query: list[dict]) -> dict:
    return {m: float(np.mean([q[m] for q in per_query])) for m in ("precision@10", "recall@10")}


def embed_images(model: str, folder: Path) -> tuple[object, np.ndarray, list[dict]]:
    encoder = load_encoder(model, device="cpu")
    dataset, _ = load_dataset(folder, encoder.preprocess_cfg, workers=2)
    image_emb = np.concatenate(
        [encoder.encode_images(dataset.pixels[i : i + 256]) for i in range(0, len(dataset), 256)]
    )
    table = read_labels(folder)
    return encoder, image_emb, [table[Path(p).name] for p in dataset.paths]


def run(model: str, n: int, seed: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        generate_corpus(Path(tmp), n, seed, split="heldout")
        encoder, image_emb, labels = embed_images(model, Path(tmp))
    colours = np.array([row["colour"] for row in labels])
    shapes = np.array([row["shape"] for row in labels])
    pairs = sorted({(c, s) for c, s in zip(colours, shapes, strict=True) if ((colours == c) & (shapes == s)).sum()})
    queries = [p.format(c=c, s=s) for p in PHRASINGS for c, s in pairs]
    relevant = [(colours == c) & (shapes == s) for _ in PHRASINGS for c, s in pairs]
    variants = {"raw": np.asarray(encoder.encode_texts(queries), dtype=np.float32)}
    for name, templates in TEMPLATE_SETS.items():
        variants[name] = label_embeddings(encoder, queries, QueryPrompts(templates, True, "").ensemble)
    per_query = {name: scores(image_emb, emb, relevant) for name, emb in variants.items()}
    result: dict = {"model": encoder.model_id, "n": len(labels), "seed": seed, "queries": len(queries), "k": K}
    result["variants"] = {
        name: {"templates": list(TEMPLATE_SETS.get(name, ())), **summary(rows)} for name, rows in per_query.items()
    }
    for name in TEMPLATE_SETS:
        diffs = [a["precision@10"] - b["precision@10"] for a, b in zip(per_query[name], per_query["raw"], strict=True)]
        result["variants"][name]["vs_raw_precision@10"] = {
            "better": sum(d > 0 for d in diffs), "worse": sum(d < 0 for d in diffs), "same": sum(d == 0 for d in diffs)
        }  # fmt: skip
    result["per_query"] = [
        {"query": q, "relevant": int(m.sum()), **{name: rows[i] for name, rows in per_query.items()}}
        for i, (q, m) in enumerate(zip(queries, relevant, strict=True))
    ]
    result["decision"] = decide(result["variants"])
    return result


def decide(variants: dict) -> dict:
    raw = variants["raw"]
    best = max(TEMPLATE_SETS, key=lambda name: variants[name]["precision@10"])
    gain = variants[best]["precision@10"] - raw["precision@10"]
    helps = gain >= MIN_GAIN and variants[best]["recall@10"] >= raw["recall@10"]
    return {"default": helps, "templates": list(TEMPLATE_SETS[best]), "best": best, "precision@10_gain": gain}


def record(model: str, result: dict) -> Path:
    parsed = parse_model_spec(model)
    if parsed.kind not in ("bundled", "checkpoint") or parsed.path is None:
        raise SystemExit(f"--record writes into a checkpoint folder's {CONFIG_NAME}; {model} is not one")
    config = read_config(parsed.path)
    d = result["decision"]
    basis = (
        f"bench/prompts.py on {result['n']} held-out demo scenes, {result['queries']} colour+shape queries: "
        f"mean precision@10 raw {result['variants']['raw']['precision@10']:.3f}, "
        f"with prompts ({d['best']}) {result['variants'][d['best']]['precision@10']:.3f}; "
        f"on by default only for a gain of at least {MIN_GAIN} without losing recall@10"
    )
    config.setdefault("clipsearch", {})[RECORD_KEY] = {
        "default": d["default"],
        "templates": d["templates"],
        "basis": basis,
    }
    path = parsed.path / CONFIG_NAME
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="shapes-mini")
    parser.add_argument("--n", type=int, default=1200)
    parser.add_argument("--seed", type=int, default=5151)
    parser.add_argument("--record", action="store_true", help="write the decision into the model's config")
    args = parser.parse_args()
    started = time.time()
    result = run(args.model, args.n, args.seed)
    result["seconds"] = round(time.time() - started, 1)
    for name, v in result["variants"].items():
        print(
            f"{name:18s} precision@10 {v['precision@10']:.3f}  recall@10 {v['recall@10']:.3f}  {v.get('vs_raw_precision@10', '')}"
        )
    print(f"decision: {result['decision']}")
    (ROOT / "bench" / "results" / "prompts.json").write_text(json.dumps(result, indent=2) + "\n")
    if args.record:
        print(f"recorded in {record(args.model, result)}")


if __name__ == "__main__":
    main()
