"""Near-duplicate images: groups of images whose vectors are (almost) the same.

Each stored vector asks the store's index for its nearest neighbours; pairs at or above the
threshold (scored exactly against the catalog's vectors) are joined into groups, so a burst of
ten shots is one group even though each shot only looks at its own neighbours. Up to the flat
limit (50,000 images) that is an exact search; past it the IVF-PQ index answers, so the work
grows with n, not n².
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from clipsearch.catalog import Catalog, ImageMeta
from clipsearch.errors import QueryError
from clipsearch.vectors import VectorIndex

DEFAULT_THRESHOLD = 0.95
# Neighbours examined per image; larger groups still come together through shared members.
NEIGHBOURS = 10
CHUNK = 2048


@dataclass(frozen=True)
class DuplicateGroup:
    """Images whose vectors are near-identical; the first member is the one to keep."""

    members: list[ImageMeta]  # in keep_first order: the most pixels first, then the biggest file, ...
    scores: list[float]  # each member's cosine similarity to the first

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": len(self.members),
            "bytes": sum(m.size for m in self.members),
            "images": [
                {"id": m.id, "path": m.path, "score": round(s, 6), "width": m.width, "height": m.height, "size": m.size}
                for m, s in zip(self.members, self.scores, strict=True)
            ],
        }


def find_duplicates(
    catalog: Catalog,
    index: VectorIndex,
    threshold: float = DEFAULT_THRESHOLD,
    progress: Callable[[int], None] | None = None,
    neighbours: int = NEIGHBOURS,
) -> list[DuplicateGroup]:
    """Groups of near-duplicates, biggest first (ties: the most bytes first)."""
    if not 0 < threshold <= 1:
        raise QueryError(f"the threshold is a cosine similarity in (0, 1] (got {threshold})")
    pairs = near_pairs(catalog, index, threshold, progress, neighbours)
    groups = components(pairs)
    return _describe(catalog, groups)


def near_pairs(
    catalog: Catalog,
    index: VectorIndex,
    threshold: float,
    progress: Callable[[int], None] | None = None,
    neighbours: int = NEIGHBOURS,
) -> np.ndarray:
    """(a, b, cosine) rows for every pair of ids found at or above the threshold, a < b."""
    found = []
    for ids, vectors in catalog.vectors.changed(0, None, chunk=CHUNK):
        found.append(pairs_of(catalog, index, ids, vectors, threshold, neighbours))
        if progress:
            progress(len(ids))
    return _unique_pairs(found)


def pairs_of(
    catalog: Catalog, index: VectorIndex, ids: np.ndarray, vectors: np.ndarray, threshold: float, neighbours: int
) -> np.ndarray:
    """(a, b, cosine) rows, a < b, between these images and their index neighbours at or above the threshold."""
    scores, nbrs = index.search(vectors, neighbours + 1)
    if index.kind != "flat":
        # Compressed (PQ) scores cannot tell a copy from a lookalike (at dim 512 a neighbour at
        # cosine 0.79 scores 0.92 of the image's own score): every neighbour is scored exactly.
        scores = _exact_scores(catalog, vectors, nbrs)
    keep = (nbrs >= 0) & (nbrs != ids[:, None]) & (scores >= threshold)
    rows, cols = np.nonzero(keep)
    a, b = ids[rows], nbrs[rows, cols]
    return np.stack([np.minimum(a, b), np.maximum(a, b), scores[rows, cols]], axis=1)


def _unique_pairs(found: list[np.ndarray]) -> np.ndarray:
    if not found:
        return np.zeros((0, 3))
    pairs = np.concatenate(found)
    _, first = np.unique(pairs[:, :2].astype(np.int64), axis=0, return_index=True)
    return pairs[np.sort(first)]


def keep_first(m: ImageMeta) -> tuple[int, int, float, str]:
    """Sort key putting the member to keep first: the most pixels, then the biggest file, then the
    earliest capture time (undated last), then the path."""
    taken = m.taken_at.timestamp() if m.taken_at else float("inf")
    return (-(m.width or 0) * (m.height or 0), -m.size, taken, m.path)


def _exact_scores(catalog: Catalog, vectors: np.ndarray, nbrs: np.ndarray) -> np.ndarray:
    """Cosine of each row's vector with each of its neighbours' stored vectors (-1 where none)."""
    flat = nbrs.ravel()
    ids, stored = catalog.vectors.fetch(np.unique(flat[flat >= 0]).tolist())
    out = np.full(nbrs.shape, -1.0, dtype=np.float32)
    if not len(ids):
        return out
    order = np.argsort(ids)
    ids, stored = ids[order], stored[order]
    at = np.clip(np.searchsorted(ids, nbrs), 0, len(ids) - 1)
    found = ids[at] == nbrs
    scores = np.einsum("ij,ikj->ik", vectors, stored[at])
    out[found] = scores[found]
    return out


def components(pairs: np.ndarray) -> list[list[int]]:
    """Connected components of the pair graph (union-find with path halving)."""
    parent: dict[int, int] = {}

    def root(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs[:, :2].astype(np.int64):
        ra, rb = root(int(a)), root(int(b))
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[int]] = {}
    for x in parent:
        groups.setdefault(root(x), []).append(x)
    return list(groups.values())


def _describe(catalog: Catalog, groups: list[list[int]]) -> list[DuplicateGroup]:
    everyone = [i for ids in groups for i in ids]
    meta = catalog.results.meta(everyone)
    got, vectors = catalog.vectors.fetch(everyone)
    by_id = dict(zip(got.tolist(), vectors, strict=True))
    out = []
    for ids in groups:
        members = [meta[i] for i in ids if i in meta and i in by_id]  # others left the catalog meanwhile
        if len(members) < 2:
            continue
        members.sort(key=keep_first)
        best = by_id[members[0].id]
        out.append(DuplicateGroup(members, [float(by_id[m.id] @ best) for m in members]))
    out.sort(key=lambda g: (-len(g.members), -sum(m.size for m in g.members), g.members[0].path))
    return out
