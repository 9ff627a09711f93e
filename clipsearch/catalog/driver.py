"""The raw-driver fast path: hot reads run as plain SQL on the driver's own cursor.

A re-index's known files, every query's re-rank vectors and its result metadata skip
SQLAlchemy's per-statement and per-row work, which was most of their time (result metadata
took 0.9 ms per query at 1M images through the ORM, 0.3 ms here). Everything else goes
through SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Engine
from sqlalchemy.sql import Select

from clipsearch.catalog.schema import ImageRow
from clipsearch.catalog.sql import chunks

if TYPE_CHECKING:
    from typing_extensions import Unpack

Params = Sequence[Any] | dict[str, Any] | None

_ID_CHUNK = 10_000  # ids inlined per statement when fetching rows by id
_IMAGES = ImageRow.__tablename__


def driver_rows(engine: Engine, statements: Iterable[tuple[str, Params]]) -> list[tuple[Any, ...]]:
    """The rows of plain SQL statements, run on one connection's own cursor."""
    rows: list[tuple[Any, ...]] = []
    with engine.connect() as conn:
        cursor = conn.connection.cursor()
        try:
            for sql, params in statements:
                if params is None:
                    cursor.execute(sql)
                else:
                    cursor.execute(sql, params)
                rows.extend(cursor.fetchall())
        finally:
            cursor.close()
    return rows


def plain_rows(engine: Engine, stmt: Select[Unpack[tuple[Any, ...]]]) -> list[tuple[Any, ...]]:
    """A Core statement's rows as the driver's own tuples (text, int and NULL parameters only)."""
    compiled = stmt.compile(dialect=engine.dialect)
    params: Params = compiled.params
    if compiled.positiontup is not None:  # qmark drivers (SQLite) take a sequence
        params = [compiled.params[name] for name in compiled.positiontup]
    return driver_rows(engine, [(str(compiled), params)])


def image_rows_by_id(engine: Engine, columns: str, ids: Iterable[int], where: str = "") -> list[tuple[Any, ...]]:
    """Rows of the images table for these ids (inlined: they are ints, so that is safe)."""
    id_chunks = chunks([int(i) for i in ids], _ID_CHUNK)
    return driver_rows(
        engine,
        ((f"SELECT {columns} FROM {_IMAGES} WHERE id IN ({','.join(map(str, c))}){where}", None) for c in id_chunks),
    )
