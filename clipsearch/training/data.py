"""Loading (image, caption) training data into memory.

DATA is a folder of images with same-named .txt captions (one caption per line; a
line is drawn at random each time the image is used), or a CSV / JSONL of
(path, caption) rows. Bad rows and unreadable images are skipped and reported back.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from clipsearch.errors import ImageDecodeError, TrainingError
from clipsearch.imaging import IMAGE_EXTENSIONS, PreprocessConfig, load_for_model

MAX_MEGAPIXELS = 64.0


@dataclass(frozen=True)
class Pair:
    path: Path
    captions: tuple[str, ...]


@dataclass(frozen=True)
class Skipped:
    item: str
    reason: str


@dataclass
class Dataset:
    """Decoded pixels (N,H,W,3 uint8) with each image's captions."""

    pixels: np.ndarray
    captions: list[tuple[str, ...]]
    paths: list[Path]

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, indices) -> Dataset:
        idx = list(indices)
        return Dataset(self.pixels[idx], [self.captions[i] for i in idx], [self.paths[i] for i in idx])


def _clean(captions) -> tuple[str, ...]:
    return tuple(c.strip() for c in captions if c and c.strip())


def _read_folder(folder: Path) -> tuple[list[Pair], list[Skipped]]:
    pairs, skipped = [], []
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS):
        txt = path.with_suffix(".txt")
        if not txt.is_file():
            skipped.append(Skipped(str(path), f"no caption file {txt.name}"))
            continue
        texts = _clean(txt.read_text(errors="replace").splitlines())
        if not texts:
            skipped.append(Skipped(str(path), f"caption file {txt.name} is empty"))
            continue
        pairs.append(Pair(path, texts))
    return pairs, skipped


def _row_pair(row: dict, base: Path, where: str) -> Pair | Skipped:
    if not isinstance(row, dict):
        return Skipped(where, "row is not an object with path and caption")
    path, text = row.get("path") or row.get("image") or row.get("file"), row.get("caption") or row.get("text")
    if not path or not isinstance(path, str):
        return Skipped(where, "row has no path")
    if not text or not isinstance(text, str) or not text.strip():
        return Skipped(where, "row has no caption")
    full = Path(path).expanduser()
    return Pair(full if full.is_absolute() else base / full, (text.strip(),))


def _read_rows(source: Path) -> tuple[list[Pair], list[Skipped]]:
    pairs, skipped = [], []
    base = source.parent
    with open(source, newline="", encoding="utf-8", errors="replace") as fh:
        if source.suffix.lower() == ".csv":
            rows = ((f"{source.name}:{n + 2}", row) for n, row in enumerate(csv.DictReader(fh)))
        else:
            rows = ((f"{source.name}:{n + 1}", line) for n, line in enumerate(fh) if line.strip())
        for where, row in rows:
            if isinstance(row, str):
                try:
                    row = json.loads(row)
                except json.JSONDecodeError as exc:
                    skipped.append(Skipped(where, f"not valid JSON ({exc.msg})"))
                    continue
            result = _row_pair(row, base, where)
            (pairs if isinstance(result, Pair) else skipped).append(result)
    return pairs, skipped


def read_pairs(source: Path) -> tuple[list[Pair], list[Skipped]]:
    """List (image path, captions) pairs in DATA, with the rows that had to be skipped."""
    source = Path(source).expanduser()
    if source.is_dir():
        return _read_folder(source)
    if source.is_file() and source.suffix.lower() in (".csv", ".jsonl", ".ndjson"):
        return _read_rows(source)
    if not source.exists():
        raise TrainingError(f"training data {source} does not exist")
    raise TrainingError(f"{source}: DATA must be a folder of images with .txt captions, or a .csv/.jsonl file")


def _decode(args: tuple) -> tuple[np.ndarray | None, str]:
    path, cfg = args
    try:
        pixels, _info = load_for_model(Path(path).read_bytes(), cfg, MAX_MEGAPIXELS)
        return pixels, ""
    except ImageDecodeError as exc:
        return None, str(exc)
    except OSError as exc:
        return None, f"cannot read file: {exc.strerror or exc}"


def decode_pairs(
    pairs: list[Pair],
    cfg: PreprocessConfig,
    workers: int = 1,
    progress: Optional[Callable[[int, int], None]] = None,
) -> tuple[Dataset, list[Skipped]]:
    """Decode every image with the same preprocessing the indexer uses (so pixels match)."""
    pixels = np.zeros((len(pairs), cfg.size, cfg.size, 3), dtype=np.uint8)
    keep, skipped = [], []
    jobs = [(str(p.path), cfg) for p in pairs]
    pool = ProcessPoolExecutor(max_workers=workers) if workers > 1 else None
    try:
        results = pool.map(_decode, jobs, chunksize=256) if pool else map(_decode, jobs)
        for i, (array, error) in enumerate(results):
            if array is None:
                skipped.append(Skipped(str(pairs[i].path), error))
            else:
                pixels[len(keep)] = array
                keep.append(pairs[i])
            if progress and (i + 1) % 1000 == 0:
                progress(i + 1, len(pairs))
    finally:
        if pool:
            pool.shutdown()
    dataset = Dataset(pixels[: len(keep)], [p.captions for p in keep], [p.path for p in keep])
    return dataset, skipped


def load_dataset(source: Path, cfg: PreprocessConfig, workers: int = 1, progress=None) -> tuple[Dataset, list[Skipped]]:
    pairs, skipped = read_pairs(source)
    dataset, bad = decode_pairs(pairs, cfg, workers, progress)
    if len(dataset) == 0:
        raise TrainingError(f"{source} holds no usable (image, caption) pairs ({len(skipped) + len(bad)} skipped)")
    return dataset, skipped + bad
