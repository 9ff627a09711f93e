"""What an index run writes: file states to plan from, and batches of rows with their vectors.

Every vector change (new, re-embedded, dropped, deleted) takes the next number of the store's
sequence counter; dropped and deleted vectors leave a tombstone (see batch_writes.py, SQLAlchemy's
side, imported by the first write: a re-index of an unchanged folder only reads file states, as
plain SQL).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from clipsearch.catalog.database import CatalogPart, Database
from clipsearch.catalog.driver import path_under_sql
from clipsearch.catalog.records import FileState, ImageRecord, Move
from clipsearch.catalog.sql import IMAGES, chunks


class IndexWrites(CatalogPart):
    def __init__(self, db: Database):
        super().__init__(db)

    def file_states(self, root: str, is_dir: bool) -> dict[str, FileState]:
        """Every row at or under `root` (by path, whichever root it was first indexed under)."""
        where, params = path_under_sql(self.db, root.rstrip(os.sep) + os.sep) if is_dir else ("path = ?", (root,))
        sql = f"SELECT id, path, size, mtime_ns, content_hash, status FROM {IMAGES} WHERE {where}"
        return {r[1]: FileState(*r) for r in self.db.rows([(sql, params)])}

    def vectors_by_hash(self, hashes: Sequence[str]) -> dict[str, bytes]:
        """Embeddings already computed for these contents (copies and moves reuse them)."""
        from sqlalchemy import select
        from sqlalchemy.orm import Session

        from clipsearch.catalog.schema import ImageRow

        found: dict[str, bytes] = {}
        with Session(self.engine) as s:
            for chunk in chunks(hashes):
                stmt = select(ImageRow.content_hash, ImageRow.embedding).where(
                    ImageRow.content_hash.in_(chunk), ImageRow.embedding.is_not(None)
                )
                for content_hash, blob in s.execute(stmt):
                    if content_hash is not None and blob is not None:
                        found.setdefault(content_hash, blob)
        return found

    def write(
        self,
        records: Sequence[ImageRecord],
        existing: dict[str, int],
        moves: Sequence[Move] = (),
        deleted: Sequence[int] = (),
        model_id: str | None = None,
    ) -> None:
        """Apply one batch of an index run atomically; `existing` maps path -> id for rows to update."""
        from clipsearch.catalog.batch_writes import write_batch

        write_batch(self.engine, records, existing, moves, deleted, model_id)
