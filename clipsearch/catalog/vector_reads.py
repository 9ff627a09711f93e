"""Reading stored vectors: what changed since a watermark, by id, a sample, tombstones."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from clipsearch.catalog.codec import decode_vectors
from clipsearch.catalog.database import CatalogPart, Database
from clipsearch.catalog.driver import image_rows_by_id
from clipsearch.catalog.facts import StoreFacts

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

# SQLAlchemy is imported by the methods that build or catch up an index; a query's re-rank
# fetches vectors by id as plain SQL.


class VectorReads(CatalogPart):
    def __init__(self, db: Database, facts: StoreFacts):
        super().__init__(db)
        self._facts = facts  # the bound model's dimension

    def changed(
        self, after_seq: int = 0, up_to_seq: int | None = None, chunk: int = 20_000
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, float32 vectors) for rows whose vector changed in (after_seq, up_to_seq], in chunks by id."""
        from sqlalchemy import select

        from clipsearch.catalog.schema import ImageRow

        def page(last_id: int) -> Any:
            stmt = (
                select(ImageRow.id, ImageRow.embedding)
                .where(ImageRow.vec_seq > after_seq, ImageRow.embedding.is_not(None), ImageRow.id > last_id)
                .order_by(ImageRow.id)
                .limit(chunk)
            )
            return stmt if up_to_seq is None else stmt.where(ImageRow.vec_seq <= up_to_seq)

        return vector_pages(self.engine, page, self._facts.dim())

    def tombstones(self, after_seq: int, up_to_seq: int | None = None) -> np.ndarray:
        """Ids whose vector left the catalog in (after_seq, up_to_seq], in sequence order."""
        from sqlalchemy import select
        from sqlalchemy.orm import Session

        from clipsearch.catalog.schema import Tombstone

        stmt = select(Tombstone.image_id).where(Tombstone.seq > after_seq)
        if up_to_seq is not None:
            stmt = stmt.where(Tombstone.seq <= up_to_seq)
        with Session(self.engine) as s:
            return np.array(s.scalars(stmt.order_by(Tombstone.seq)).all(), dtype=np.int64)

    def fetch(self, ids: Iterable[int]) -> tuple[np.ndarray, np.ndarray]:
        """(ids found, float32 vectors) for the given ids, in no particular order."""
        got_ids: list[int] = []
        blobs: list[bytes] = []
        for row_id, blob in image_rows_by_id(self.db, "id, embedding", ids, " AND embedding IS NOT NULL"):
            got_ids.append(row_id)
            blobs.append(blob)
        return np.array(got_ids, dtype=np.int64), decode_vectors(blobs, self._facts.dim())

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        """Up to n vectors spread over the whole catalog (for training a quantiser)."""
        from sqlalchemy import select
        from sqlalchemy.orm import Session

        from clipsearch.catalog.schema import ImageRow

        with Session(self.engine) as s:
            stmt = select(ImageRow.id).where(ImageRow.embedding.is_not(None))
            all_ids = np.array(s.scalars(stmt).all(), dtype=np.int64)
        if len(all_ids) > n:
            all_ids = np.sort(np.random.default_rng(seed).choice(all_ids, size=n, replace=False))
        return self.fetch(all_ids.tolist())[1]


def vector_pages(engine: Engine, page: Callable[[int], Any], dim: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(ids, float32 vectors) chunk after chunk: `page(last_id)` selects (id, embedding) rows after
    last_id in id order, so each chunk is one short query however large the table (keyset paging)."""
    from sqlalchemy.orm import Session

    last_id = 0
    while True:
        with Session(engine) as s:
            rows = s.execute(page(last_id)).all()
        if not rows:
            return
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        yield ids, decode_vectors([r[1] for r in rows], dim)
        last_id = int(ids[-1])
