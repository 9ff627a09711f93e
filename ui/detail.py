"""The detail view: a dialog over the grid with the full image (downscaled from the original
to the screen), its facts, previous/next, "more like this" and the original for download.

The dialog is a fragment: previous/next rerun only the dialog. The original is shown and
served only while the file on disk is still the one the catalog indexed (clipsearch.originals).
"""

from __future__ import annotations

import mimetypes
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import streamlit as st

from clipsearch.catalog import ImageMeta
from clipsearch.errors import ClipsearchError, OriginalMissingError
from clipsearch.originals import Original, lookup, open_original, read_original
from clipsearch.search import SearchHit
from clipsearch.ui.state import Engine, screen_image
from clipsearch.ui.text import human_size, notice, score_label

SCREEN_SIDE = 1600  # longer side of the on-screen image: sharp in a large dialog, far smaller than a photo


def _move(step: int, last: int) -> None:
    st.session_state.open_pos = min(max(st.session_state.open_pos + step, 0), last)


@st.dialog("Result", width="large")
def detail_dialog(engine: Engine, hits: list[SearchHit], on_like: Callable[[int], None]) -> None:
    pos = st.session_state.open_pos
    if pos is None or not 0 <= pos < len(hits):
        return
    hit = hits[pos]
    meta = engine.store.catalog.results.meta([hit.id]).get(hit.id)
    last = len(hits) - 1
    with st.container(horizontal=True, vertical_alignment="center", key="cs-detail-nav"):
        st.button("← Previous", key="cs-prev", on_click=_move, args=(-1, last), disabled=pos == 0)
        st.button("Next →", key="cs-next", on_click=_move, args=(1, last), disabled=pos == last)
        st.caption(f"Result {pos + 1} of {len(hits)} · score {score_label(hit.score)}")
    if meta is None:
        notice("warning", "This image is no longer in the catalog (it was deleted or re-indexed).", key="gone")
        return
    picture, facts = st.columns([3, 2])
    with picture:
        original = _full_image(engine, meta)
    with facts:
        _facts(meta)
        with st.container(horizontal=True):
            if st.button("More like this", key="cs-like-open", type="primary"):
                on_like(meta.id)
                st.rerun()  # the whole page: a new search
            if original is not None:
                st.download_button(
                    "Download original",
                    data=lambda: read_original(original),  # checked again when the download starts
                    file_name=Path(meta.path).name,
                    mime=mimetypes.guess_type(meta.path)[0] or "application/octet-stream",
                    key="cs-download",
                    on_click="ignore",
                )


def _full_image(engine: Engine, meta: ImageMeta) -> Original | None:
    """Draw the on-screen image; the original when it may be served, else None (and why is shown)."""
    try:
        original = lookup(engine.store.catalog, meta.id)
        if original is None:
            raise OriginalMissingError(f"{meta.path} is no longer in the catalog (it was deleted or re-indexed)")
        fh, _stat = open_original(original)  # the check: still the file the catalog row describes
        fh.close()
        data = screen_image(
            original.path,
            original.size,
            original.mtime_ns,
            SCREEN_SIDE,
            engine.store.settings.max_megapixels,
            _load=lambda: read_original(original),
        )
    except ClipsearchError as exc:
        notice("warning", str(exc), key="original")
        _indexed_preview(engine, meta)
        return None
    with st.container(key="cs-detail-image"):
        st.image(data, width="stretch")
    return original


def _indexed_preview(engine: Engine, meta: ImageMeta) -> None:
    """The thumbnail made when the image was indexed (keyed by its content hash, so never the new file)."""
    if meta.content_hash and engine.thumbs.has(meta.content_hash):
        with st.container(key="cs-detail-image"):
            st.image(engine.thumbs.path_for(meta.content_hash).read_bytes(), width="stretch")
        st.caption("The preview made when this image was indexed.")


def _facts(meta: ImageMeta) -> None:
    # st.text and st.code only: names, folders and camera models are outside text.
    with st.container(key="cs-facts", gap=None):
        st.text(Path(meta.path).name)
        st.code(meta.path, language=None, wrap_lines=True)
        dims = f"{meta.width:,} × {meta.height:,} px" if meta.width and meta.height else "unknown"
        for label, value in (
            ("Size", human_size(meta.size)),
            ("Dimensions", dims),
            ("Taken", _when(meta.taken_at)),
            ("Camera", meta.camera or "unknown"),
        ):
            st.text(f"{label}: {value}")


def _when(taken: datetime | None) -> str:
    return taken.strftime("%Y-%m-%d %H:%M") if taken else "unknown (no EXIF date)"
