"""The measurements behind bench/indexing.py, one function per pipeline being timed."""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import CACHE, ROOT, median, process_seconds
from PIL import Image

from clipsearch.catalog import ImageRecord
from clipsearch.imaging import load_for_model, load_rgb, resize_for_model
from clipsearch.indexer import IndexOptions, run_index
from clipsearch.indexer.exclude import Exclusions
from clipsearch.indexer.scan import resolve_roots, walk_root
from clipsearch.indexer.walks import WalkRecords
from clipsearch.settings import Settings
from clipsearch.store import Store
from clipsearch.thumbnails import Thumbnails, encode_thumbnail

MAX_MP = 100.0


def fresh_store() -> tuple[Store, Settings]:
    (CACHE / "stores").mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="idx-", dir=CACHE / "stores"))
    settings = Settings(home=home)
    return Store.open(settings), settings


def drop_store(store: Store, settings: Settings) -> None:
    store.close()
    shutil.rmtree(settings.home, ignore_errors=True)


def end_to_end(folder: Path, encoder, batch_size: int) -> tuple[dict, Store, Settings]:
    """What `clipsearch index` does after loading the model: run_index, then the vector index."""
    store, settings = fresh_store()
    store.bind(encoder)
    t0 = time.perf_counter()
    summary = run_index(store.catalog, encoder, [folder], settings, IndexOptions(batch_size=batch_size))
    t1 = time.perf_counter()
    store.vector_index()
    t2 = time.perf_counter()
    n = summary.embedded
    return (
        {
            "images": n,
            "seconds": t2 - t0,
            "run_index_s": t1 - t0,
            "vector_index_s": t2 - t1,
            "images_per_s": n / (t2 - t0),
            "failed": summary.failed,
        },
        store,
        settings,
    )


def predecode(files: list[Path], cfg) -> list[np.ndarray]:
    """The product's fast path (draft decode + exact resize), done ahead of the model-only timing."""
    return [load_for_model(p.read_bytes(), cfg, MAX_MP, fast=True)[0] for p in files]


def model_only(pixels: list[np.ndarray], encoder, batch_size: int) -> tuple[dict, np.ndarray]:
    """The same encoder, batch size and device on pre-decoded uint8 tensors."""
    batches = [np.stack(pixels[i : i + batch_size]) for i in range(0, len(pixels), batch_size)]
    t0 = time.perf_counter()
    out = [encoder.encode_images(b) for b in batches]
    seconds = time.perf_counter() - t0
    return {"images": len(pixels), "seconds": seconds, "images_per_s": len(pixels) / seconds}, np.concatenate(out)


def openclip_transform(encoder):
    import open_clip

    cfg = encoder.preprocess_cfg
    return open_clip.image_transform(
        cfg.size,
        is_train=False,
        mean=cfg.mean,
        std=cfg.std,
        resize_mode=cfg.resize_mode,
        interpolation=cfg.interpolation,
    )


@torch.inference_mode()
def _embed_normalised(encoder, batch: list[torch.Tensor]) -> np.ndarray:
    feats = encoder.model.encode_image(torch.stack(batch).to(encoder.torch_device))
    return torch.nn.functional.normalize(feats.float(), dim=-1).cpu().numpy()


def serial_baseline(files: list[Path], encoder, batch_size: int) -> tuple[dict, np.ndarray]:
    """rclip-style: open and fully decode one image at a time, open_clip's own transform, embed in batches."""
    transform = openclip_transform(encoder)
    batch, out = [], []
    t0 = time.perf_counter()
    for path in files:
        with Image.open(path) as img:
            batch.append(transform(img.convert("RGB")))
        if len(batch) == batch_size:
            out.append(_embed_normalised(encoder, batch))
            batch = []
    if batch:
        out.append(_embed_normalised(encoder, batch))
    seconds = time.perf_counter() - t0
    return {"images": len(files), "seconds": seconds, "images_per_s": len(files) / seconds}, np.concatenate(out)


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000


def stage_times(files: list[Path], encoder, thumb_side: int = 320) -> tuple[dict, np.ndarray]:
    """Per-image single-thread cost of each stage; also returns the exact (no draft) pixels."""
    cfg = encoder.preprocess_cfg
    rows: dict[str, list[float]] = {
        k: []
        for k in (
            "read_hash_ms",
            "decode_draft_ms",
            "resize_from_draft_ms",
            "thumbnail_ms",
            "decode_full_ms",
            "resize_from_full_ms",
        )
    }
    exact = []
    for path in files:
        t = time.perf_counter()
        data = path.read_bytes()
        hashlib.blake2b(data, digest_size=16).hexdigest()
        rows["read_hash_ms"].append(_ms(t))
        t = time.perf_counter()
        rgb, _ = load_rgb(data, MAX_MP, min_side=max(2 * cfg.size, thumb_side))  # what the indexer decodes
        rows["decode_draft_ms"].append(_ms(t))
        t = time.perf_counter()
        resize_for_model(rgb, cfg)
        rows["resize_from_draft_ms"].append(_ms(t))
        t = time.perf_counter()
        encode_thumbnail(rgb, thumb_side)
        rows["thumbnail_ms"].append(_ms(t))
        t = time.perf_counter()
        full, _ = load_rgb(data, MAX_MP, min_side=None)
        rows["decode_full_ms"].append(_ms(t))
        t = time.perf_counter()
        exact.append(resize_for_model(full, cfg))
        rows["resize_from_full_ms"].append(_ms(t))
    return {k: median(v) for k, v in rows.items()}, np.stack(exact)


