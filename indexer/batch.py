"""The embed and write stages: batches of decoded images become committed catalog rows."""

from __future__ import annotations

import numpy as np

from clipsearch.catalog import FileState, FileStatus, ImageRecord, Move
from clipsearch.catalog.writes import IndexWrites
from clipsearch.faults import point
from clipsearch.indexer.decode import Decoded
from clipsearch.indexer.summary import IndexSummary
from clipsearch.models import Encoder

# Rows that need no model work (failures, moves) are still committed in bounded batches.
MAX_PENDING_ROWS = 500
# Images per model call, whatever the batch size: a matrix product's rounding depends on its
# shape, so a vector computed in a batch of 32 and again in a batch of 3 (a resumed run's
# first batch, a copy found later) could differ. Every call gets exactly this many rows.
CALL_ROWS = {"cpu": 16, "cuda": 128}


def encode_fixed(encoder: Encoder, images: list[np.ndarray]) -> np.ndarray:
    """encoder.encode_images in calls of one fixed shape (the last one padded): same input, same vector."""
    rows = CALL_ROWS.get(encoder.device, 16)
    n = len(images)
    pixels = np.stack(images + [images[-1]] * (-n % rows))
    parts = [encoder.encode_images(pixels[i : i + rows]) for i in range(0, len(pixels), rows)]
    return np.concatenate(parts)[:n]


class BatchWriter:
    def __init__(self, writes: IndexWrites, encoder: Encoder, batch_size: int, summary: IndexSummary):
        self.writes = writes
        self.encoder = encoder
        self.batch_size = batch_size
        self.summary = summary
        self._decoded: list[tuple[Decoded, FileState | None]] = []
        self._records: list[ImageRecord] = []
        self._moves: list[Move] = []
        self._existing: dict[str, int] = {}

    def add_decoded(self, item: Decoded, state: FileState | None) -> None:
        self._decoded.append((item, state))
        if len(self._decoded) >= self.batch_size:
            self.flush()

    def add_record(self, record: ImageRecord, state: FileState | None) -> None:
        self._records.append(record)
        if state is not None:
            self._existing[record.path] = state.id
        self._maybe_flush()

    def add_move(self, move: Move) -> None:
        self._moves.append(move)
        self._maybe_flush()

    def _maybe_flush(self) -> None:
        if len(self._records) + len(self._moves) >= MAX_PENDING_ROWS:
            self.flush()

    def add_embedded(self, item: Decoded, state: FileState | None, vector: np.ndarray) -> None:
        """A decoded image and its vector (computed here, or by the Ray engine's model actors)."""
        f, info = item.file, item.info
        self._records.append(
            ImageRecord(
                f.path,
                f.root,
                f.size,
                f.mtime_ns,
                item.content_hash,
                status=FileStatus.OK,
                width=info.width,
                height=info.height,
                taken_at=info.taken_at,
                camera=info.camera,
                orientation=info.orientation,
                vector=vector,
                path_bytes=f.raw,
            )
        )
        if state is None:
            self.summary.new += 1
        else:
            self._existing[f.path] = state.id
            self.summary.updated += 1
        self.summary.embedded += 1

    def _embed(self) -> None:
        if not self._decoded:
            return
        vectors = encode_fixed(self.encoder, [d.pixels for d, _ in self._decoded])
        for (item, state), vector in zip(self._decoded, vectors, strict=True):
            self.add_embedded(item, state, vector)
        self._decoded.clear()

    def flush(self) -> None:
        self._embed()
        if self._records or self._moves:
            self.writes.write(self._records, self._existing, self._moves, model_id=self.encoder.model_id)
            point("batch-committed")
        self._records, self._moves, self._existing = [], [], {}
