"""The one search service behind the CLI, the UI and any API.

Front ends build a SearchRequest and render the SearchResult; all ranking lives here.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
from PIL import Image

from clipsearch.catalog import ImageMeta
from clipsearch.errors import EmptyStoreError, ImageDecodeError, QueryError
from clipsearch.imaging import load_rgb
from clipsearch.models import Encoder
from clipsearch.store import Store
from clipsearch.vectors import VectorIndex
from clipsearch.vectors.sync import catch_up

# Filters matching up to this many images are ranked exactly over just those images.
EXACT_FILTER_MAX = 50_000
# Candidates fetched from an approximate index per result wanted, then re-ranked exactly.
RERANK_FACTOR = 8
RERANK_MIN = 384  # PQ128x4fs at 1M: recall@10 0.977 with 256, 0.996 with 384, 0.998 with 512 (docs/benchmarks.md)
MAX_K = 10_000


@dataclass(frozen=True)
class SearchRequest:
    text: str | None = None
    image: Image.Image | None = None
    image_id: int | None = None  # "more like this": an indexed image's own vector
    k: int = 20
    offset: int = 0
    folder: str | None = None
    min_score: float | None = None
    taken_after: datetime | None = None
    taken_before: datetime | None = None

    def validate(self) -> None:
        """Reject a request that cannot be answered, before any model is loaded."""
        if not ((self.text and self.text.strip()) or self.image is not None or self.image_id is not None):
            raise QueryError("empty query: give some text, an --image, or both")
        if self.k < 1 or self.k > MAX_K:
            raise QueryError(f"k must be between 1 and {MAX_K} (got {self.k})")
        if self.offset < 0:
            raise QueryError(f"offset must be 0 or more (got {self.offset})")

    @property
    def has_filters(self) -> bool:
        return bool(self.folder or self.taken_after or self.taken_before)


@dataclass(frozen=True)
class SearchHit(ImageMeta):
    """An image's catalog facts plus where it ranked and its cosine score."""

    rank: int
    score: float

    def to_dict(self) -> dict:
        return {
            "rank": self.rank,
            "id": self.id,
            "path": self.path,
            "score": round(self.score, 6),
            "width": self.width,
            "height": self.height,
            "size": self.size,
            "taken_at": self.taken_at.isoformat() if self.taken_at else None,
            "camera": self.camera,
        }


@dataclass
class SearchResult:
    hits: list[SearchHit]
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def load_query_image(path: Path, max_megapixels: float) -> Image.Image:
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise QueryError(f"--image {path}: no such file") from None
    except OSError as exc:
        raise QueryError(f"--image {path}: cannot read it ({exc.strerror})") from None
    try:
        return load_rgb(data, max_megapixels)[0]
    except ImageDecodeError as exc:
        raise QueryError(f"--image {path}: {exc}") from None


def _folder_prefix(folder: str) -> str:
    p = Path(folder).expanduser()
    if not (p.exists() or folder.startswith((".", "~", "/"))):
        return folder
    # abspath, not resolve(): the indexer records paths as given (symlinks kept), so must the filter.
    prefix = os.path.abspath(p)
    # A folder, not a name prefix: /photos/2021 must not also match /photos/2021-old.
    return prefix if p.is_file() else os.path.join(prefix, "")


