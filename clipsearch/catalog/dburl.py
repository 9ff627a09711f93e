"""Checking a catalog URL before connecting: mistakes in DATABASE_URL become one clear message."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from clipsearch.errors import ConfigError

_EXAMPLE = "postgresql+psycopg://user:password@host:5432/dbname or sqlite:////path/to/catalog.db"
_SQLITE = "sqlite:///"


def _plain_sqlite_database(url: str) -> str | None:
    """The database of a plain `sqlite:///PATH` URL, read without SQLAlchemy (what make_url reads there).

    None for anything else (escapes, a query string, in-memory, other databases): SQLAlchemy parses
    those. The default catalog URL is plain, so opening a home store does not import SQLAlchemy.
    """
    if not url.startswith(_SQLITE):
        return None
    database = url[len(_SQLITE) :]
    if not database or "%" in database or "?" in database or database == ":memory:" or database.startswith("file:"):
        return None
    return database


def dialect_name(url: str) -> str:
    """`sqlite`, `postgresql`, ...: the URL's scheme without its driver."""
    return url.split(":", 1)[0].split("+", 1)[0]


def safe_url(url: str) -> str:
    """A database URL with any password hidden, for messages (a URL without one is shown as given)."""
    if _plain_sqlite_database(url) is not None:
        return url  # a file path: no password
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        return "(a database URL that cannot be parsed; check DATABASE_URL)"  # it may hold a password
    if parsed.password is None:
        return url  # re-rendering would percent-encode a SQLite path's '@' or ':'
    if parsed.host and "@" in parsed.host:
        # A raw '@' inside the password: the parser split at the first one, so the host
        # holds the password's tail. Everything up to the last '@' is credentials.
        parsed = parsed.set(host=parsed.host.rsplit("@", 1)[1])
    return parsed.render_as_string(hide_password=True)


def check_url(url: str) -> None:
    """Raise ConfigError, saying what to fix, when `url` cannot name a database clipsearch can open."""
    if _plain_sqlite_database(url) is not None:
        return  # sqlite3 comes with Python
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    shown = safe_url(url)
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:  # ValueError: a port that is not a number
        raise ConfigError(f"DATABASE_URL {shown} is not a valid database URL ({exc}); expected {_EXAMPLE}") from exc
    if "@" in (parsed.host or ""):
        raise ConfigError(
            f"DATABASE_URL {shown} has an '@' in its user name or password: write it as %40 "
            f"(URL-encode the password), e.g. postgresql+psycopg://user:p%40ss@host/dbname"
        )
    try:
        parsed.get_dialect().import_dbapi()
    except NoSuchModuleError as exc:
        raise ConfigError(
            f"DATABASE_URL {shown} names a database kind clipsearch cannot use ({parsed.drivername}); "
            f"expected {_EXAMPLE}"
        ) from exc
    except ImportError as exc:
        raise ConfigError(
            f"DATABASE_URL {shown} needs the Python driver {exc.name!r} ({parsed.drivername}), which is not installed; "
            f"use postgresql+psycopg:// with `pip install 'clipsearch[postgres]'`, or install that driver"
        ) from exc


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL (None for other databases and in-memory ones)."""
    if not url.startswith("sqlite"):
        return None
    plain = _plain_sqlite_database(url)
    if plain is not None:
        return Path(plain)
    from sqlalchemy.engine import make_url

    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def read_only_sqlite_url(db: Path) -> str:
    """A URL opening `db` read-only and immutable: no journal, no lock files, so a read-only folder serves queries."""
    return f"sqlite:///file:{quote(str(db.resolve()))}?mode=ro&immutable=1&uri=true"
