"""Opening a store's catalog: URL checks, a new SQLite file created whole, the schema brought current."""

from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from clipsearch.catalog import migrate
from clipsearch.catalog.database import Database
from clipsearch.catalog.dburl import check_url, safe_url, sqlite_file
from clipsearch.errors import StoreError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


def open_database(url: str) -> Database:
    """The catalog's database with its schema upgraded to the current revision.

    Raises ConfigError for a URL that cannot work and StoreError with what went wrong (the URL
    shown with its password hidden).
    """
    where = safe_url(url)
    check_url(url)
    db = sqlite_file(url)
    database: Database | None = None
    try:
        read_only = db is not None and db.exists() and _read_only(db.parent)
        if db is not None and not read_only:
            migrate.prepare_sqlite_file(db, _make_engine)
        database = Database(url, read_only)
        migrate.ensure_current(database, read_only)
    except OSError as exc:  # e.g. its folder cannot be created
        _dispose(database)
        raise StoreError(f"cannot open the catalog at {where}: {exc.strerror or exc}") from exc
    except Exception as exc:
        _dispose(database)
        message = _database_error(exc)
        if message is None:
            raise
        raise StoreError(f"cannot open the catalog at {where}: {message}{_read_only_hint(url)}") from exc
    return database


def _make_engine(url: str) -> Engine:
    # Imported only to create a new catalog file: an existing one opens without SQLAlchemy.
    from clipsearch.catalog.engine import make_engine

    return make_engine(url)


def _database_error(exc: Exception) -> str | None:
    """The one-line message of a database error (sqlite3's own, or SQLAlchemy's); None for other errors."""
    if isinstance(exc, sqlite3.Error):
        return _one_line(exc)
    # Looked up, not imported: a SQLite store is opened without SQLAlchemy.
    sa_errors = sys.modules.get("sqlalchemy.exc")
    if sa_errors is None or not isinstance(exc, sa_errors.SQLAlchemyError):
        return None
    if isinstance(exc, sa_errors.OperationalError):
        return _one_line(exc.orig)
    return _one_line(exc)


def _dispose(database: Database | None) -> None:
    if database is not None:
        database.dispose()


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
