"""Sharing work between concurrent requests: text batches and the index's readers-writer lock."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from conftest import MODEL

from clipsearch.api.batching import BatchingEncoder, TextBatcher
from clipsearch.api.rwlock import ReadWriteLock
from clipsearch.models import load_encoder


@pytest.fixture(scope="module")
def encoder():
    return load_encoder(MODEL, device="cpu", runtime="torch")


def _wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_texts_that_arrive_while_the_model_runs_share_its_next_call(encoder):
    gate, calls = threading.Event(), []

    def gated(texts):  # the real model, held until the followers have queued
        calls.append(list(texts))
        gate.wait(10)
        return encoder.encode_texts(texts)

    batcher = TextBatcher(gated)
    asks = [["a red square"], ["blue", "two: green"], ["noise"], ["a photo"]]
    got: dict[int, np.ndarray] = {}

    def ask(i):
        got[i] = batcher.encode(asks[i])

    threads = [threading.Thread(target=ask, args=(0,))]
    threads[0].start()
    _wait_until(lambda: len(calls) == 1)
    threads += [threading.Thread(target=ask, args=(i,)) for i in (1, 2, 3)]
    for th in threads[1:]:
        th.start()
    _wait_until(lambda: len(batcher._queue) == 3)
    gate.set()
    for th in threads:
        th.join(10)
    assert calls == [["a red square"], ["blue", "two: green", "noise", "a photo"]]
    assert (batcher.calls, batcher.texts) == (2, 5)
    for i, texts in enumerate(asks):
        assert got[i].shape == (len(texts), encoder.dim)
        np.testing.assert_allclose(got[i], encoder.encode_texts(texts), atol=1e-5)


def test_a_lone_request_is_encoded_at_once_and_errors_reach_every_caller(encoder):
    wrapped = BatchingEncoder(encoder)
    np.testing.assert_allclose(wrapped.encode_text("a photo"), encoder.encode_text("a photo"), atol=1e-6)
    assert (wrapped.batcher.calls, wrapped.model_id, wrapped.dim) == (1, encoder.model_id, encoder.dim)

    def broken(texts):
        raise RuntimeError("the model failed")

    with pytest.raises(RuntimeError, match="the model failed"):
        TextBatcher(broken).encode(["x"])


def test_a_waiting_writer_holds_back_new_readers_and_waits_for_current_ones():
    lock, events = ReadWriteLock(), []
    reader_in, release_reader = threading.Event(), threading.Event()

    def reader(name, hold=None):
        with lock.reading():
            events.append(f"{name} in")
            if hold:
                reader_in.set()
                hold.wait(10)
            events.append(f"{name} out")

    def writer():
        with lock.writing():
            events.append("writer")

    first = threading.Thread(target=reader, args=("r1", release_reader))
    first.start()
    reader_in.wait(10)
    w = threading.Thread(target=writer)
    w.start()
    _wait_until(lambda: lock._writers_waiting == 1)
    late = threading.Thread(target=reader, args=("r2",))
    late.start()
    time.sleep(0.1)
    assert events == ["r1 in"]  # the writer waits for r1; r2 waits for the writer
    release_reader.set()
    for th in (first, w, late):
        th.join(10)
    assert events == ["r1 in", "r1 out", "writer", "r2 in", "r2 out"]


def test_readers_share_the_lock():
    lock, inside, both = ReadWriteLock(), [], threading.Barrier(2, timeout=10)

    def reader():
        with lock.reading():
            inside.append(1)
            both.wait()  # would time out if the second reader had to wait for the first

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(10)
    assert len(inside) == 2
