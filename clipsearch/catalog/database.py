"""One catalog database: SQLAlchemy's engine, made on first use, and plain SQL on the driver's cursor.

A SQLite catalog answers plain SQL through Python's sqlite3 module directly, on connections set up
as the engine sets up its own (same pragmas, same read-only mode), so a command that only reads
the catalog's hot paths (a query, a re-index of an unchanged folder) never imports SQLAlchemy:
importing it cost a quarter of a CPU-second, more than the rest of such a run. Other databases run
plain SQL on a connection from the engine's pool. Everything that is not plain SQL (writes through
the ORM, filters built as Core expressions, migrations) uses `engine`, creating it when first asked.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from clipsearch.catalog.dburl import dialect_name, sqlite_file

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


class Database:
    """The catalog's database at `url`; `read_only` opens a SQLite file immutable (see make_engine)."""

    def __init__(self, url: str, read_only: bool = False):
        self.url = url
        self.read_only = read_only
        self.dialect_name = dialect_name(url)
        # The file of an on-disk SQLite catalog: the only kind served by sqlite3 directly.
        self.sqlite_path: Path | None = sqlite_file(url)
        self._engine: Engine | None = None
        self._local = threading.local()  # one sqlite3 connection per thread (a connection is not thread-safe)
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    @property
    def engine(self) -> Engine:
        """SQLAlchemy's engine for this database (created, and SQLAlchemy imported, on first use)."""
        if self._engine is None:
            from clipsearch.catalog.engine import make_engine

            with self._lock:
                if self._engine is None:
                    self._engine = make_engine(self.url, self.read_only)
        return self._engine

    @contextlib.contextmanager
    def cursor(self) -> Iterator[Any]:
        """A DB-API cursor for plain SQL (parameters in the driver's style: `?` on SQLite, `%s` otherwise)."""
        if self.sqlite_path is None:
            with self.engine.connect() as conn:
                pooled: Any = conn.connection.cursor()
                try:
                    yield pooled
                finally:
                    pooled.close()
            return
        cur = self._sqlite().cursor()
        try:
            yield cur
        finally:
            cur.close()

    def rows(self, statements: Iterable[tuple[str, Sequence[Any]]]) -> list[tuple[Any, ...]]:
        """The rows of plain SQL statements written with `?` placeholders, run on one cursor.

        Drivers that take `%s` (psycopg) get the statement with `?` rewritten; the statements are
        the catalog's own, so a `?` or `%` only ever stands for a placeholder or a literal percent.
        """
        found: list[tuple[Any, ...]] = []
        with self.cursor() as cur:
            qmark = self.sqlite_path is not None or getattr(self.engine.dialect.dbapi, "paramstyle", "") == "qmark"
            for sql, params in statements:
                cur.execute(sql if qmark else sql.replace("%", "%%").replace("?", "%s"), tuple(params))
                found.extend(cur.fetchall())
        return found

    def _sqlite(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            assert self.sqlite_path is not None
            conn = sqlite_connection(self.sqlite_path, self.read_only)
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def dispose(self) -> None:
        """Close every connection (the engine's pool and the plain SQLite ones)."""
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()
        self._local = threading.local()
        if self._engine is not None:
            self._engine.dispose()


def sqlite_connection(db: Path, read_only: bool = False) -> sqlite3.Connection:
    """A sqlite3 connection to `db` set up as the engine sets up its own."""
    if read_only:
        uri = f"file:{quote(str(db.resolve()))}?mode=ro&immutable=1"  # as read_only_sqlite_url opens it
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
        sqlite_read_pragmas(conn)
    else:
        # check_same_thread off: dispose() may close it from another thread (each thread uses its own).
        conn = sqlite3.connect(str(db), timeout=30, check_same_thread=False)
        sqlite_pragmas(conn)
    return conn


def sqlite_pragmas(dbapi_conn: Any, _record: Any = None) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets queries read while an index run writes; busy_timeout waits instead of failing.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    # Reads through a memory map instead of read() calls: re-ranking fetches hundreds of
    # random rows per query, and this halves that time (writes still go through the journal).
    cur.execute("PRAGMA mmap_size=2147483648")
    cur.close()


def sqlite_read_pragmas(dbapi_conn: Any, _record: Any = None) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA mmap_size=2147483648")
    cur.close()


class CatalogPart:
    """A part of the catalog (facts, writes, ...): plain SQL through `db`, SQLAlchemy through `engine`."""

    def __init__(self, db: Database):
        self.db = db

    @property
    def engine(self) -> Engine:
        return self.db.engine
