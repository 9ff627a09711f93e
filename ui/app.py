"""The clipsearch web page (run by `clipsearch ui`, or `streamlit run ui/app.py`).

Streamlit re-runs this script on every interaction: it reads the inputs, asks the shared
search service for a page of results (more pages are appended by "load more"), and draws.
"""

from __future__ import annotations

import logging
from datetime import date

import streamlit as st

from clipsearch.errors import ClipsearchError
from clipsearch.imaging import IMAGE_EXTENSIONS
from clipsearch.settings import Settings
from clipsearch.ui import render
from clipsearch.ui.inputs import DEFAULT_PAGE_SIZE, PAGE_SIZES, PageInput, Upload, build_request
from clipsearch.ui.state import Engine, Results, open_engine, open_store, session_defaults, store_exists

EARLIEST_DATE = date(1900, 1, 1)


# -- callbacks: they run before the script, so they may reset widgets ---------------------


def _like(image_id: int) -> None:
    st.session_state.like_id = image_id
    st.session_state.open_id = None
    st.session_state.q = ""
    st.session_state.upload_nonce += 1  # a new key empties the uploader


def _open(image_id: int) -> None:
    st.session_state.open_id = image_id


def _close() -> None:
    st.session_state.open_id = None


def _forget_example() -> None:
    st.session_state.like_id = None


def _more() -> None:
    st.session_state.want_more = True


# -- page sections ----------------------------------------------------------------------------


def load_engine(settings: Settings) -> Engine | None:
    """The shared engine, or None after telling the user why there is none."""
    if not store_exists(settings):
        render.how_to_index(settings, f"There is no clipsearch store at {settings.home} yet.")
        return None
    try:
        store = open_store(str(settings.home), settings.database_url)
        empty = store.catalog.facts.stats().images == 0
    except ClipsearchError as exc:
        st.error(f"Cannot open the store: {exc}")
        return None
    if empty:
        render.store_status(store, None)
        render.how_to_index(settings, f"No images have been indexed in {settings.home} yet.")
        return None
    try:
        engine = open_engine(str(settings.home), settings.database_url)
    except ClipsearchError as exc:
        render.store_status(store, None)
        st.error(f"Cannot load the search engine: {exc}")
        return None
    render.store_status(store, engine)
    return engine


def read_inputs() -> PageInput:
    box, example = st.columns([3, 2])
    text = box.text_input(
        "Search", key="q", placeholder="describe a photo, e.g. a dog on a beach", on_change=_forget_example
    )
    uploaded = example.file_uploader(
        "…or search by example",
        key=f"upload-{st.session_state.upload_nonce}",
        type=sorted(e.lstrip(".") for e in IMAGE_EXTENSIONS),
        on_change=_forget_example,
    )
    sb = st.sidebar
    sb.header("Filters")
    folder = sb.text_input(
        "Folder", key="folder", placeholder="/path/to/photos/2021", help="Only images under this folder."
    )
    after = sb.date_input("Taken on or after", value=None, min_value=EARLIEST_DATE, key="after")
    before = sb.date_input("Taken on or before", value=None, min_value=EARLIEST_DATE, key="before")
    min_score = sb.slider("Minimum score", 0.0, 1.0, 0.0, 0.01, key="min_score", help="0 shows everything.")
    page_size = sb.selectbox("Results per page", PAGE_SIZES, index=PAGE_SIZES.index(DEFAULT_PAGE_SIZE), key="page_size")
    return PageInput(
        text=text or "",
        upload=Upload(uploaded.name, uploaded.getvalue()) if uploaded else None,
        like_id=st.session_state.like_id,
        folder=folder or "",
        after=after,
        before=before,
        min_score=float(min_score),
        page_size=int(page_size),
    )


def example_banner(engine: Engine, like_id: int) -> None:
    meta = engine.service.store.catalog.results.meta([like_id]).get(like_id)
    name = meta.path if meta else f"image {like_id}"
    left, right = st.columns([5, 1])
    left.info(f"Showing images like {name}")
    right.button("Clear", key="clear-example", on_click=_forget_example)


def current_results(engine: Engine, inp: PageInput, settings: Settings) -> Results | None:
    """This request's results so far: a first page for a new request, one more on "load more"."""
    results: Results | None = st.session_state.results
    want_more, st.session_state.want_more = st.session_state.want_more, False
    fresh = results is None or results.signature != inp.signature()
    if not fresh and (not want_more or results.exhausted):
        return results
    if fresh:
        results = Results(inp.signature())
    try:
        request = build_request(inp, offset=len(results.hits), max_megapixels=settings.max_megapixels)
        with st.spinner("Searching…"):
            results.add_page(engine.search(request), inp.page_size)
    except ClipsearchError as exc:
        st.error(str(exc))
        return None
    st.session_state.results = results
    return results


def main() -> None:
    st.set_page_config(page_title="clipsearch", page_icon="🔎", layout="wide")
    logging.getLogger().setLevel(logging.ERROR)  # open_clip warns about random weights on every load
    session_defaults()
    settings = Settings.from_env()
    st.title("clipsearch")
    engine = load_engine(settings)
    if engine is None:
        return
    inp = read_inputs()
    if inp.like_id is not None:
        example_banner(engine, inp.like_id)
    results = None if inp.is_empty else current_results(engine, inp, settings)
    hits = results.hits if results else []
    open_id = st.session_state.open_id
    if open_id is not None and open_id not in {h.id for h in hits}:
        render.opened_result(engine, open_id, _like, _close)
    if inp.is_empty:
        st.caption("Type what you are looking for, or drop in an example image.")
        return
    if results is None:
        return
    render.results_header(results)
    if not hits:
        st.info("No results. Try other words, or loosen the filters.")
        return
    # The opened result unfolds under its own row, where the user clicked.
    render.result_grid(
        hits,
        engine.thumbs,
        _like,
        _open,
        opened=lambda: render.opened_result(engine, open_id, _like, _close),
        open_id=open_id,
    )
    if not results.exhausted:
        st.button("Load more", key="more", on_click=_more)


main()