class SearchService:
    def __init__(self, store: Store, encoder: Encoder, index: VectorIndex, notes: list[str] | None = None):
        self.store = store
        self.encoder = encoder
        self.index = index
        self.open_notes = notes or []

    @classmethod
    def open(cls, store: Store, model: str | None = None, device: str = "auto") -> SearchService:
        store.require_model()
        if store.catalog.facts.stats().images == 0:
            # Bound to a model but holding nothing (only empty or failed files were indexed).
            raise EmptyStoreError(
                f"the store in {store.settings.home} holds no indexed images yet; "
                f"run `clipsearch index PATH` on a folder with pictures first"
            )
        encoder = store.load_encoder(model, device)
        if store.settings.text_int8 and encoder.device == "cpu":  # a GPU encodes text fast enough in fp32
            encoder.quantize_text_tower()
        index, notes = store.vector_index()
        return cls(store, encoder, index, notes)

    def refresh(self) -> None:
        """Pick up what an index run committed since the last query (cheap when nothing did)."""
        catch_up(self.index, self.store.catalog)

    def query_vector(self, req: SearchRequest, notes: list[str]) -> np.ndarray:
        parts = []
        if req.text is not None and req.text.strip():
            text = " ".join(req.text.split())
            if self.encoder.count_tokens(text) > self.encoder.context_length:
                notes.append(
                    f"query is longer than the model's {self.encoder.context_length}-token context; its end was ignored"
                )
            parts.append(self.encoder.encode_text(text))
        if req.image is not None:
            parts.append(self.encoder.encode_image(req.image))
        if req.image_id is not None:
            ids, vectors = self.store.catalog.vectors.fetch([req.image_id])
            if not len(ids):
                raise QueryError(f"image {req.image_id} is not in the catalog (deleted or failed)")
            parts.append(vectors[0])
        q = np.sum(parts, axis=0)
        return (q / max(np.linalg.norm(q), 1e-12)).astype(np.float32)

    def search(self, req: SearchRequest) -> SearchResult:
        req.validate()
        timings: dict[str, float] = {}
        notes: list[str] = []
        t0 = time.perf_counter()
        self.refresh()
        q = self.query_vector(req, notes)
        t1 = time.perf_counter()
        timings["encode_ms"] = (t1 - t0) * 1000
        ids, scores = self._rank(q, req, timings)
        if req.min_score is not None:
            keep = scores >= req.min_score
            ids, scores = ids[keep], scores[keep]
        ids, scores = ids[req.offset : req.offset + req.k], scores[req.offset : req.offset + req.k]
        t2 = time.perf_counter()
        meta = self.store.catalog.results.meta(ids)
        hits = [
            _hit(req.offset + i + 1, meta[int(i_)], float(s))
            for i, (i_, s) in enumerate(zip(ids, scores, strict=False))
            if int(i_) in meta
        ]
        timings["metadata_ms"] = (time.perf_counter() - t2) * 1000
        timings["total_ms"] = (time.perf_counter() - t0) * 1000
        return SearchResult(hits, timings, notes)

    def _rank(self, q: np.ndarray, req: SearchRequest, timings: dict) -> tuple[np.ndarray, np.ndarray]:
        """Best-first (ids, exact cosine scores), at least offset+k long when that many exist."""
        want = req.offset + req.k
        t = time.perf_counter()
        if req.has_filters:
            folder = _folder_prefix(req.folder) if req.folder else None
            allowed = self.store.catalog.results.filtered_ids(
                folder, req.taken_after, req.taken_before, EXACT_FILTER_MAX
            )
            if allowed is not None:
                ids, vectors = self.store.catalog.vectors.fetch(allowed)
                timings["ann_ms"] = (time.perf_counter() - t) * 1000
                return _top(ids, vectors @ q, want)
        candidates = self._ann(q, want, req, timings)
        t = time.perf_counter()
        if self.index.kind == "flat" and not req.has_filters:
            ids, scores = candidates
        else:
            ids, vectors = self.store.catalog.vectors.fetch(candidates[0])
            ids, scores = _top(ids, vectors @ q, want)
        timings["rerank_ms"] = (time.perf_counter() - t) * 1000
        return ids, scores

    def _ann(self, q: np.ndarray, want: int, req: SearchRequest, timings: dict) -> tuple[np.ndarray, np.ndarray]:
        t = time.perf_counter()
        pool = want if self.index.kind == "flat" else max(RERANK_MIN, RERANK_FACTOR * want)
        while True:
            scores, ids = self.index.search(q[None, :], pool)
            ids, scores = ids[0], scores[0]
            valid = ids >= 0
            ids, scores = ids[valid], scores[valid]
            if req.has_filters:
                # Too many images match to rank them all: widen the pool until enough survive.
                keep = self._matching(ids, req)
                ids, scores = ids[keep], scores[keep]
            if len(ids) >= want or pool >= self.index.ntotal:
                break
            pool *= 4
        timings["ann_ms"] = (time.perf_counter() - t) * 1000
        return ids, scores

    def _matching(self, ids: np.ndarray, req: SearchRequest) -> np.ndarray:
        meta = self.store.catalog.results.meta(ids)
        folder = _folder_prefix(req.folder) if req.folder else None

        def ok(i: int) -> bool:
            m = meta.get(int(i))
            if m is None or (folder and not m.path.startswith(folder)):
                return False
            if req.taken_after and (m.taken_at is None or m.taken_at < req.taken_after):
                return False
            return not (req.taken_before and (m.taken_at is None or m.taken_at > req.taken_before))

        return np.array([ok(i) for i in ids], dtype=bool)


def _top(ids: np.ndarray, scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-scores, kind="stable")[:n]
    return ids[order], scores[order]


def _hit(rank: int, m: ImageMeta, score: float) -> SearchHit:
    return SearchHit(**vars(m), rank=rank, score=score)  # vars, not asdict: no deep copy per hit
