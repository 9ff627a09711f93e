"""Bringing a catalog database to the newest schema revision (run on every open).

Schema changes are atomic and serialised. Each upgrade runs in one transaction that first takes
a lock: SQLite's write lock (`BEGIN IMMEDIATE`; without it pysqlite runs DDL outside any
transaction, so a kill left tables without their Alembic version and the store refused to open
again), or on PostgreSQL a transaction-level advisory lock. Alembic then reads the revision
again under that lock: of several processes opening a new store at once, one creates the schema
and the others find it done.

A new SQLite catalog file is built beside its final name and linked into place, so the file at
that name is always a complete catalog: a 0-byte `catalog.db` can only be damage, and is refused.

Nearly every open finds the catalog current: that is checked with one plain SQL query against the
revision the files declare, so Alembic (a tenth of a second of CPU to import, on every command's
start-up) is loaded only to upgrade, or for `clipsearch db`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from clipsearch.errors import StoreError
from clipsearch.faults import point
from clipsearch.migrations import MIGRATIONS_DIR

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Connection, Engine

    from clipsearch.catalog.database import Database

# The advisory lock key that serialises schema changes of a PostgreSQL catalog.
SCHEMA_LOCK_KEY = int.from_bytes(hashlib.blake2b(b"clipsearch schema", digest_size=8).digest(), "big", signed=True)
_DRAFT = ".new-"  # catalog.db.new-PID: a new SQLite catalog being built
# `revision = "0002"` / `down_revision = "0001"` (or None), as every revision file states them.
_DECLARED = re.compile(r"""^(revision|down_revision)\s*=\s*(?:"([^"]+)"|'([^']+)'|(None))\s*$""", re.M)


def alembic_config(url: str | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError("the migrations folder has no head revision")  # a packaging fault, not user input
    return head


def declared_head() -> str | None:
    """The newest revision, read from the files; None unless they form one plain chain (Alembic decides then)."""
    revisions, parents = set(), set()
    for path in (MIGRATIONS_DIR / "versions").glob("[!_]*.py"):
        found = {m.group(1): m.group(2) or m.group(3) for m in _DECLARED.finditer(path.read_text(encoding="utf-8"))}
        if "revision" not in found or "down_revision" not in found:
            return None  # a merge revision (a tuple of parents) or an unusual file
        revisions.add(found["revision"])
        parents.add(found["down_revision"])
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def recorded_revision(database: Database) -> str | None:
    """The revision the database records, by plain SQL; None when it records none (or not plainly one)."""
    try:
        with database.cursor() as cur:
            cur.execute("SELECT version_num FROM alembic_version")
            rows = cur.fetchall()
    except Exception:  # any driver's error (no such table...): Alembic then reads and reports
        return None
    return rows[0][0] if len(rows) == 1 else None


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _lock_schema(conn: Connection) -> None:
    from sqlalchemy import text

    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    elif conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SCHEMA_LOCK_KEY})


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run the revisions up to `revision` in one locked transaction: all of them or none."""
    from alembic import command

    cfg = alembic_config()
    with engine.connect() as conn:
        _lock_schema(conn)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
        point("schema-migrated")  # the schema is written but not committed yet
        conn.commit()


def ensure_current(database: Database, read_only: bool = False) -> None:
    """Upgrade the catalog to the newest revision (checked first: most opens find it current)."""
    head = declared_head()
    if head is not None and recorded_revision(database) == head:
        return
    engine = database.engine
    current = current_revision(engine)
    if current == head_revision():
        return
    if read_only:
        raise StoreError(
            f"the catalog's schema is at revision {current}, older than this clipsearch's; it is read-only "
            f"here, so run `clipsearch db upgrade` once with write access"
        )
    upgrade(engine)


def prepare_sqlite_file(db: Path, make_engine: Callable[[str], Engine]) -> None:
    """Make sure `db` is a complete SQLite catalog: created in one step when missing, refused when 0 bytes."""
    try:
        size = db.stat().st_size
    except FileNotFoundError:
        _create_sqlite_file(db, make_engine)
        return
    if size == 0:
        raise StoreError(
            f"the catalog {db} is empty (0 bytes), so it is damaged or a failed copy, not a store: restore it "
            f"from a backup, or delete it to start a new, empty store"
        )


def _create_sqlite_file(db: Path, make_engine: Callable[[str], Engine]) -> None:
    db.parent.mkdir(parents=True, exist_ok=True)
    _remove_dead_drafts(db)
    draft = db.with_name(f"{db.name}{_DRAFT}{os.getpid()}")
    _remove_sqlite_files(draft)
    engine = make_engine(f"sqlite:///{draft}")
    try:
        upgrade(engine)
    finally:
        engine.dispose()  # the last connection checkpoints the WAL: the draft file holds everything
    try:
        os.link(draft, db)
    except FileExistsError:
        pass  # another process created the store first: everyone uses that one
    except OSError:
        # No hard links on this file system: a rename, guarded by the existence check.
        if not db.exists():
            os.replace(draft, db)
    finally:
        _remove_sqlite_files(draft)


def _remove_sqlite_files(db: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)


def _remove_dead_drafts(db: Path) -> None:
    """Drafts left by processes killed while creating the store."""
    for draft in db.parent.glob(f"{db.name}{_DRAFT}*"):
        pid = draft.name.rsplit(_DRAFT, 1)[-1].split("-", 1)[0]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        with contextlib.suppress(OSError):
            draft.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
