"""FAISS's OpenMP thread count, set for the calling thread only and for a scope."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import faiss


@contextmanager
def openmp_threads(n: int) -> Iterator[None]:
    """Run FAISS calls made by this thread inside the block on `n` OpenMP threads, then restore.

    `omp_set_num_threads` sets the calling thread's own thread-count setting (an OpenMP
    data-environment ICV, one per thread), not the process's: other threads, and threads started
    later, keep theirs, so concurrent searches in a server's threads do not change each other's
    (tests/test_vectors_threads.py checks this). Nothing is set when the count already is `n`.
    """
    before = faiss.omp_get_max_threads()
    if before == n:
        yield
        return
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)
