"""The search lives in the URL: what the browser's Back, reload, bookmarks and shared links see.

Each run compares the URL with the one this session last wrote. A different URL (first load,
Back/Forward, an edited or shared link) sets the widgets; otherwise the widgets win and a changed
search is written to the URL, which Streamlit pushes as a new browser history entry.
"""

from __future__ import annotations

import streamlit as st

from clipsearch.ui.inputs import PageInput, from_params, to_params
from clipsearch.ui.text import notice

ss = st.session_state


def _url() -> dict[str, list[str]]:
    return {key: st.query_params.get_all(key) for key in st.query_params}


def _set_widgets(inp: PageInput) -> None:
    """Widget values for a search (only before the widgets are drawn, or from a callback)."""
    ss.q = inp.text
    ss.folder = inp.folder or None
    ss.after, ss.before = inp.after, inp.before
    ss.min_score = inp.min_score
    ss.page_size = inp.page_size
    ss.prompts = inp.prompts
    ss.like_id = inp.like_id
    ss.pages = inp.pages
    ss.collapse = inp.collapse
    ss.terms = []
    for sign, values in ((1, inp.plus), (-1, inp.minus)):
        for value in values:
            add_term(sign, value)


def add_term(sign: int, value: str = "") -> None:
    """Another "+" or "−" term box; its text lives in session state under its own key."""
    ss.term_seq += 1
    ss.terms = [*ss.terms, {"sign": sign, "uid": ss.term_seq}]
    ss[term_key(ss.term_seq)] = value


def remove_term(uid: int) -> None:
    ss.terms = [t for t in ss.terms if t["uid"] != uid]
    ss.pages = 1


def term_key(uid: int) -> str:
    return f"cs-term-{uid}"


def term_values(sign: int) -> tuple[str, ...]:
    return tuple(ss.get(term_key(t["uid"]), "") for t in ss.terms if t["sign"] == sign)


def apply_url() -> None:
    """Take the search from the URL when it changed outside this session's own writes."""
    params = _url()
    if params == ss.get("url_seen"):
        return
    first = ss.get("url_seen") is None
    inp, problems = from_params(params)
    _set_widgets(inp)
    if not first:
        ss.upload_nonce += 1  # a link never carries an uploaded example
    ss.url_seen = params
    if problems:
        notice("warning", "Ignored in the link (not valid): " + ", ".join(problems), key="url")


def sync_to_url(inp: PageInput) -> None:
    params = to_params(inp)
    if params != _url():
        st.query_params.from_dict(params)
    ss.url_seen = params


def like(image_id: int, current: PageInput) -> None:
    """ "More like this": the example joins the current text; "Clear" comes back to this search."""
    ss.back_stack = [*ss.back_stack, to_params(current)][-20:]
    ss.like_id = image_id
    ss.pages = 1
    ss.upload_nonce += 1  # the new example replaces an uploaded one


def clear_example() -> None:
    """Back to the search before the last "more like this" (or just drop the example)."""
    if ss.back_stack:
        *rest, previous = ss.back_stack
        ss.back_stack = rest
        _set_widgets(from_params(previous)[0])
    else:
        ss.like_id = None
        ss.pages = 1
