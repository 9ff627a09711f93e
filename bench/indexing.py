"""Indexing throughput: end-to-end vs model-only vs a serial rclip-style pipeline; re-index vs a bare walk.

Usage: .venv/bin/python bench/indexing.py [--quick]
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import indexing_parts as P
import numpy as np
from common import arguments, command_line, fmt, machine, machine_line, median, publish, table, verdict
from photos import collection_files, ensure_collection

from clipsearch.models import load_encoder

MODEL = "random:ViT-B-32"
BATCH = 32  # the indexer's CPU default


def measure_set(kind: str, n: int, encoder, rounds: int, sample: int) -> dict:
    folder = ensure_collection(kind, n)
    files = collection_files(folder)
    pixels = P.predecode(files, encoder.preprocess_cfg)
    e2e, model, keep = [], [], None
    for _ in range(rounds):  # interleaved, so drift in machine load hits both alike
        m, fast_emb = P.model_only(pixels, encoder, BATCH)
        model.append(m)
        e, store, settings = P.end_to_end(folder, encoder, BATCH)
        e2e.append(e)
        if keep:
            P.drop_store(*keep)
        keep = (store, settings)
    serial, ref_emb = P.serial_baseline(files, encoder, BATCH)
    stages, exact_px = P.stage_times(files[:sample], encoder)
    exact_emb = P.model_only(list(exact_px), encoder, BATCH)[1]
    out = {
        "folder": str(folder),
        "images": len(files),
        "mean_file_bytes": float(np.mean([p.stat().st_size for p in files])),
        "end_to_end": e2e,
        "model_only": model,
        "serial": serial,
        "e2e_ips": median([r["images_per_s"] for r in e2e]),
        "model_ips": median([r["images_per_s"] for r in model]),
        "serial_ips": serial["images_per_s"],
        "stages_ms": stages,
        "db_write_ms": P.db_write_ms(4 * BATCH, encoder.dim, encoder, BATCH),
        "cos_draft_vs_openclip_min": float(np.min(np.sum(fast_emb * ref_emb, axis=1))),
        "cos_exact_vs_openclip_min": float(np.min(np.sum(exact_emb * ref_emb[:sample], axis=1))),
        "cos_draft_vs_exact_min": float(np.min(np.sum(fast_emb[:sample] * exact_emb, axis=1))),
        "cos_between_images_max": float(np.max((ref_emb @ ref_emb.T)[np.triu_indices(len(ref_emb), 1)])),
    }
    out["stages_ms"]["model_ms"] = 1000 / out["model_ips"]
    out["e2e_over_model"] = out["e2e_ips"] / out["model_ips"]
    out["e2e_over_serial"] = out["e2e_ips"] / out["serial_ips"]
    out["reindex"] = P.reindex(folder, keep[0], keep[1], encoder, reps=5)
    P.drop_store(*keep)
    return out


def measure_tiny_reindex(n: int, cli_reps: int) -> dict:
    """Re-index cost grows with file count, so it is also measured on many small files (random:cs-tiny)."""
    folder = P.make_tiny_tree(n)
    encoder = load_encoder("random:cs-tiny", device="cpu", runtime="torch")
    store, settings = P.fresh_store()
    store.bind(encoder)
    first = P.run_index(store.catalog, encoder, [folder], settings, P.IndexOptions())
    store.vector_index()
    out = P.reindex(folder, store, settings, encoder, reps=5)
    out["first_index_s"] = first.seconds
    out.update(P.cli_reindex(folder, settings, cli_reps))
    P.drop_store(store, settings)
    return out


def _throughput_tables(sets: dict) -> tuple[str, str, str]:
    names = list(sets)
    rows = [
        [
            k,
            sets[k]["images"],
            f"{sets[k]['mean_file_bytes'] / 1e6:.2f}",
            fmt(sets[k]["e2e_ips"]),
            fmt(sets[k]["model_ips"]),
            fmt(sets[k]["serial_ips"]),
            f"**{fmt(sets[k]['e2e_over_model'])}**",
            f"**{fmt(sets[k]['e2e_over_serial'])}**",
        ]
        for k in names
    ]
    ratio_table = table(
        [
            "set",
            "images",
            "MB/file",
            "end-to-end img/s",
            "model-only img/s",
            "serial img/s",
            "end-to-end / model-only",
            "end-to-end / serial",
        ],
        rows,
    )
    stage_names = [
        "read_hash_ms",
        "decode_draft_ms",
        "resize_from_draft_ms",
        "thumbnail_ms",
        "model_ms",
        "decode_full_ms",
        "resize_from_full_ms",
    ]
    srows = [
        [s.replace("_ms", "").replace("_", " ")] + [fmt(sets[k]["stages_ms"][s], 1) for k in names] for s in stage_names
    ]
    srows.append(["DB write (Catalog.write, batches of 32)"] + [fmt(sets[k]["db_write_ms"], 2) for k in names])
    stage_table = table(["stage (ms per image, one thread, median)"] + names, srows)
    fid_rows = [
        [
            k,
            f"{sets[k]['cos_draft_vs_openclip_min']:.5f}",
            f"{sets[k]['cos_exact_vs_openclip_min']:.5f}",
            f"{sets[k]['cos_draft_vs_exact_min']:.5f}",
            f"{sets[k]['cos_between_images_max']:.3f}",
        ]
        for k in names
    ]
    fid_table = table(
        [
            "set",
            "min cos draft path vs open_clip transform (all images)",
            "min cos exact path vs open_clip (sample)",
            "min cos draft vs exact (sample)",
            "max cos between two different images (context)",
        ],
        fid_rows,
    )
    return ratio_table, stage_table, fid_table


def _reindex_table(sets: dict, tiny: dict) -> str:
    names = list(sets)
    re_rows = [
        [
            f"{k} photos",
            sets[k]["reindex"]["files"],
            fmt(sets[k]["reindex"]["walk_stat_s"] * 1000, 1),
            fmt(sets[k]["reindex"]["reindex_s"] * 1000, 1),
            f"**{fmt(sets[k]['reindex']['ratio'])}**",
        ]
        for k in names
    ]
    re_rows.append(
        [
            f"small files ({tiny['files']}, 100 per folder)",
            tiny["files"],
            fmt(tiny["walk_stat_s"] * 1000, 1),
            fmt(tiny["reindex_s"] * 1000, 1),
            f"**{fmt(tiny['ratio'])}**",
        ]
    )
    return table(["folder", "files", "os.walk + stat (ms)", "re-index in process (ms)", "ratio"], re_rows)


def section(res: dict, quick: bool) -> str:
    sets, tiny = res["sets"], res["tiny"]
    ratio_table, stage_table, fid_table = _throughput_tables(sets)
    re_table = _reindex_table(sets, tiny)
    parts = tiny["parts_s"]
    parts_line = ", ".join(
        f"{k.replace('_', ' ')}: {'yes' if v else 'no'}"
        if isinstance(v, bool)
        else f"{k.replace('_', ' ')} {fmt(v * 1000, 1)} ms"
        for k, v in parts.items()
    )
    big = sets.get("12mp")
    fid_min = min(min(s["cos_draft_vs_openclip_min"], s["cos_draft_vs_exact_min"]) for s in sets.values())
    big_re = tiny["ratio"]
    return f"""## 1. Indexing throughput

