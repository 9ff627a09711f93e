"""SQL building blocks the catalog's parts share."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.sql.elements import ColumnElement

T = TypeVar("T")

IMAGES = "images"  # schema.ImageRow's table, named here for plain SQL (importing the schema imports SQLAlchemy)

IN_CHUNK = 900  # bound parameters per statement: stays under SQLite's limit


def chunks(items: Sequence[T], size: int = IN_CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def path_under(engine: Engine, prefix: str) -> ColumnElement[bool]:
    """Rows whose path starts with `prefix`, matched case-sensitively."""
    from clipsearch.catalog.schema import ImageRow

    if engine.dialect.name == "sqlite":
        # SQLite's LIKE ignores ASCII case, so /photos/ would also claim /Photos/ (and a
        # re-index of one would sweep the other as deleted). A range on the path index is
        # exact and fast: UTF-8 byte order is code point order.
        return (ImageRow.path >= prefix) & (ImageRow.path < prefix[:-1] + chr(ord(prefix[-1]) + 1))
    return ImageRow.path.startswith(prefix, autoescape=True)
