"""Index-run locks: two runs never write the same files at once.

Locks belong to the catalog, not to the home: two homes sharing one DATABASE_URL share its lock.
SQLite catalogs take one exclusive file lock beside the database file (SQLite has a single
writer anyway).
PostgreSQL stores lock per folder with advisory locks, so runs on separate folders of one
shared catalog proceed together, while overlapping folders (/photos and /photos/2021)
exclude each other: a run holds its folder exclusively and each ancestor shared.
Both kinds of lock are released by the operating system or the server if the process dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from clipsearch.catalog.database import Database
from clipsearch.errors import StoreError, StoreLockedError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

_BUSY = "another `clipsearch index` ({who}) is writing to {what}; wait for it to finish, then run this command again"


@contextlib.contextmanager
def write_lock(path: Path, wait: bool = False) -> Iterator[None]:
    """Hold an exclusive advisory lock on the file at `path`."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StoreError(
            f"cannot write to {path.parent} ({exc.strerror}): indexing needs write access to the store "
            f"(queries work on a read-only one)"
        ) from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError as exc:
            holder = os.pread(fd, 32, 0).decode(errors="ignore").strip()
            who = f"pid {holder}" if holder else "another process"
            raise StoreLockedError(_BUSY.format(who=who, what="this store")) from exc
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)


def _key(path: str) -> int:
    return int.from_bytes(hashlib.blake2b(path.encode(), digest_size=8).digest(), "big", signed=True)


def _ancestors(path: str) -> list[str]:
    return [str(p) for p in Path(path).parents]


@contextlib.contextmanager
def folder_locks(engine: Engine, roots: list[str]) -> Iterator[None]:
    """PostgreSQL advisory locks: each root exclusive, its ancestors shared, on one session."""
    from sqlalchemy import text

    with engine.connect() as conn:
        try:
            for root in roots:
                for parent in _ancestors(root):
                    if not conn.execute(text("SELECT pg_try_advisory_lock_shared(:k)"), {"k": _key(parent)}).scalar():
                        raise StoreLockedError(
                            _BUSY.format(who="another process", what=f"{parent}, which holds {root}")
                        )
                if not conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _key(root)}).scalar():
                    raise StoreLockedError(_BUSY.format(who="another process", what=f"{root} or a folder inside it"))
            conn.commit()
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock_all()"))
            conn.commit()


def _kind_and_file(catalog_db: Database | Engine) -> tuple[str, str | None]:
    """The database kind (sqlite, postgresql...) and its file name, from the catalog's Database or an engine."""
    if isinstance(catalog_db, Database):
        path = catalog_db.sqlite_path
        return catalog_db.dialect_name, str(path) if path is not None else None
    return catalog_db.dialect.name, catalog_db.url.database


def catalog_lock_path(catalog_db: Database | Engine, fallback: Path) -> Path:
    """The lock file of a SQLite catalog: beside its database file, whichever home points at it.

    `fallback` (the home's lock file) serves catalogs without a file, such as an in-memory one.
    """
    kind, database = _kind_and_file(catalog_db)
    if kind != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        return fallback
    db = Path(database).resolve()
    return db.with_name(db.name + ".lock")


def index_lock(
    catalog_db: Database | Engine, lock_path: Path, roots: list[str]
) -> contextlib.AbstractContextManager[None]:
    """The lock an index run over `roots` needs, for this catalog's kind of database.

    `lock_path` is the home's lock file, used only when the catalog has no file of its own.
    """
    if _kind_and_file(catalog_db)[0] == "postgresql":
        engine = catalog_db.engine if isinstance(catalog_db, Database) else catalog_db
        return folder_locks(engine, roots)
    return write_lock(catalog_lock_path(catalog_db, lock_path))


_REEMBED_KEY = _key("clipsearch reembed")
_REEMBED_BUSY = (
    "another `clipsearch reembed` is running on this store; wait for it to finish, then run this command again"
)


@contextlib.contextmanager
def reembed_lock(engine: Engine, lock_path: Path) -> Iterator[None]:
    """One `clipsearch reembed` per catalog at a time (index runs go on beside it)."""
    if engine.dialect.name != "postgresql":
        path = catalog_lock_path(engine, lock_path)
        try:
            with write_lock(path.with_name(path.name.replace(".lock", "") + ".reembed.lock")):
                yield
        except StoreLockedError as exc:
            raise StoreLockedError(_REEMBED_BUSY) from exc
        return
    from sqlalchemy import text

    with engine.connect() as conn:
        if not conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _REEMBED_KEY}).scalar():
            raise StoreLockedError(_REEMBED_BUSY)
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _REEMBED_KEY})
            conn.commit()


@contextlib.contextmanager
def whole_store_lock(engine: Engine, lock_path: Path, poll_s: float = 0.5) -> Iterator[None]:
    """The index lock over the whole catalog, waited for: no index run writes while it is held."""
    if engine.dialect.name != "postgresql":
        with write_lock(catalog_lock_path(engine, lock_path), wait=True):
            yield
        return
    while True:
        # The root folder exclusive conflicts with every index run (each holds "/" shared).
        lock = folder_locks(engine, [os.sep])
        try:
            lock.__enter__()
        except StoreLockedError:
            time.sleep(poll_s)
            continue
        break
    try:
        yield
    finally:
        lock.__exit__(None, None, None)