def db_write_ms(n: int, dim: int, encoder, batch_size: int) -> float:
    """Per-image cost of Catalog.write for batches of `batch_size` rows with vectors (fresh SQLite store)."""
    store, settings = fresh_store()
    store.bind(encoder)
    rng = np.random.default_rng(0)
    took = 0.0
    for start in range(0, n, batch_size):
        recs = []
        for i in range(start, min(n, start + batch_size)):
            v = rng.normal(size=dim).astype(np.float32)
            recs.append(
                ImageRecord(
                    f"/bench/db/{i:06d}.jpg",
                    "/bench/db",
                    1000 + i,
                    i,
                    f"{i:032x}",
                    "ok",
                    width=4000,
                    height=3000,
                    vector=v / np.linalg.norm(v),
                )
            )
        t = time.perf_counter()
        store.catalog.writes.write(recs, {}, model_id=encoder.model_id)
        took += time.perf_counter() - t
    drop_store(store, settings)
    return took * 1000 / n


def walk_stat(folder: Path) -> tuple[float, int]:
    t0 = time.perf_counter()
    n = 0
    for dirpath, _dirs, names in os.walk(folder):
        for name in names:
            if name.endswith(".jpg"):
                os.stat(os.path.join(dirpath, name))
                n += 1
    return time.perf_counter() - t0, n


def reindex(folder: Path, store: Store, settings: Settings, encoder, reps: int) -> dict:
    """Unchanged folder: run_index + index file check (in process, model loaded) vs os.walk + stat."""
    walks, runs = [], []
    walk_stat(folder)  # warm the directory cache for both
    for _ in range(reps):
        walks.append(walk_stat(folder)[0])
        t0 = time.perf_counter()
        summary = run_index(store.catalog, encoder, [folder], settings, IndexOptions())
        store.sync_index_file()  # what `clipsearch index` does after run_index
        runs.append(time.perf_counter() - t0)
        assert summary.embedded == 0, "the folder changed between runs"
    files = walk_stat(folder)[1]
    return {
        "files": files,
        "walk_stat_s": median(walks),
        "reindex_s": median(runs),
        "ratio": median(runs) / median(walks),
        "reps": reps,
        "parts_s": reindex_parts(folder, store, settings),
    }


def _timed(step: Callable[[], Any], reps: int = 3) -> tuple[Any, float]:
    """The step's result and its median time over `reps` passes (a single pass can meet a cold cache)."""
    times, result = [], None
    for _ in range(reps):
        t = time.perf_counter()
        result = step()
        times.append(time.perf_counter() - t)
    return result, median(times)


def reindex_parts(folder: Path, store: Store, settings: Settings) -> dict:
    """Each step an unchanged re-index does, timed alone (medians of 3 passes)."""
    root = resolve_roots([folder])[0]
    exclusions = Exclusions.build(skip=(settings.home,))
    out: dict[str, Any] = {}
    walk, out["scan"] = _timed(lambda: walk_root(root, exclusions))
    records = WalkRecords(settings, exclusions, store.catalog.facts.rows_seq())
    out["walk_record_holds"], out["walk_record_check"] = _timed(lambda: records.unchanged(root, walk))
    states, out["catalog_file_states_if_record_fails"] = _timed(
        lambda: store.catalog.writes.file_states(root.path, root.is_dir)
    )
    thumbs = Thumbnails.for_settings(settings)
    seq = store.catalog.facts.current_seq()
    [covered], out["thumbnail_marks_check"] = _timed(lambda: thumbs.covers([root.path], seq))
    out["thumbnail_marks_hold"] = covered

    def list_thumbnails() -> list[bool]:
        have = thumbs.existing()
        return [state.content_hash in have for state in states.values()]

    _, out["thumbnail_listing_if_marks_fail"] = _timed(list_thumbnails)
    _, out["index_file_check"] = _timed(store.sync_index_file)
    return out


def make_tiny_tree(n: int) -> Path:
    """n small JPEGs in 100-file folders (re-index cost depends on file count, not pixels)."""
    folder = CACHE / "photos" / f"tiny-n{n}"
    if (folder / ".complete").exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    rng = np.random.default_rng(7)
    for i in range(n):
        sub = folder / f"d{i // 100:04d}"
        sub.mkdir(parents=True, exist_ok=True)
        cells = rng.integers(0, 256, size=(3, 4, 3), dtype=np.uint8)
        Image.fromarray(cells, "RGB").resize((64, 48), Image.Resampling.NEAREST).save(sub / f"t{i:06d}.jpg", quality=90)
    (folder / ".complete").write_text("ok\n")
    return folder


def cli_reindex(folder: Path, settings: Settings, reps: int) -> dict:
    """`clipsearch index` as a new process on the unchanged folder, beside `python -c 'import torch'`."""
    env = dict(os.environ, CLIPSEARCH_HOME=str(settings.home), HF_HUB_OFFLINE="1")
    exe = str(Path(sys.executable).parent / "clipsearch")
    cli = median(process_seconds([exe, "index", str(folder)], env, reps))
    torch_import = median(process_seconds([sys.executable, "-c", "import torch"], env, reps))
    return {"cli_reindex_s": cli, "python_import_torch_s": torch_import, "reps": reps, "cwd": str(ROOT)}
