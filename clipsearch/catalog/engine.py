"""Opening the catalog's database: the engine factory, its SQLite settings, URLs fit to show."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from clipsearch.catalog import migrate
from clipsearch.catalog.dburl import check_url, read_only_sqlite_url, safe_url, sqlite_file
from clipsearch.errors import StoreError

__all__ = ["make_engine", "open_engine", "safe_url"]


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets queries read while an index run writes; busy_timeout waits instead of failing.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    # Reads through a memory map instead of read() calls: re-ranking fetches hundreds of
    # random rows per query, and this halves that time (writes still go through the journal).
    cur.execute("PRAGMA mmap_size=2147483648")
    cur.close()


def _sqlite_read_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA mmap_size=2147483648")
    cur.close()


def make_engine(url: str, read_only: bool = False) -> Engine:
    """An engine for the catalog at `url` (a SQLite file's folder is created on the way).

    `read_only` opens a SQLite file immutable: no journal or lock files are written, so a
    read-only home still answers queries.
    """
    if url.startswith("sqlite"):
        db = sqlite_file(url)
        if read_only and db is not None:
            engine = create_engine(read_only_sqlite_url(db))
            event.listen(engine, "connect", _sqlite_read_pragmas)
            return engine
        if db is not None:
            db.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def open_engine(url: str) -> Engine:
    """The catalog's engine with its schema upgraded to the current revision.

    Raises ConfigError for a URL that cannot work and StoreError with what went wrong (the URL
    shown with its password hidden).
    """
    where = safe_url(url)
    check_url(url)
    try:
        db = sqlite_file(url)
        read_only = db is not None and db.exists() and _read_only(db.parent)
        if db is not None and not read_only:
            migrate.prepare_sqlite_file(db, make_engine)
        engine = make_engine(url, read_only)
        migrate.ensure_current(engine, read_only)
    except OperationalError as exc:
        raise StoreError(f"cannot open the catalog at {where}: {_one_line(exc.orig)}{_read_only_hint(url)}") from exc
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot open the catalog at {where}: {_one_line(exc)}") from exc
    except OSError as exc:  # e.g. its folder cannot be created
        raise StoreError(f"cannot open the catalog at {where}: {exc.strerror or exc}") from exc
    return engine


def _one_line(exc: BaseException | None) -> str:
    # Drivers add hint lines ("Is the server running on that host...?"); messages stay one line.
    return " ".join(str(exc).split())


def _read_only(folder: Path) -> bool:
    return bool(os.statvfs(folder).f_flag & os.ST_RDONLY) or not os.access(folder, os.W_OK)


def _read_only_hint(url: str) -> str:
    db = sqlite_file(url)
    if db is None:
        return ""
    folder = db.parent
    if folder.is_dir() and _read_only(folder):
        return f" ({folder} is read-only; a SQLite store needs write access to its folder for its journal)"
    return ""
