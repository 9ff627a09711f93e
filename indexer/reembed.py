"""`clipsearch reembed`: a second generation of vectors for every image, then the switch to it.

Images are read again from disk through the index run's decode stage and embedded by the new
model in the same fixed-shape calls, in committed batches (a killed run resumes where it stopped,
and its vectors equal an uninterrupted run's). Queries keep using the active model meanwhile,
and index runs go on: before switching, the run takes the whole-store index lock and embeds what
they added or changed, so the switch (one transaction) finds the new generation complete.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from clipsearch.catalog import Catalog
from clipsearch.catalog.generations import GenerationInfo, GenerationResult, PendingImage
from clipsearch.faults import point
from clipsearch.indexer.batch import encode_fixed
from clipsearch.indexer.decode import Decoded, DecodeJob, Failed, decode
from clipsearch.indexer.runner import IndexOptions, resolve_batch_size
from clipsearch.indexer.scan import FoundFile
from clipsearch.models import Encoder
from clipsearch.settings import Settings

READ_CHUNK = 2000  # pending images read from the catalog at a time
CHANGED = "the file changed since it was indexed; run `clipsearch index` on its folder, then reembed again"


@dataclass
class ReembedSummary:
    embedded: int = 0
    failed: int = 0
    seconds: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)

    def line(self) -> str:
        rate = f", {self.embedded / self.seconds:.1f} images/s" if self.seconds > 0 and self.embedded else ""
        return f"{self.embedded} embedded, {self.failed} failed ({self.seconds:.1f} s{rate})"

    def to_dict(self) -> dict:
        return {
            "embedded": self.embedded,
            "failed": self.failed,
            "seconds": round(self.seconds, 3),
            "failures": [{"path": p, "reason": r} for p, r in self.failures],
        }


def embed_pending(
    catalog: Catalog,
    gen: GenerationInfo,
    encoder: Encoder,
    settings: Settings,
    options: IndexOptions,
    summary: ReembedSummary,
    on_total: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> None:
    """Embed every image `gen` lacks a current vector for; each batch is committed before the next."""
    started = time.perf_counter()
    if on_total:
        on_total(catalog.generations.count_pending(gen.id))
    batch_size = resolve_batch_size(options, encoder)
    workers = options.workers or max(2, os.cpu_count() or 2)
    writer = _GenerationWriter(catalog, gen.id, encoder, batch_size, summary)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool:
        for chunk in _pending_chunks(catalog, gen.id):
            _pump(pool, chunk, writer, encoder, settings, workers + 2 * batch_size, on_progress)
        writer.flush()
    summary.seconds += time.perf_counter() - started


def _pending_chunks(catalog: Catalog, gen_id: int) -> Iterator[list[PendingImage]]:
    after = 0
    while True:
        chunk = catalog.generations.pending(gen_id, after, READ_CHUNK)
        if not chunk:
            return
        yield chunk
        after = chunk[-1].id


def _job(p: PendingImage) -> DecodeJob:
    # No expected hash: the file is always decoded (a known hash would skip the decode).
    return DecodeJob(FoundFile(p.path, p.root, p.size, p.mtime_ns, None, p.path_bytes), None, allow_move=False)


def _pump(pool, chunk: list[PendingImage], writer, encoder: Encoder, settings: Settings, window: int, on_progress):
    """Keep up to `window` decodes in flight ahead of the model, consuming them in order."""
    cfg, limit = encoder.preprocess_cfg, settings.max_megapixels
    queue: deque[PendingImage] = deque(chunk)
    inflight: deque[tuple[PendingImage, Future]] = deque()
    try:
        while queue or inflight:
            while queue and len(inflight) < window:
                p = queue.popleft()
                inflight.append((p, pool.submit(decode, _job(p), cfg, limit, frozenset(), None)))
            p, fut = inflight.popleft()
            writer.add(p, fut.result())
            if on_progress:
                on_progress(1)
    finally:
        for _, fut in inflight:
            fut.cancel()


class _GenerationWriter:
    """Batches decoded images through the model and commits their vectors (and failures)."""

    def __init__(self, catalog: Catalog, gen_id: int, encoder: Encoder, batch_size: int, summary: ReembedSummary):
        self.catalog = catalog
        self.gen_id = gen_id
        self.encoder = encoder
        self.batch_size = batch_size
        self.summary = summary
        self._decoded: list[tuple[PendingImage, Decoded]] = []
        self._results: list[GenerationResult] = []

    def add(self, p: PendingImage, result) -> None:
        if isinstance(result, Failed) or (isinstance(result, Decoded) and result.content_hash != p.content_hash):
            reason = result.reason if isinstance(result, Failed) else CHANGED
            self._results.append(GenerationResult(p.id, p.vec_seq, None, reason))
            self.summary.failed += 1
            self.summary.failures.append((p.path, reason))
        else:
            self._decoded.append((p, result))
        if len(self._decoded) >= self.batch_size or len(self._results) >= 500:
            self.flush()

    def flush(self) -> None:
        if self._decoded:
            vectors = encode_fixed(self.encoder, [d.pixels for _, d in self._decoded])
            for (p, _), vector in zip(self._decoded, vectors, strict=True):
                self._results.append(GenerationResult(p.id, p.vec_seq, vector))
            self.summary.embedded += len(self._decoded)
            self._decoded.clear()
        if self._results:
            self.catalog.generations.write(self.gen_id, self._results)
            point("reembed-batch-committed")
            self._results = []
