"""Drawing the page: store status, guidance, the results grid and the opened result.

Images shown here are always looked up by catalog id (path and content hash from the
catalog); nothing the browser sends is ever opened as a file.
"""

from __future__ import annotations

import mimetypes
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import streamlit as st

from clipsearch.catalog import ImageMeta
from clipsearch.errors import ClipsearchError
from clipsearch.search import SearchHit
from clipsearch.settings import Settings
from clipsearch.store import Store
from clipsearch.thumbnails import Thumbnails, read_original
from clipsearch.ui.state import Engine, Results, screen_image

GRID_COLUMNS = 6
SCREEN_SIDE = 1600
MAX_FAILURES_LISTED = 50


def how_to_index(settings: Settings, reason: str) -> None:
    """What an empty or missing store shows instead of a search box."""
    st.info(reason)
    st.markdown("Index a folder of photos (any time, also while this page is open), then reload:")
    st.code(f"clipsearch --home {settings.home} index ~/Pictures", language="bash")
    st.caption("Indexing reads JPEG, PNG, WebP, GIF, BMP and TIFF files in the folder and its sub-folders.")


def store_status(store: Store, engine: Engine | None) -> None:
    sb = st.sidebar
    sb.header("Store")
    model = store.model
    stats = store.catalog.facts.stats()
    sb.caption(f"Home: `{store.settings.home}`")
    if store.settings.database_url:
        sb.caption(f"Catalog: `{store.location}`")  # password hidden
    sb.markdown(f"**Model:** `{model.spec if model else 'none yet'}`")
    if engine is not None and engine.service.encoder.is_random:
        sb.warning("This model has random weights: rankings are meaningless (tests and demos only).")
    left, right = sb.columns(2)
    left.metric("Images indexed", stats.images)
    right.metric("Failed files", stats.failed)
    if engine is not None:
        index = engine.service.index
        sb.markdown(f"**Index:** {index.kind} · {index.ntotal:,} vectors")
    if stats.failed:
        with sb.expander(f"Files that failed ({stats.failed})"):
            for path, reason in store.catalog.facts.failures(MAX_FAILURES_LISTED):
                st.caption(f"`{path}`: {reason}")


def result_grid(
    hits: list[SearchHit],
    thumbs: Thumbnails,
    on_like: Callable,
    on_open: Callable,
    opened: Callable[[], None],
    open_id: int | None,
) -> None:
    """Rows of result cards; `opened` draws the opened result under the row that holds it."""
    for start in range(0, len(hits), GRID_COLUMNS):
        row = hits[start : start + GRID_COLUMNS]
        for column, hit in zip(st.columns(GRID_COLUMNS), row, strict=False):
            with column:
                _result_card(hit, thumbs, on_like, on_open)
        if open_id is not None and any(hit.id == open_id for hit in row):
            opened()


def _result_card(hit: SearchHit, thumbs: Thumbnails, on_like: Callable, on_open: Callable) -> None:
    caption = f"#{hit.rank} · score {hit.score:.3f}"
    try:
        st.image(thumbs.get(hit.content_hash, hit.path), caption=caption, width="stretch")
    except ClipsearchError as exc:
        st.caption(caption)
        st.warning(str(exc))
    st.caption(Path(hit.path).name)
    st.button("More like this", key=f"like-{hit.id}", on_click=on_like, args=(hit.id,), width="stretch")
    st.button("Open", key=f"open-{hit.id}", on_click=on_open, args=(hit.id,), width="stretch", type="tertiary")


def results_header(results: Results) -> None:
    count = len(results.hits)
    more = "" if results.exhausted else " so far"
    st.caption(f"{count} result{'s' if count != 1 else ''}{more} · search took {results.total_ms:.0f} ms")
    for note in results.notes:
        st.caption(f"note: {note}")


def opened_result(engine: Engine, image_id: int, on_like: Callable, on_close: Callable) -> None:
    """The full image and its facts, for an id chosen from the grid."""
    meta = engine.service.store.catalog.results.meta([image_id]).get(image_id)
    with st.container(border=True):
        if meta is None:
            st.warning("That image is no longer in the catalog (it was deleted or re-indexed).")
            st.button("Close", key="close-open", on_click=on_close)
            return
        picture, facts = st.columns([3, 2])
        with picture:
            _full_image(meta, engine.service.store.settings.max_megapixels)
        with facts:
            _facts(meta)
            like, close = st.columns(2)
            like.button("More like this", key="like-open", on_click=on_like, args=(meta.id,))
            close.button("Close", key="close-open", on_click=on_close)


def _full_image(meta: ImageMeta, max_megapixels: float) -> None:
    try:
        mtime_ns = os.stat(meta.path).st_mtime_ns
    except FileNotFoundError:
        st.error(f"{meta.path} is no longer on disk; run `clipsearch index` on its folder to update the catalog")
        return
    except OSError as exc:
        st.error(f"cannot read {meta.path}: {exc.strerror or exc}")
        return
    try:
        st.image(screen_image(meta.path, mtime_ns, SCREEN_SIDE, max_megapixels), width="stretch")
    except ClipsearchError as exc:
        st.error(f"cannot show {meta.path}: {exc}")
        return
    st.download_button(
        "Download original",
        data=lambda: read_original(meta.path),
        file_name=Path(meta.path).name,
        mime=mimetypes.guess_type(meta.path)[0] or "application/octet-stream",
        key="download-open",
    )


def _facts(meta: ImageMeta) -> None:
    st.markdown(f"**{Path(meta.path).name}**")
    st.code(meta.path, language=None)
    rows = [
        ("Size", _human_size(meta.size)),
        ("Dimensions", f"{meta.width} × {meta.height} px" if meta.width and meta.height else "unknown"),
        ("Taken", _when(meta.taken_at)),
        ("Camera", meta.camera or "unknown"),
    ]
    st.markdown("\n".join(f"- **{label}:** {value}" for label, value in rows))


def _when(taken: datetime | None) -> str:
    return taken.strftime("%Y-%m-%d %H:%M") if taken else "unknown (no EXIF date)"


def _human_size(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"
