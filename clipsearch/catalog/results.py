"""What a query reads besides vectors: result metadata, and the ids its filters allow."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from clipsearch.catalog.driver import image_rows_by_id
from clipsearch.catalog.records import ImageMeta
from clipsearch.catalog.schema import ImageRow
from clipsearch.catalog.sql import path_under

_META_COLUMNS = "id, path, width, height, size, taken_at, camera, content_hash, path_bytes"


class ResultReads:
    def __init__(self, engine: Engine):
        self.engine = engine

    def meta(self, ids: Iterable[int]) -> dict[int, ImageMeta]:
        """Metadata of these images by id (ids no longer in the catalog are left out)."""
        rows = image_rows_by_id(self.engine, _META_COLUMNS, ids)
        return {
            r[0]: ImageMeta(r[0], r[1], r[2], r[3], r[4], _datetime(r[5]), r[6], r[7], path_bytes=_bytes(r[8]))
            for r in rows
        }

    def filtered_ids(
        self, folder: str | None, taken_after: datetime | None, taken_before: datetime | None, limit: int
    ) -> list[int] | None:
        """Ids matching the filters, or None when more than `limit` match (too many to rank exactly)."""
        stmt = select(ImageRow.id).where(ImageRow.embedding.is_not(None))
        if folder:
            stmt = stmt.where(path_under(self.engine, folder))
        if taken_after:
            stmt = stmt.where(ImageRow.taken_at >= taken_after)
        if taken_before:
            stmt = stmt.where(ImageRow.taken_at <= taken_before)
        with Session(self.engine) as s:
            ids = s.scalars(stmt.limit(limit + 1)).all()
        return None if len(ids) > limit else list(ids)


def _bytes(value: bytes | memoryview | None) -> bytes | None:
    return bytes(value) if value is not None else None  # PostgreSQL's driver returns bytea as a memoryview


def _datetime(value: datetime | str | None) -> datetime | None:
    # Plain SQL on SQLite returns the text SQLAlchemy stored; PostgreSQL returns a datetime.
    return datetime.fromisoformat(value) if isinstance(value, str) else value
