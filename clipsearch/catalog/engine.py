"""Opening the catalog's database: the engine factory, its SQLite settings, URLs fit to show."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from clipsearch.catalog import migrate
from clipsearch.errors import StoreError


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


def make_engine(url: str) -> Engine:
    """An engine for the catalog at `url` (a SQLite file's folder is created on the way)."""
    if url.startswith("sqlite"):
        db_path = url.split("///", 1)[-1]
        if db_path and db_path != ":memory:":
            Path(db_path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def open_engine(url: str) -> Engine:
    """The catalog's engine with its schema upgraded to the current revision.

    Raises StoreError with what went wrong (the URL shown with its password hidden).
    """
    where = safe_url(url)
    try:
        engine = make_engine(url)
        migrate.ensure_current(engine)
    except OperationalError as exc:
        raise StoreError(f"cannot open the catalog at {where}: {exc.orig}{_read_only_hint(url)}") from exc
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot open the catalog at {where}: {exc}") from exc
    except OSError as exc:  # e.g. its folder cannot be created
        raise StoreError(f"cannot open the catalog at {where}: {exc.strerror or exc}") from exc
    return engine


def _read_only_hint(url: str) -> str:
    if not url.startswith("sqlite:///"):
        return ""
    folder = Path(url.split("///", 1)[1]).parent
    if folder.is_dir() and (os.statvfs(folder).f_flag & os.ST_RDONLY or not os.access(folder, os.W_OK)):
        return f" ({folder} is read-only; a SQLite store needs write access to its folder for its journal)"
    return ""


def safe_url(url: str) -> str:
    """A database URL with any password hidden, for messages."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url
