"""User-controlled strings on the page: always plain text, never Markdown or HTML.

File names, folders, camera names, failure reasons and queries come from the outside world
(`[log in](https:evil.example).png` is a valid file name). Streamlit renders st.markdown,
st.caption, st.info/st.error bodies, image captions, widget labels and dialog titles as
Markdown, and escaping is not enough there: GitHub-style autolinks (www.x.y, a@b.c) are found
in text after escapes are resolved. So every string that may hold outside text is drawn with
st.text or st.code, which never interpret it; messages that embed one use `notice`.
"""

from __future__ import annotations

import streamlit as st

NOTICE_KINDS = ("info", "warning", "error")


def notice(kind: str, message: str, key: str) -> None:
    """An info/warning/error box whose message is plain text (st.info & co. render Markdown).

    Styled by the page CSS through its key (`cs-<kind>-<key>`); keys must be unique per run.
    """
    assert kind in NOTICE_KINDS
    with st.container(key=f"cs-{kind}-{key}"):
        st.text(message)


def score_label(score: float) -> str:
    """A cosine score for people: below zero means "unrelated", not a meaningful rank."""
    return f"{score:.3f}" if score >= 0 else "<0"


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:,.0f} {unit}" if unit == "bytes" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{size:,} bytes"


def count(n: int, noun: str) -> str:
    """'1 image', '1,234 images': one number format everywhere on the page."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"
