"""The clipsearch web page (run by `clipsearch ui`).

Streamlit re-runs this script on every interaction: it reads the search from the URL or the
widgets, asks the shared search service for the pages shown, and draws. Opening a result reruns
only its card and the dialog (fragments), never the grid.
"""

from __future__ import annotations

import logging

import streamlit as st

from clipsearch.errors import ClipsearchError
from clipsearch.settings import Settings
from clipsearch.store import Store
from clipsearch.ui import sidebar, style
from clipsearch.ui.detail import detail_dialog
from clipsearch.ui.explain import explain_empty
from clipsearch.ui.folders import indexed_folders
from clipsearch.ui.grid import result_grid
from clipsearch.ui.inputs import MAX_PAGES, PageInput, Upload, build_request, upload_types
from clipsearch.ui.state import Engine, Results, open_engine, open_store, session_defaults, store_exists
from clipsearch.ui.terms import term_boxes, term_buttons, terms_used
from clipsearch.ui.text import count, notice
from clipsearch.ui.urlstate import apply_url, clear_example, like, sync_to_url, term_values

ss = st.session_state


# -- callbacks: they run before the script, so they may set widget values ---------------------


def _new_search() -> None:
    ss.like_id = None
    ss.pages = 1


def _more() -> None:
    ss.pages = min(ss.pages + 1, MAX_PAGES)


def _drop_text() -> None:
    ss.q = ""


# -- page sections ------------------------------------------------------------------------------


def how_to_index(settings: Settings, reason: str) -> None:
    """What an empty or missing store shows instead of a search box."""
    notice("info", reason, key="no-store")
    st.markdown("Index a folder of photos (any time, also while this page is open), then reload:")
    st.code(f"clipsearch --home {settings.home} index ~/Pictures", language="bash")
    st.caption("Indexing reads JPEG, PNG, WebP, GIF, BMP and TIFF files in the folder and its sub-folders.")


def load_engine(settings: Settings) -> tuple[Store | None, Engine | None]:
    """The store and its shared engine; None where there is none, after telling the user why."""
    if not store_exists(settings):
        how_to_index(settings, f"There is no clipsearch store at {settings.home} yet.")
        return None, None
    try:
        store = open_store(str(settings.home), settings.database_url)
        empty = store.catalog.facts.stats().images == 0
    except ClipsearchError as exc:
        notice("error", f"Cannot open the store: {exc}", key="store")
        return None, None
    if empty:
        how_to_index(settings, f"No images have been indexed in {settings.home} yet.")
        return store, None
    try:
        return store, open_engine(str(settings.home), settings.database_url)
    except ClipsearchError as exc:
        notice("error", f"Cannot load the search engine: {exc}", key="engine")
        return store, None


def read_inputs() -> PageInput:
    """The search row (text box and example image); the filters are drawn in the sidebar."""
    with st.container(horizontal=True, vertical_alignment="center", key="cs-search-row"):
        text = st.text_input(
            "Search",
            key="q",
            placeholder="describe a photo, e.g. a dog on a beach",
            label_visibility="collapsed",
            on_change=_new_search,
        )
        term_buttons()
        with st.popover("Example image", icon=":material/image_search:"):
            uploaded = st.file_uploader(
                "Search by example",
                key=f"upload-{ss.upload_nonce}",
                type=upload_types(),
                on_change=_new_search,
            )
    term_boxes()
    if uploaded is not None:
        st.text(f"Example image: {uploaded.name}")
    return PageInput(
        text=text or "",
        upload=Upload(uploaded.name, uploaded.getvalue()) if uploaded else None,
        like_id=ss.like_id,
        folder=ss.folder or "",
        after=ss.after,
        before=ss.before,
        min_score=float(ss.min_score),
        page_size=int(ss.page_size),
        pages=int(ss.pages),
        plus=term_values(1),
        minus=term_values(-1),
        prompts=ss.prompts,
        collapse=bool(ss.collapse),
    )


def example_banner(engine: Engine, inp: PageInput) -> None:
    meta = engine.store.catalog.results.meta([inp.like_id]).get(inp.like_id)
    name = meta.path if meta else f"image {inp.like_id} (no longer in the catalog)"
    combined = f", combined with the text “{inp.text.strip()}”" if inp.text.strip() else ""
    with st.container(horizontal=True, vertical_alignment="center", key="cs-example-row"):
        notice("info", f"Images like {name}{combined}", key="example")
        st.button(
            "Clear", key="cs-clear-example", on_click=clear_example, help="Back to the search before “more like this”."
        )
        if combined:
            st.button("Image only", key="cs-drop-text", on_click=_drop_text)


def current_results(engine: Engine, inp: PageInput, settings: Settings) -> Results | None:
    """This search's results, fetched as far as the pages shown (plus one, to know if more exist)."""
    results: Results | None = ss.results
    if results is None or results.signature != inp.signature():
        results = Results(inp.signature())
    need = results.needs(inp.shown)
    if need:
        try:
            request = build_request(inp, offset=len(results.hits), k=need, max_megapixels=settings.max_megapixels)
            with st.spinner("Searching…"):
                results.add(engine.search(request), need)
        except ClipsearchError as exc:
            notice("error", str(exc), key="search")
            return None
    ss.results = results
    return results


def show_results(engine: Engine, inp: PageInput, results: Results, settings: Settings, folders: dict[str, int]) -> None:
    hits = results.hits[: inp.shown]
    more = results.has_more(inp.shown)
    st.caption(f"{count(len(hits), 'result')}{' so far' if more else ''} · search took {results.total_ms:,.0f} ms")
    combined = terms_used(results.terms)
    if combined:
        st.text(combined)  # the terms are the user's words (or a shared link's): plain text
    if results.prompts.get("used"):
        st.caption(f"Words embedded with the prompts {' · '.join(results.prompts['templates'])}")
    for i, note in enumerate(results.notes):
        notice("info", note, key=f"note-{i}")
    if not hits:
        for i, line in enumerate(explain_empty(engine, inp, settings.max_megapixels, folders)):
            notice("info", line, key=f"empty-{i}")
        return

    def open_detail(pos: int) -> None:
        ss.open_pos = pos
        detail_dialog(engine, hits, lambda image_id: like(image_id, inp))

    result_grid(hits, engine.thumbs, open_detail)
    if more:
        st.button("Load more", key="cs-more", on_click=_more)


def main() -> None:
    st.set_page_config(page_title="clipsearch", page_icon="🔎", layout="wide")
    logging.getLogger().setLevel(logging.ERROR)  # open_clip warns about random weights on every load
    style.inject()
    session_defaults()
    settings = Settings.from_env()
    st.sidebar.title("clipsearch")
    store, engine = load_engine(settings)
    if engine is None:
        if store is not None:
            sidebar.store_status(store, None)
        return
    apply_url()
    folders = indexed_folders(str(settings.home), settings.database_url, store.catalog.facts.stats().seq)
    sidebar.filters(folders)
    inp = read_inputs()
    sync_to_url(inp)
    if inp.like_id is not None:
        example_banner(engine, inp)
    if inp.is_empty:
        st.caption("Type what you are looking for, or search by an example image.")
    else:
        results = current_results(engine, inp, settings)
        if results is not None:
            show_results(engine, inp, results, settings, folders)
    sidebar.store_status(store, engine)


main()
