"""What the page shares across sessions (loaded once per server process) and keeps per session."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import streamlit as st

from clipsearch.imaging import load_rgb
from clipsearch.search import SearchHit, SearchRequest, SearchResult, SearchService
from clipsearch.settings import Settings
from clipsearch.store import Store
from clipsearch.thumbnails import Thumbnails, encode_thumbnail, read_original


@dataclass
class Engine:
    """The search service of one store plus what the page needs beside it."""

    service: SearchService
    thumbs: Thumbnails
    # Sessions run in threads; a search may catch the shared FAISS index up to new commits.
    lock: threading.Lock = field(default_factory=threading.Lock)

    def search(self, request: SearchRequest) -> SearchResult:
        with self.lock:
            return self.service.search(request)


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


@st.cache_data(max_entries=16, show_spinner=False)
def screen_image(path: str, mtime_ns: int, side: int, max_megapixels: float) -> bytes:
    """A screen-sized JPEG of an original (cached by path and mtime, so edits are seen)."""
    rgb, _info = load_rgb(read_original(path), max_megapixels, min_side=side)
    return encode_thumbnail(rgb, side)


# -- per-session paging state ----------------------------------------------------------------


@dataclass
class Results:
    """The hits shown so far for one request (pages are appended by "load more")."""

    signature: tuple
    hits: list[SearchHit] = field(default_factory=list)
    exhausted: bool = False
    total_ms: float = 0.0
    notes: list[str] = field(default_factory=list)

    def add_page(self, result: SearchResult, page_size: int) -> None:
        seen = {h.id for h in self.hits}
        # A commit between pages can shift ranks; never show the same image twice.
        self.hits.extend(h for h in result.hits if h.id not in seen)
        self.exhausted = len(result.hits) < page_size
        self.total_ms = result.timings.get("total_ms", 0.0)
        self.notes = list(result.notes)


def session_defaults() -> None:
    for key, value in (
        ("like_id", None),
        ("open_id", None),
        ("upload_nonce", 0),
        ("want_more", False),
        ("results", None),
    ):
        st.session_state.setdefault(key, value)
