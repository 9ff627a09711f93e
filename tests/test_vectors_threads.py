"""The single-query search's OpenMP setting stays in the thread that made it."""

from __future__ import annotations

import threading

import faiss
import numpy as np

from clipsearch.vectors import VectorIndex
from clipsearch.vectors.policy import IndexKind, Layout
from clipsearch.vectors.threads import openmp_threads


def _count_in_new_thread() -> int:
    seen: list[int] = []
    th = threading.Thread(target=lambda: seen.append(faiss.omp_get_max_threads()))
    th.start()
    th.join()
    return seen[0]


def test_openmp_threads_is_scoped_to_the_calling_thread():
    base = faiss.omp_get_max_threads()
    want = base + 1  # differs from every thread's count, whatever OMP_NUM_THREADS says
    inside, other = [], []
    entered, checked = threading.Event(), threading.Event()

    def searcher():
        with openmp_threads(want):
            inside.append(faiss.omp_get_max_threads())
            entered.set()
            checked.wait(10)
        inside.append(faiss.omp_get_max_threads())

    th = threading.Thread(target=searcher)
    th.start()
    entered.wait(10)
    other.append(faiss.omp_get_max_threads())  # this thread, while the other holds its setting
    other.append(_count_in_new_thread())  # a thread started meanwhile
    checked.set()
    th.join(10)
    assert inside == [want, base]
    assert other == [base, base]


def test_a_search_leaves_the_callers_setting_as_it_was():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(2000, 16)).astype(np.float32)
    index = VectorIndex.empty(Layout(IndexKind.IVFPQ, nlist=8, pq_m=4), 16, "m")
    index.train(vectors)
    index.upsert(np.arange(2000), vectors)
    base = faiss.omp_get_max_threads()
    with openmp_threads(base + 1):
        index.search(vectors[:1], 5)
        assert faiss.omp_get_max_threads() == base + 1
    assert faiss.omp_get_max_threads() == base
