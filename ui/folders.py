"""Indexed folders, for the folder filter's suggestions and for "did you mean" on an empty result."""

from __future__ import annotations

import os
from collections import Counter

import streamlit as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from clipsearch.catalog.schema import ImageRow
from clipsearch.ui.state import open_store

MAX_FOLDERS = 2000  # suggestions beyond this are noise; the box still accepts any folder typed


@st.cache_data(max_entries=4, show_spinner=False)
def indexed_folders(home: str, database_url: str | None, seq: int) -> dict[str, int]:
    """Folder -> indexed images under it (at any depth), for the catalog as of sequence `seq`.

    Keyed by the catalog's sequence number, so an index run that changed something is seen on the
    next page view and an unchanged catalog is never scanned twice.
    """
    store = open_store(home, database_url)
    counts: Counter[str] = Counter()
    with Session(store.catalog.engine) as s:
        rows = s.execute(
            select(ImageRow.path, ImageRow.root).where(ImageRow.status == "ok").execution_options(yield_per=20_000)
        )
        for path, root in rows:
            folder = os.path.dirname(path)
            stop = os.path.dirname(root) if os.path.isabs(root) else ""
            # The folder itself and every ancestor up to the indexed root.
            while folder and folder != stop:
                counts[folder] += 1
                parent = os.path.dirname(folder)
                if parent == folder:
                    break
                folder = parent
    return dict(sorted(counts.most_common(MAX_FOLDERS)))


def similar_folders(folders: dict[str, int], typed: str, limit: int = 5) -> list[str]:
    """Indexed folders whose path contains the last part of what was typed (case-insensitive)."""
    tail = os.path.basename(typed.strip().rstrip("/\\")).lower()
    if not tail:
        return []
    return [f for f in folders if tail in f.lower()][:limit]
