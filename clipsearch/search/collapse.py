"""Collapsing near-duplicates among search results: a group of near-identical images (bursts,
resized or re-encoded copies) shows once, as its best member, with the others attached.

Groups are found as `clipsearch duplicates` finds them (each ranked candidate's index neighbours
scored exactly, joined at the same cosine threshold), so a copy that ranked further down, past
the results fetched, still joins its group.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clipsearch.catalog import Catalog, ImageMeta, RowFilter
from clipsearch.search.duplicates import DEFAULT_THRESHOLD, NEIGHBOURS, components, keep_first, pairs_of
from clipsearch.vectors import VectorIndex

# Candidates ranked per group wanted (a page of 20 groups looks at 80 images at first).
POOL_FACTOR = 4
COLLAPSE_THRESHOLD = DEFAULT_THRESHOLD


@dataclass(frozen=True)
class Group:
    """One shown result: `best` (by keep_first) and the other members, each with its query score."""

    best: ImageMeta
    score: float
    others: list[tuple[ImageMeta, float]]


def group_ranked(
    catalog: Catalog,
    index: VectorIndex,
    q: np.ndarray,
    ids: np.ndarray,
    rows: RowFilter | None,
    threshold: float = COLLAPSE_THRESHOLD,
) -> list[Group]:
    """The ranked candidates `ids` (best first) as groups, ordered by their best-scoring member."""
    got, vectors = catalog.vectors.fetch(ids.tolist())
    pairs = pairs_of(catalog, index, got, vectors, threshold, NEIGHBOURS) if len(got) else np.zeros((0, 3))
    extra = sorted(set(pairs[:, :2].astype(np.int64).ravel().tolist()) - set(got.tolist()))
    if extra and rows is not None:  # a copy outside the filter is not a result, so not a member
        allowed = set(catalog.results.filtered_ids(rows, among=extra) or [])
        outside = sorted(set(extra) - allowed)
        pairs = pairs[~np.isin(pairs[:, :2].astype(np.int64), outside).any(axis=1)]
        extra = sorted(allowed)
    roots = {i: i for i in ids.tolist()}
    for members in components(pairs):
        head = min(members, key=lambda i: (i not in roots, i))  # any candidate stands for its group
        for i in members:
            roots[i] = head
    extra_ids, extra_vectors = catalog.vectors.fetch(extra) if extra else (np.zeros(0, np.int64), None)
    score = dict(zip(got.tolist(), (vectors @ q).tolist(), strict=True))
    if extra_vectors is not None:
        score.update(zip(extra_ids.tolist(), (extra_vectors @ q).tolist(), strict=True))
    return _groups(catalog, ids, roots, score)


def _groups(catalog: Catalog, ids: np.ndarray, roots: dict[int, int], score: dict[int, float]) -> list[Group]:
    by_root: dict[int, list[int]] = {}
    for i in roots:
        if i in score:
            by_root.setdefault(roots[i], []).append(i)
    meta = catalog.results.meta([i for members in by_root.values() for i in members])
    order = {int(i): n for n, i in enumerate(ids.tolist())}
    out: list[tuple[int, Group]] = []
    for members in by_root.values():
        found = sorted((meta[i] for i in members if i in meta), key=keep_first)
        if not found:
            continue
        first = min(order.get(m.id, len(order)) for m in found)
        others = sorted(((m, score[m.id]) for m in found[1:]), key=lambda ms: -ms[1])
        out.append((first, Group(found[0], score[found[0].id], others)))
    out.sort(key=lambda pair: pair[0])
    return [group for _, group in out]
