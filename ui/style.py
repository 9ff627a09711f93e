"""The page's CSS (style.css): a dense, responsive grid, compact chrome, plain-text notices."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import streamlit as st


@cache
def _css() -> str:
    return (Path(__file__).with_name("style.css")).read_text(encoding="utf-8")


def inject() -> None:
    st.html(f"<style>{_css()}</style>")
