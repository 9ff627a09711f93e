"""The sidebar: the filters, and the store's state (model, counts, failures, a running index)."""

from __future__ import annotations

from datetime import date

import streamlit as st

from clipsearch.store import Store
from clipsearch.ui.inputs import PAGE_SIZES, PROMPT_MODES
from clipsearch.ui.state import Engine, index_running
from clipsearch.ui.text import count

EARLIEST_DATE = date(1900, 1, 1)
MAX_FAILURES_LISTED = 50
PROMPT_LABELS = {"default": "model default", "raw": "as typed", "prompts": "with prompt templates"}


def filters(folders: dict[str, int]) -> None:
    """The filter widgets; their values live in session state under their keys."""
    sb = st.sidebar
    sb.subheader("Filters")
    current = st.session_state.get("folder")
    options = list(folders) if not current or current in folders else [current, *folders]
    sb.selectbox(
        "Folder",
        options,
        key="folder",
        accept_new_options=True,
        placeholder="any folder (type or pick)",
        format_func=lambda f: f"{f}  ({folders[f]:,})" if f in folders else f,
        help="Only images under this folder. Suggestions are the indexed folders, with their image counts.",
    )
    left, right = sb.columns(2)
    left.date_input("Taken from", min_value=EARLIEST_DATE, key="after", format="YYYY-MM-DD")
    right.date_input("Taken until", min_value=EARLIEST_DATE, key="before", format="YYYY-MM-DD")
    sb.slider(
        "Minimum score",
        0.0,
        1.0,
        step=0.01,
        key="min_score",
        help="Cosine similarity to the query; 0 shows everything.",
    )
    sb.selectbox("Results per page", PAGE_SIZES, key="page_size")
    sb.selectbox(
        "Text prompts",
        list(PROMPT_MODES),
        key="prompts",
        format_func=PROMPT_LABELS.get,
        help="How words are embedded: as typed, or averaged with the model's prompt templates "
        "('a photo of …'). The model's default is what a benchmark found best for it.",
    )
    sb.toggle(
        "Collapse near-duplicates",
        key="collapse",
        help="Show each group of near-identical images (resized or re-encoded copies, bursts) once, as its "
        "best member: the most pixels, then the biggest file, then the earliest. Same threshold as "
        "`clipsearch duplicates`.",
    )


def store_status(store: Store, engine: Engine | None) -> None:
    """Counts read after this run's search, so they agree with the results shown."""
    sb = st.sidebar
    sb.subheader("Store")
    stats = store.catalog.facts.stats()
    running = index_running(store)
    if running:
        sb.info("An index run is in progress: new images appear as its batches are committed.", icon="⏳")
    left, right = sb.columns(2)
    left.metric("Images indexed", f"{stats.images:,}")
    right.metric("Failed files", f"{stats.failed:,}")
    if engine is not None:
        kind, vectors = engine.index_size()
        sb.caption(f"Index: {kind}, {count(vectors, 'vector')}")
        if getattr(engine.service.encoder, "is_random", False):
            sb.warning("This model has random weights: rankings are meaningless (tests and demos only).")
    model = store.model
    sb.caption("Model")
    sb.code(model.spec if model else "none yet", language=None)
    sb.caption("Store")
    sb.code(str(store.settings.home), language=None)
    if store.settings.database_url:
        sb.code(store.location, language=None)  # password hidden
    if stats.failed:
        with sb.expander(f"Files that failed ({stats.failed:,})"):
            for path, reason in store.catalog.facts.failures(MAX_FAILURES_LISTED):
                st.text(f"{path}: {reason}")
            if stats.failed > MAX_FAILURES_LISTED:
                st.caption(f"First {MAX_FAILURES_LISTED} shown; `clipsearch status --failures` lists them all.")
