"""What the HTTP API serves, without HTTP: one store's search service, its images and its facts.

The model, catalog and index load once per server process. Every search first checks the
catalog's change counter (one small read) and catches the index up with what an index run
committed since (as the web page does), so a running server sees new batches without a restart.

Route handlers run in threads, and concurrent searches run together: they share the FAISS index
under a readers-writer lock (searching only reads it; catching up mutates it, alone), read the
catalog through its connection pool, and their text encodings that arrive together go to the
model as one batch (clipsearch.api.batching).
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from typing import BinaryIO

from PIL import Image

from clipsearch import originals
from clipsearch.api.batching import BatchingEncoder
from clipsearch.api.rwlock import ReadWriteLock
from clipsearch.errors import ClipsearchError, EmptyStoreError, ImageDecodeError, QueryError
from clipsearch.imaging import load_rgb
from clipsearch.search import SearchRequest, SearchResult, SearchService
from clipsearch.store import Store
from clipsearch.thumbnails import Thumbnails
from clipsearch.vectors.threads import openmp_threads


class UnknownImageError(ClipsearchError):
    """No indexed image has this id (HTTP 404)."""


class UploadTooLargeError(ClipsearchError):
    """An upload over the byte or pixel cap (HTTP 413)."""


@dataclass(frozen=True)
class Limits:
    max_upload_bytes: int = 20 * 1024 * 1024
    max_upload_megapixels: float = 40.0


class _SharedService(SearchService):
    """The search service of a server: the engine catches the shared index up, under its write lock."""

    def refresh(self) -> None:
        pass


class ApiEngine:
    def __init__(self, store: Store, limits: Limits = Limits()):
        self.store = store
        self.limits = limits
        self.thumbs = Thumbnails.for_settings(store.settings)
        self._service: SearchService | None = None
        self._opening = threading.Lock()
        self._index_lock = ReadWriteLock()

    # -- the search service, opened once (or on the first request after a first index run) ------

    def service(self) -> SearchService:
        if self._service is None:
            with self._opening:
                if self._service is None:
                    service = _SharedService.open(self.store)
                    service.encoder = BatchingEncoder(service.encoder)
                    self._service = service
        return self._service

    def try_open(self) -> str | None:
        """Load the model and index now; a message when the store cannot answer yet."""
        try:
            self.service()
        except EmptyStoreError as exc:
            return str(exc)
        return None

    @property
    def loaded(self) -> bool:
        return self._service is not None

    def search(self, request: SearchRequest) -> SearchResult:
        service = self.service()
        self._catch_up(service)
        # FAISS on one OpenMP thread per request: concurrent requests already fill the cores, and a
        # team of OpenMP threads spinning at its barriers starved the event loop on a busy machine
        # (a 30-image flat search took 115 ms, and the HTTP work around it 30 ms, at load 24 on 2 cores).
        with self._index_lock.reading(), openmp_threads(1):
            return service.search(request)

    def _catch_up(self, service: SearchService) -> None:
        """Apply what index runs committed since the last request (one counter read when nothing did)."""
        if self.store.catalog.facts.current_seq() == service.index.header.watermark:
            return
        with self._index_lock.writing():
            if service.apply_changes():  # a reembed switched the store to another model
                service.encoder = BatchingEncoder(service.encoder)

    def encoding_counts(self) -> dict[str, int]:
        """Model calls for query texts and the texts they encoded, since start (texts/calls: the sharing)."""
        encoder = self._service.encoder if self._service else None
        if not isinstance(encoder, BatchingEncoder):
            return {}
        return {"text_calls": encoder.batcher.calls, "texts_encoded": encoder.batcher.texts}

    def warnings(self) -> list[str]:
        encoder = self._service.encoder if self._service else None
        if encoder is None or not encoder.is_random:
            return []
        return [f"{encoder.model_id} has random weights; rankings are meaningless (for tests and benchmarks only)"]

    # -- facts -----------------------------------------------------------------------------

    def status(self) -> dict:
        """The store's facts, as `clipsearch status --json` prints them."""
        info = self.store.facts()
        if info["model"] is not None and info["images"]:
            service = self.service()
            self._catch_up(service)
            with self._index_lock.reading():
                info.update(vectors=service.index.ntotal, index_kind=service.index.kind)
        return info

    # -- images, by catalog id only ----------------------------------------------------------

    def original(self, image_id: int) -> originals.Original:
        found = originals.lookup(self.store.catalog, image_id)
        if found is None:
            raise UnknownImageError(f"no indexed image has id {image_id}")
        return found

    def open_original(self, image_id: int) -> tuple[originals.Original, BinaryIO, int]:
        found = self.original(image_id)
        fh, st = originals.open_original(found)
        return found, fh, st.st_size

    def thumbnail(self, image_id: int) -> bytes:
        found = self.original(image_id)
        if found.content_hash and self.thumbs.has(found.content_hash):
            return self.thumbs.path_for(found.content_hash).read_bytes()
        return self.thumbs.make(originals.read_original(found))

    # -- uploads -------------------------------------------------------------------------------

    def query_image(self, data: bytes, name: str) -> Image.Image:
        """An uploaded example image, decoded once its size and pixel count are within the caps."""
        if len(data) > self.limits.max_upload_bytes:
            raise UploadTooLargeError(
                f"the upload is {len(data):,} bytes, over the {self.limits.max_upload_bytes:,}-byte limit"
            )
        cap = self.limits.max_upload_megapixels
        try:
            with Image.open(io.BytesIO(data)) as header:  # the header only: no pixels decoded yet
                width, height = header.size
        except Exception as exc:
            raise QueryError(f"the uploaded file {name!r} is not an image this server can read") from exc
        if width * height > cap * 1e6:
            raise UploadTooLargeError(
                f"the uploaded image is {width}x{height} ({width * height / 1e6:.1f} megapixels), "
                f"over the {cap:g} MP limit"
            )
        try:
            return load_rgb(data, cap)[0]
        except ImageDecodeError as exc:
            raise QueryError(f"the uploaded file {name!r} cannot be used as an example: {exc}") from exc
