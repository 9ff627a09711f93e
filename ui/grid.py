"""The results grid: square thumbnails, as many per row as the screen holds; a click opens one.

Each card is its own fragment: opening a result reruns that card (which opens the detail
dialog), not the page, so the grid is never redrawn for it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import streamlit as st

from clipsearch.errors import ClipsearchError
from clipsearch.search import SearchHit
from clipsearch.thumbnails import Thumbnails
from clipsearch.ui.text import human_size, score_label


def result_grid(hits: list[SearchHit], thumbs: Thumbnails, open_detail: Callable[[int], None]) -> None:
    with st.container(horizontal=True, key="cs-grid"):
        for pos, hit in enumerate(hits):
            _card(pos, hit, thumbs, open_detail)


@st.fragment
def _card(pos: int, hit: SearchHit, thumbs: Thumbnails, open_detail: Callable[[int], None]) -> None:
    with st.container(key=f"cs-card-{hit.id}", gap=None):
        try:
            st.image(thumbs.get(hit.content_hash, hit.path), width="stretch")
        except ClipsearchError:
            # Original gone and no thumbnail kept: the detail view says why.
            st.container(key=f"cs-missing-{hit.id}", height=120, border=True).text("no preview")
        # Plain text (st.text), never Markdown: file names are chosen by whoever made the file.
        st.text(f"{score_label(hit.score)} · {Path(hit.path).name}")
        if st.button(f"Open result {hit.rank}", key=f"cs-open-{hit.id}"):
            open_detail(pos)
        if hit.duplicates:
            _collapsed_group(hit, thumbs)


def _collapsed_group(hit: SearchHit, thumbs: Thumbnails) -> None:
    """The near-duplicates folded into this result: a count, expandable to each member."""
    n = len(hit.duplicates)
    with st.expander(f"+{n} near-duplicate{'s' if n > 1 else ''}", key=f"cs-dups-{hit.id}"):
        st.text(f"shown: {_facts(hit)}")
        for copy in hit.duplicates:
            with st.container(key=f"cs-dup-{hit.id}-{copy.id}", gap=None):
                try:
                    st.image(thumbs.get(copy.content_hash, copy.path), width="stretch")
                except ClipsearchError:
                    st.text("no preview")
                # Name first: the grid's own cards are "score · name".
                st.text(f"{Path(copy.path).name} · {score_label(copy.score)} · {_facts(copy)}")


def _facts(hit: SearchHit) -> str:
    pixels = f"{hit.width}x{hit.height}" if hit.width and hit.height else "size unknown"
    return f"{pixels}, {human_size(hit.size)}"
