"""Combined queries on the page: "+ add term" and "− exclude" boxes beside the search text.

Each box is one term of the search service's combined query (SearchRequest.plus / .minus);
`2:snow` weighs a term double. The text box itself also takes the compact form `dog + snow - people`.
"""

from __future__ import annotations

import streamlit as st

from clipsearch.ui.urlstate import add_term, remove_term, term_key

ss = st.session_state


def _changed() -> None:
    ss.pages = 1


def term_buttons() -> None:
    """The two buttons that open a new term box (drawn in the search row)."""
    st.button("+ add term", key="cs-add-plus", on_click=add_term, args=(1,), help="Also look for this.")
    st.button("− exclude", key="cs-add-minus", on_click=add_term, args=(-1,), help="Push this out of the results.")


def term_boxes() -> None:
    """One small text box per term, with a button that removes it."""
    if not ss.terms:
        return
    with st.container(horizontal=True, key="cs-terms", vertical_alignment="center"):
        for term in ss.terms:
            uid, plus = term["uid"], term["sign"] > 0
            with st.container(
                horizontal=True, key=f"cs-term-box-{uid}", vertical_alignment="center", width=300, gap="small"
            ):
                st.text_input(
                    "also look for" if plus else "exclude",
                    key=term_key(uid),
                    placeholder="and also… (e.g. snow)" if plus else "but not… (e.g. people)",
                    label_visibility="collapsed",
                    icon=":material/add:" if plus else ":material/remove:",
                    on_change=_changed,
                )
                st.button(
                    "✕",
                    key=f"cs-term-x-{uid}",
                    on_click=remove_term,
                    args=(uid,),
                    help="Remove this term.",
                    type="tertiary",
                )


def terms_used(terms: list[dict]) -> str | None:
    """How the service combined the query (plain text), when there was more than one term."""
    if len(terms) < 2:
        return None
    parts = []
    for term in terms:
        weight = abs(term["weight"])
        shown = term["value"] if weight == 1 else f"{weight:g}:{term['value']}"
        parts.append(("+ " if term["weight"] > 0 else "− ") + shown)
    return "Query: " + " ".join(parts).removeprefix("+ ")