Command: `{command_line("indexing", quick)}` (first run also generates the JPEGs, cached under /tmp/clipsearch-bench)

Machine: {machine_line(res["machine"])}

Model `{MODEL}` (random weights, the real ViT-B/32 architecture), CPU fp32, batch {BATCH} (the indexer's CPU
default), default decode workers. Collections: seeded photo-like JPEGs (smooth colour fields, soft shapes, sensor-like
grain), quality 90: `12mp` = 4000x3000, `1mp` = 1152x864. End-to-end = `run_index` into a fresh SQLite store (read,
hash, draft decode, resize, thumbnail, embed, commit) plus the vector index build, i.e. `clipsearch index` minus
process start and model load; medians of {res["rounds"]} interleaved rounds. Model-only = the same encoder and batch on
pre-decoded uint8 tensors. Serial = one image at a time: `PIL.Image.open(...).convert("RGB")` (full decode), open_clip's
own eval transform, embedded in batches of {BATCH} (what rclip does).

{ratio_table}

Targets: end-to-end / serial >= 2 on the 12 MP set: {verdict(big["e2e_over_serial"] >= 2 if big else None)}.
End-to-end / model-only >= 0.9 is the GPU target; on 2 CPU cores decoding and the model share the same cores, so
it is bounded by model / (model + all other per-image work) (see below).

