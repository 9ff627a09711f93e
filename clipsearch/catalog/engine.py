"""Opening the catalog's database: the engine factory and its SQLite settings (SQLAlchemy's side)."""

from __future__ import annotations

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine

from clipsearch.catalog.database import sqlite_pragmas, sqlite_read_pragmas
from clipsearch.catalog.dburl import read_only_sqlite_url, safe_url, sqlite_file

__all__ = ["make_engine", "safe_url"]


def make_engine(url: str, read_only: bool = False) -> Engine:
    """An engine for the catalog at `url` (a SQLite file's folder is created on the way).

    `read_only` opens a SQLite file immutable: no journal or lock files are written, so a
    read-only home still answers queries.
    """
    if url.startswith("sqlite"):
        db = sqlite_file(url)
        if read_only and db is not None:
            engine = create_engine(read_only_sqlite_url(db))
            event.listen(engine, "connect", sqlite_read_pragmas)
            return engine
        if db is not None:
            db.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)
