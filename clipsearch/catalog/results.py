"""What a query reads besides vectors: result metadata, and the ids its filters allow."""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from clipsearch.catalog.database import CatalogPart, Database
from clipsearch.catalog.driver import image_rows_by_id
from clipsearch.catalog.records import ImageMeta, RowFilter
from clipsearch.catalog.sql import chunks, path_under

if TYPE_CHECKING:
    from sqlalchemy.sql.elements import ColumnElement

# Filters are built with SQLAlchemy, imported when a query has one; result metadata is plain SQL.

_META_COLUMNS = "id, path, width, height, size, taken_at, camera, content_hash, path_bytes"


class ResultReads(CatalogPart):
    def __init__(self, db: Database):
        super().__init__(db)

    def meta(self, ids: Iterable[int]) -> dict[int, ImageMeta]:
        """Metadata of these images by id (ids no longer in the catalog are left out)."""
        rows = image_rows_by_id(self.db, _META_COLUMNS, ids)
        return {
            r[0]: ImageMeta(r[0], r[1], r[2], r[3], r[4], _datetime(r[5]), r[6], r[7], path_bytes=_bytes(r[8]))
            for r in rows
        }

    def filtered_ids(
        self, rows: RowFilter, limit: int | None = None, among: Iterable[int] | None = None
    ) -> list[int] | None:
        """Ids of the images matching `rows` (only those in `among`, when given).

        None when more than `limit` match: too many to rank exactly, the caller searches the index.
        """
        from sqlalchemy import select
        from sqlalchemy.orm import Session

        from clipsearch.catalog.schema import ImageRow

        where = self._where(rows)
        if among is not None:
            found: list[int] = []
            with Session(self.engine) as s:
                for chunk in chunks([int(i) for i in among]):
                    found += s.scalars(select(ImageRow.id).where(where, ImageRow.id.in_(chunk))).all()
            return found
        stmt = select(ImageRow.id).where(where)
        if limit is not None:
            stmt = stmt.limit(limit + 1)
        with Session(self.engine) as s:
            ids = list(s.scalars(stmt).all())
        return None if limit is not None and len(ids) > limit else ids

    def _where(self, rows: RowFilter) -> ColumnElement[bool]:
        from sqlalchemy import and_, func, or_, select

        from clipsearch.catalog.schema import ImageRow, ImageTag

        clauses: list[ColumnElement[bool]] = [ImageRow.embedding.is_not(None)]
        if rows.folder:
            under = rows.folder.endswith(os.sep)
            clauses.append(path_under(self.engine, rows.folder) if under else ImageRow.path == rows.folder)
        if rows.taken_after:
            clauses.append(ImageRow.taken_at >= rows.taken_after)
        if rows.taken_before:
            clauses.append(ImageRow.taken_at <= rows.taken_before)
        if rows.camera:
            clauses.append(func.lower(ImageRow.camera).contains(rows.camera.lower(), autoescape=True))
        if rows.extensions:
            path = func.lower(ImageRow.path)
            clauses.append(or_(*(path.endswith(ext, autoescape=True) for ext in rows.extensions)))
        if rows.min_width:
            clauses.append(ImageRow.width >= rows.min_width)
        if rows.min_height:
            clauses.append(ImageRow.height >= rows.min_height)
        if rows.tag:
            tagged = select(ImageTag.image_id).where(ImageTag.image_id == ImageRow.id, ImageTag.label == rows.tag)
            clauses.append(tagged.exists())
        return and_(*clauses)


def _bytes(value: bytes | memoryview | None) -> bytes | None:
    return bytes(value) if value is not None else None  # PostgreSQL's driver returns bytea as a memoryview


def _datetime(value: datetime | str | None) -> datetime | None:
    # Plain SQL on SQLite returns the text SQLAlchemy stored; PostgreSQL returns a datetime.
    return datetime.fromisoformat(value) if isinstance(value, str) else value
