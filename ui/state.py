"""What the page shares across sessions (loaded once per server process) and keeps per session."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import streamlit as st
from sqlalchemy import text

from clipsearch.imaging import load_rgb
from clipsearch.lock import catalog_lock_path
from clipsearch.search import SearchHit, SearchRequest, SearchResult, SearchService
from clipsearch.settings import Settings
from clipsearch.store import Store
from clipsearch.thumbnails import Thumbnails, encode_thumbnail
from clipsearch.ui.inputs import DEFAULT_PAGE_SIZE


@dataclass
class Engine:
    """The search service of one store plus what the page needs beside it."""

    service: SearchService
    thumbs: Thumbnails
    # Sessions run in threads; a search may catch the shared FAISS index up to new commits.
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def store(self) -> Store:
        return self.service.store

    def search(self, request: SearchRequest) -> SearchResult:
        with self.lock:
            return self.service.search(request)

    def index_size(self) -> tuple[str, int]:
        """The index kind and its vector count, caught up with the catalog first."""
        with self.lock:
            self.service.refresh()
            return self.service.index.kind, self.service.index.ntotal


def store_exists(settings: Settings) -> bool:
    """False for a SQLite store that was never created (opening it would create it)."""
    if settings.database_url:
        return True
    return (settings.home / "catalog.db").is_file()


def _settings(home: str, database_url: str | None) -> Settings:
    return Settings.from_env(home).with_(database_url=database_url)


@st.cache_resource(show_spinner=False)
def open_store(home: str, database_url: str | None) -> Store:
    return Store.open(_settings(home, database_url))


@st.cache_resource(show_spinner="Loading the model and the vector index…")
def open_engine(home: str, database_url: str | None) -> Engine:
    """Model, catalog and index, once per server process; errors are not cached, so a fix is seen on reload."""
    store = open_store(home, database_url)
    service = SearchService.open(store)
    return Engine(service, Thumbnails.for_settings(store.settings))


@st.cache_data(max_entries=32, show_spinner=False)
def screen_image(
    path: str, size: int, mtime_ns: int, side: int, max_megapixels: float, _load: Callable[[], bytes]
) -> bytes:
    """A screen-sized JPEG of an original, cached by the file's identity (path, size, mtime).

    `_load` (not part of the cache key) reads the original, checked against the catalog.
    """
    rgb, _info = load_rgb(_load(), max_megapixels, min_side=side)
    return encode_thumbnail(rgb, side)


def index_running(store: Store) -> bool | None:
    """Whether an index run holds the store's lock now (None: cannot tell on this system).

    Looks without taking the lock: even a moment's try could make a starting run fail as "busy".
    """
    engine = store.catalog.engine
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:  # index runs hold advisory locks (clipsearch.lock)
            sql = (
                "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) LIMIT 1"
            )
            return conn.execute(text(sql)).first() is not None
    lock_path = catalog_lock_path(engine, store.settings.lock_path)  # the file `clipsearch index` locks
    try:
        info = os.stat(lock_path)
        table = Path("/proc/locks").read_text()
    except FileNotFoundError:
        return False if not lock_path.exists() else None
    except OSError:
        return None
    ident = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    return any("FLOCK" in line and ident in line.split() for line in table.splitlines())


# -- per-session state ------------------------------------------------------------------------


@dataclass
class Results:
    """The hits fetched so far for one search (more are fetched as more pages are shown)."""

    signature: tuple
    hits: list[SearchHit] = field(default_factory=list)
    exhausted: bool = False
    total_ms: float = 0.0
    notes: list[str] = field(default_factory=list)
    terms: list[dict] = field(default_factory=list)  # how the service combined the query
    prompts: dict = field(default_factory=dict)  # whether words were averaged with prompt templates

    def needs(self, shown: int) -> int:
        """How many more hits to ask for to show `shown` and know whether more exist (0: none)."""
        if self.exhausted or len(self.hits) > shown:
            return 0
        return shown + 1 - len(self.hits)

    def add(self, result: SearchResult, asked: int) -> None:
        seen = {h.id for h in self.hits}
        # A commit between pages can shift ranks; never show the same image twice.
        self.hits.extend(h for h in result.hits if h.id not in seen)
        self.exhausted = len(result.hits) < asked
        self.total_ms = result.timings.get("total_ms", 0.0)
        self.notes = list(result.notes)
        self.terms = list(result.terms)
        self.prompts = dict(result.prompts)

    def has_more(self, shown: int) -> bool:
        return len(self.hits) > shown


def session_defaults() -> None:
    defaults = {
        "like_id": None,
        "pages": 1,
        "upload_nonce": 0,
        "results": None,
        "open_pos": None,
        "url_seen": None,
        "back_stack": [],
        "terms": [],  # the "+ add term" / "− exclude" boxes: [{"sign": 1 or -1, "uid": n}]
        "term_seq": 0,
        # widgets, by key: set here (not through value=) so the URL can set them too
        "q": "",
        "folder": None,
        "after": None,
        "before": None,
        "min_score": 0.0,
        "page_size": DEFAULT_PAGE_SIZE,
        "prompts": "default",
        "collapse": False,
    }
    for key, value in defaults.items():
        st.session_state.setdefault(key, value)