Where the time goes (single thread, no overlap; model = 1 / model-only throughput, which uses both cores):

{stage_table}

Fidelity of the fast (draft) path: cosine between embeddings of the same image.
Target >= 0.999: {verdict(fid_min >= 0.999)} (worst {fid_min:.5f}).

{fid_table}

### Re-index of an unchanged collection

`run_index` + vector-index check on an already indexed folder (store open, model loaded) divided by a bare
`os.walk` + `os.stat` of the same files (medians of 5, warm cache). Target <= 2 on the {tiny["files"]:,}-file folder:
{verdict(big_re <= 2)} ({fmt(big_re)}). On the small photo folders fixed costs (catalog queries, opening the vector
index) dominate a walk that takes well under a millisecond.

{re_table}

Each step of the unchanged re-index of the {tiny["files"]}-file folder, timed alone (medians of 3 passes): {parts_line}
(the indexer's walk stats every file, as the bare walk does; the catalog's rows are read only when the walk differs
from the one the last completed run recorded, or when anything wrote image rows since; the thumbnail cache is listed
only when the marks left by the last completed run no longer hold, i.e. a thumbnail was removed or the catalog changed
since).

As a new process, `clipsearch index` on the unchanged {tiny["files"]}-file folder took {fmt(tiny["cli_reindex_s"])} s, against
{fmt(tiny["python_import_torch_s"])} s for `python -c "import torch"` (medians of {tiny["reps"]}); no model is loaded when nothing needs
embedding. Section 10 breaks such a process down against a bare walk process.
"""


def main() -> None:
    ap = arguments(__doc__, "48 images per set, 2 rounds (under 2 minutes once generated)")
    ap.add_argument("--n", type=int, help="images per set (overrides the mode's default; for smoke tests)")
    ap.add_argument("--tiny-n", type=int, help="small files for the re-index test (overrides the default)")
    args = ap.parse_args()
    n, rounds, sample, tiny_n = (48, 2, 8, 20000) if args.quick else (192, 3, 16, 20000)
    n, tiny_n = args.n or n, args.tiny_n or tiny_n
    sample = min(sample, n)
    res = {"machine": machine(), "quick": args.quick, "model": MODEL, "batch_size": BATCH, "rounds": rounds, "sets": {}}
    encoder = load_encoder(MODEL, device="cpu", runtime="torch")
    P.model_only([np.zeros((224, 224, 3), np.uint8)] * 4, encoder, 4)  # warm-up
    for kind in ("12mp", "1mp"):
        res["sets"][kind] = measure_set(kind, n, encoder, rounds, sample)
        print(kind, {k: v for k, v in res["sets"][kind].items() if k.endswith(("ips", "model", "serial"))}, flush=True)
    res["tiny"] = measure_tiny_reindex(tiny_n, cli_reps=2 if args.quick else 3)
    publish("indexing", res, section(res, args.quick))


if __name__ == "__main__":
    main()
