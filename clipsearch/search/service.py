"""The one search service behind the CLI, the UI and the HTTP API: all ranking lives here."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime
from typing import cast

import numpy as np

from clipsearch.catalog import ImageMeta, RowFilter
from clipsearch.errors import EmptyStoreError, QueryError
from clipsearch.models import Encoder
from clipsearch.models.prompts import QueryPrompts, query_prompts
from clipsearch.search.collapse import POOL_FACTOR, group_ranked
from clipsearch.search.filters import row_filter
from clipsearch.search.request import SearchHit, SearchRequest, SearchResult
from clipsearch.search.tagging import label_embeddings
from clipsearch.search.terms import QueryTerm
from clipsearch.store import Store
from clipsearch.vectors import VectorIndex
from clipsearch.vectors.sync import catch_up

# Filters matching up to this many images are ranked exactly over just those images.
EXACT_FILTER_MAX = 50_000
# Candidates fetched from an approximate index per result wanted, then re-ranked exactly.
RERANK_FACTOR = 8
RERANK_MIN = 384  # PQ128x4fs at 1M: recall@10 0.977 with 256, 0.996 with 384, 0.998 with 512 (docs/benchmarks.md)
# Rows scored per step when a broad filter falls back to exact ranking (bounds memory).
_EXACT_CHUNK = 20_000
# Below this norm the weighted terms cancel out and the query points nowhere.
_MIN_QUERY_NORM = 1e-3


class SearchService:
    def __init__(
        self, store: Store, encoder: Encoder, index: VectorIndex, notes: list[str] | None = None, mapped: bool = False
    ):
        self.store = store
        self.encoder = encoder
        self.index = index
        self.open_notes = notes or []
        self._prompts: QueryPrompts | None = None
        self._mapped = mapped  # indexes are loaded by mapping their file (see open)

    @property
    def prompts(self) -> QueryPrompts:
        """The encoder's model's query prompt templates and their default (read once, no weights loaded)."""
        if self._prompts is None:
            self._prompts = query_prompts(getattr(self.encoder, "spec", None))
        return self._prompts

    def uses_prompts(self, req: SearchRequest) -> bool:
        """Whether the request's text terms are averaged with the model's prompt templates."""
        has_text = any(term.text is not None for _, term in req.terms())
        return has_text and (self.prompts.default if req.raw is None else not req.raw)

    @classmethod
    def open(cls, store: Store, model: str | None = None, device: str = "auto", mapped: bool = False) -> SearchService:
        """The service on the store's model and index.

        mapped: for a process that answers one query and exits (`clipsearch query`): the index file
        is mapped rather than read (VectorIndex.load); long-running front ends keep the default.
        """
        store.require_model()
        if not store.catalog.facts.has_images():
            # Bound to a model but holding nothing (only empty or failed files were indexed).
            raise EmptyStoreError(
                f"the store in {store.settings.home} holds no indexed images yet; "
                f"run `clipsearch index PATH` on a folder with pictures first"
            )
        encoder = store.load_encoder(model, device)
        if store.settings.text_int8 and encoder.device == "cpu":  # a GPU encodes text fast enough in fp32
            encoder.quantize_text_tower()
        index, notes = store.vector_index(mapped=mapped)
        return cls(store, encoder, index, notes, mapped)

    def refresh(self) -> None:
        """Pick up what an index run committed since the last query (cheap when nothing did).

        When `clipsearch reembed` switched the store to another model meanwhile, the new model
        and its index are loaded instead.
        """
        if self.store.catalog.facts.current_seq() != self.index.header.watermark:
            self.apply_changes()

    def apply_changes(self) -> bool:
        """Catch the index up with the catalog, or, after a reembed's switch, load the new model and
        its index; True when the model changed (the caller holds whatever guards the index)."""
        facts = self.store.catalog.facts
        facts.forget_model()
        if self.store.require_model().model_id == self.encoder.model_id:
            catch_up(self.index, self.store.catalog)
            return False
        encoder = self.store.load_encoder(None, self.encoder.device)
        if self.store.settings.text_int8 and encoder.device == "cpu":
            encoder.quantize_text_tower()
        self.index, self.open_notes = self.store.vector_index(mapped=self._mapped)
        self.encoder = encoder
        self._prompts = None  # the new model's prompt templates
        return True

    def query_vector(self, req: SearchRequest, notes: list[str]) -> np.ndarray:
        """The weighted sum of the request's normalised term vectors, renormalised."""
        signed = req.terms()
        vectors = self._term_vectors([term for _, term in signed], notes, self.uses_prompts(req))
        weights = np.array([sign * term.weight for sign, term in signed], dtype=np.float32)
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        q: np.ndarray = weights @ vectors
        norm = float(np.linalg.norm(q))
        if norm < _MIN_QUERY_NORM:
            raise QueryError("the query's terms cancel each other out: change a weight or drop a term")
        return (q / norm).astype(np.float32)

    def _term_vectors(self, terms: list[QueryTerm], notes: list[str], prompted: bool = False) -> np.ndarray:
        """One row per term; texts are encoded in one batch (with their prompt templates when `prompted`)."""
        rows: list[np.ndarray | None] = [None] * len(terms)
        texts = [(i, " ".join(t.text.split())) for i, t in enumerate(terms) if t.text is not None]
        ensemble = self.prompts.ensemble if prompted else ["{}"]
        for _, text in texts:
            limit = self.encoder.context_length
            if max(self.encoder.count_tokens(p.replace("{}", text)) for p in ensemble) > limit:
                shown = repr(text if len(text) <= 40 else text[:40] + "...")
                notes.append(f"the term {shown} is longer than the model's {limit}-token context; its end was ignored")
        if texts:
            plain = [text for _, text in texts]
            if prompted:  # the mean of the normalised raw and templated embeddings, as `clipsearch tag` does
                encoded = label_embeddings(self.encoder, plain, ensemble)
            else:
                encoded = np.asarray(self.encoder.encode_texts(plain), dtype=np.float32)
            for (i, _), vector in zip(texts, encoded, strict=True):
                rows[i] = vector
        for i, term in enumerate(terms):
            if term.image is not None:
                rows[i] = np.asarray(self.encoder.encode_image(term.image), dtype=np.float32)
            elif term.image_id is not None:
                ids, vectors = self.store.catalog.vectors.fetch([term.image_id])
                if not len(ids):
                    raise QueryError(f"image {term.image_id} is not in the catalog (deleted or failed)")
                rows[i] = vectors[0]
        return np.stack(cast("list[np.ndarray]", rows)).astype(np.float32)  # every term filled its row

    def search(self, req: SearchRequest) -> SearchResult:
        req.validate()
        timings: dict[str, float] = {}
        notes: list[str] = []
        t0 = time.perf_counter()
        self.refresh()
        q = self.query_vector(req, notes)
        t1 = time.perf_counter()
        timings["encode_ms"] = (t1 - t0) * 1000
        rows = row_filter(req) if req.has_filters else None
        hits = self._collapsed(q, req, rows, timings) if req.collapse else self._hits(q, req, rows, timings)
        if req.sort != "score":
            hits = _by_date(hits, newest_first=req.sort == "date-desc")
        if not hits and rows is not None and rows.folder:
            notes += self._empty_folder_note(rows.folder)
        timings["total_ms"] = (time.perf_counter() - t0) * 1000
        terms = [term.describe(sign) for sign, term in req.terms()]
        return SearchResult(hits, timings, notes, terms, self._prompts_used(req))

    def _ranked(
        self, q: np.ndarray, req: SearchRequest, rows: RowFilter | None, timings: dict[str, float]
    ) -> tuple[np.ndarray, np.ndarray]:
        ids, scores = self._rank(q, req, rows, timings)
        if req.min_score is not None:
            keep = scores >= req.min_score
            ids, scores = ids[keep], scores[keep]
        return ids, scores

    def _hits(
        self, q: np.ndarray, req: SearchRequest, rows: RowFilter | None, timings: dict[str, float]
    ) -> list[SearchHit]:
        ids, scores = self._ranked(q, req, rows, timings)
        ids, scores = ids[req.offset : req.offset + req.k], scores[req.offset : req.offset + req.k]
        t = time.perf_counter()
        meta = self.store.catalog.results.meta(ids)
        hits = [
            _hit(req.offset + i + 1, meta[int(i_)], float(s))
            for i, (i_, s) in enumerate(zip(ids, scores, strict=True))
            if int(i_) in meta
        ]
        timings["metadata_ms"] = (time.perf_counter() - t) * 1000
        return hits

    def _collapsed(
        self, q: np.ndarray, req: SearchRequest, rows: RowFilter | None, timings: dict[str, float]
    ) -> list[SearchHit]:
        """Results with each group of near-duplicates shown once, as its best member (req.collapse).

        Paging counts groups; candidates are ranked in a pool that grows until it holds enough groups.
        """
        want = req.offset + req.k
        pool = want * POOL_FACTOR
        while True:
            ids, _scores = self._ranked(q, replace(req, offset=0, k=pool), rows, timings)
            t = time.perf_counter()
            groups = group_ranked(self.store.catalog, self.index, q, ids, rows)
            timings["collapse_ms"] = (time.perf_counter() - t) * 1000
            if len(groups) >= want or len(ids) < pool or pool >= self.index.ntotal:
                break
            pool *= POOL_FACTOR
        page = groups[req.offset : want]
        return [
            replace(
                _hit(req.offset + n + 1, g.best, g.score),
                duplicates=tuple(_hit(req.offset + n + 1, m, s) for m, s in g.others),
            )
            for n, g in enumerate(page)
        ]

    def _prompts_used(self, req: SearchRequest) -> dict[str, object]:
        used = self.uses_prompts(req)
        return {
            "used": used,
            "templates": list(self.prompts.templates) if used else [],
            "model_default": self.prompts.default,
        }

    def _empty_folder_note(self, folder: str) -> list[str]:
        if self.store.catalog.results.filtered_ids(RowFilter(folder=folder), limit=0) is None:
            return []  # the folder has images; the other filters left none of them
        return [f"no indexed images under {folder}; index that folder with `clipsearch index {folder}` first"]

    def _rank(
        self, q: np.ndarray, req: SearchRequest, rows: RowFilter | None, timings: dict[str, float]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Best-first (ids, exact cosine scores), at least offset+k long when that many exist."""
        want = req.offset + req.k
        t = time.perf_counter()
        if rows is not None:
            allowed = self.store.catalog.results.filtered_ids(rows, EXACT_FILTER_MAX)
            if allowed is not None:  # few enough to rank them all exactly
                ids, vectors = self.store.catalog.vectors.fetch(allowed)
                timings["ann_ms"] = (time.perf_counter() - t) * 1000
                return _top(ids, vectors @ q, want)
        ids, scores = self._ann(q, want, rows, timings)
        t = time.perf_counter()
        if rows is not None and len(ids) < want:
            # The index ran out of candidates (an IVF index returns only what its probed lists
            # hold) before k matches turned up: rank every matching image exactly, in chunks.
            ids, scores = self._exact_over(q, rows, want)
            timings["exact_fallback_ms"] = (time.perf_counter() - t) * 1000
        elif self.index.kind != "flat" or rows is not None:
            ids, vectors = self.store.catalog.vectors.fetch(ids)
            ids, scores = _top(ids, vectors @ q, want)
        timings["rerank_ms"] = (time.perf_counter() - t) * 1000
        return ids, scores

    def _ann(
        self, q: np.ndarray, want: int, rows: RowFilter | None, timings: dict[str, float]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Candidates from the index; with a broad filter the pool widens until enough of them match."""
        t = time.perf_counter()
        pool = want if self.index.kind == "flat" else max(RERANK_MIN, RERANK_FACTOR * want)
        while True:
            scores, ids = self.index.search(q[None, :], pool)
            ids, scores = ids[0], scores[0]
            valid = ids >= 0
            exhausted = int(valid.sum()) < min(pool, self.index.ntotal)
            ids, scores = ids[valid], scores[valid]
            if rows is not None:
                allowed = self.store.catalog.results.filtered_ids(rows, among=ids.tolist()) or []
                keep = np.isin(ids, np.asarray(allowed, dtype=np.int64))
                ids, scores = ids[keep], scores[keep]
            if len(ids) >= want or exhausted or pool >= self.index.ntotal:
                break
            pool *= 4
        timings["ann_ms"] = (time.perf_counter() - t) * 1000
        return ids, scores

    def _exact_over(self, q: np.ndarray, rows: RowFilter, want: int) -> tuple[np.ndarray, np.ndarray]:
        allowed = self.store.catalog.results.filtered_ids(rows) or []
        best_ids, best_scores = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        for start in range(0, len(allowed), _EXACT_CHUNK):
            ids, vectors = self.store.catalog.vectors.fetch(allowed[start : start + _EXACT_CHUNK])
            best_ids, best_scores = _top(
                np.concatenate([best_ids, ids]), np.concatenate([best_scores, vectors @ q]), want
            )
        return best_ids, best_scores


def _top(ids: np.ndarray, scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-scores, kind="stable")[:n]
    return ids[order], scores[order]


def _hit(rank: int, m: ImageMeta, score: float) -> SearchHit:
    return SearchHit(**vars(m), rank=rank, score=score)  # vars, not asdict: no deep copy per hit


def _by_date(hits: list[SearchHit], newest_first: bool) -> list[SearchHit]:
    """The page's hits by capture time; undated ones last, in score order."""
    dated = sorted((h for h in hits if h.taken_at), key=lambda h: h.taken_at or datetime.min, reverse=newest_first)
    return dated + [h for h in hits if not h.taken_at]
