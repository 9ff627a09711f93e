"""Text encodings that arrive together share one model call.

Concurrent requests each ask for their query's text vectors. The first caller to find the model
idle encodes at once (a lone query waits for nothing); callers that arrive while it runs queue up,
and when it finishes one of them encodes everything queued in a single call. One model call at a
time, as before, but a batch of N texts costs less than N calls: the runtime's per-call overhead
and its thread pool's start-up are paid once, and small matrix products fill the cores better.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

from clipsearch.models import Encoder

MAX_BATCH_TEXTS = 32  # more texts than this in one call only lengthens the wait of the first


class _Job:
    __slots__ = ("texts", "vectors", "error", "done")

    def __init__(self, texts: list[str]):
        self.texts = texts
        self.vectors: np.ndarray | None = None
        self.error: BaseException | None = None
        self.done = False


class TextBatcher:
    def __init__(self, encode: Callable[[list[str]], np.ndarray], max_texts: int = MAX_BATCH_TEXTS):
        self._encode = encode
        self._max = max_texts
        self._cond = threading.Condition()
        self._queue: list[_Job] = []
        self._running = False
        self.calls = 0  # model calls made, and texts encoded: how much sharing happened
        self.texts = 0

    def encode(self, texts: list[str]) -> np.ndarray:
        job = _Job(list(texts))
        with self._cond:
            self._queue.append(job)
            while not job.done:
                if self._running:
                    self._cond.wait()
                    continue
                batch = self._take()
                self._running = True
                self._cond.release()
                try:
                    vectors, error = self._run(batch)
                finally:
                    self._cond.acquire()
                self._hand_out(batch, vectors, error)
        if job.error is not None:
            raise job.error
        assert job.vectors is not None
        return job.vectors

    def _take(self) -> list[_Job]:
        """The oldest queued jobs, at least one, up to the batch's text cap."""
        batch, count = [], 0
        while self._queue and (not batch or count + len(self._queue[0].texts) <= self._max):
            job = self._queue.pop(0)
            batch.append(job)
            count += len(job.texts)
        return batch

    def _run(self, batch: list[_Job]) -> tuple[np.ndarray | None, BaseException | None]:
        try:
            return self._encode([text for job in batch for text in job.texts]), None
        except BaseException as exc:  # handed to every caller in the batch, raised in its own thread
            return None, exc

    def _hand_out(self, batch: list[_Job], vectors: np.ndarray | None, error: BaseException | None) -> None:
        start = 0
        for job in batch:
            if vectors is not None:
                job.vectors = vectors[start : start + len(job.texts)]
                start += len(job.texts)
            job.error, job.done = error, True
        self.calls += 1
        self.texts += start
        self._running = False
        self._cond.notify_all()


class BatchingEncoder(Encoder):
    """An encoder whose text encodings go through a TextBatcher; everything else is the wrapped one's."""

    def __init__(self, inner: Encoder, max_texts: int = MAX_BATCH_TEXTS):
        self.inner = inner
        for name in ("model_id", "spec", "dim", "preprocess_cfg", "context_length", "runtime", "device", "is_random"):
            setattr(self, name, getattr(inner, name))
        self.batcher = TextBatcher(inner.encode_texts, max_texts)

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        return self.batcher.encode(texts)

    def encode_images(self, pixels: np.ndarray) -> np.ndarray:
        return self.inner.encode_images(pixels)

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)
