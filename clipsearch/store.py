"""A store: the catalog, its vector index and its model, opened from settings."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from clipsearch.catalog import Catalog, StoreModel
from clipsearch.catalog.dburl import safe_url
from clipsearch.errors import EmptyStoreError, StoreError
from clipsearch.settings import DEFAULT_MODEL, Settings, check_device

if TYPE_CHECKING:
    from clipsearch.models import Encoder
    from clipsearch.vectors import VectorIndex

# Models (numpy, Pillow, ONNX Runtime) and the vector index (FAISS) are imported where they are
# used: re-indexing an unchanged folder needs neither.


@dataclass
class Store:
    settings: Settings
    catalog: Catalog

    @classmethod
    def open(cls, settings: Settings) -> Store:
        if settings.home.exists() and not settings.home.is_dir():
            raise StoreError(f"the store home {settings.home} is a file, not a folder; pass --home with a folder")
        return cls(settings, Catalog.open(settings.catalog_url))

    @property
    def location(self) -> str:
        return safe_url(self.settings.catalog_url)

    @property
    def model(self) -> StoreModel | None:
        return self.catalog.facts.model()

    def facts(self) -> dict[str, object]:
        """What `clipsearch status --json` and `/api/status` report, before the index is opened
        (callers that hold the index fill in `vectors` and `index_kind`)."""
        model, stats = self.model, self.catalog.facts.stats()
        return {
            "home": str(self.settings.home),
            "catalog": self.location,
            "model": model.model_id if model else None,
            "dim": model.dim if model else None,
            "images": stats.images,
            "failed": stats.failed,
            "vectors": 0,
            "index_kind": None,
            "generations": [g.to_dict() for g in self.catalog.generations.all()],
        }

    def resolve_model(self, requested: str | None) -> str:
        """The model spec to use: the requested one if compatible, else the store's own."""
        current = self.model
        if requested is None:
            return current.spec if current else DEFAULT_MODEL
        if current is not None:
            from clipsearch.catalog.facts import check_model
            from clipsearch.models import model_id_for

            # Checked before any weights load, so a wrong model is refused at once.
            check_model(current, model_id_for(requested))
        return requested

    def load_encoder(self, requested: str | None, device: str = "auto", purpose: str = "query") -> Encoder:
        """The model on the settings' runtime; `purpose` "index" lets auto pick torch on a CUDA GPU."""
        from clipsearch.models import load_encoder

        spec = self.resolve_model(requested)
        device = check_device(device)
        return load_encoder(
            spec, device=device, cache_dir=self.settings.model_cache, runtime=self.settings.runtime, purpose=purpose
        )

    def bind(self, encoder: Encoder) -> None:
        self.catalog.facts.bind_model(encoder.model_id, encoder.spec, encoder.dim)

    def require_model(self) -> StoreModel:
        model = self.model
        if model is None:
            raise EmptyStoreError(
                f"no images have been indexed in {self.settings.home} yet; "
                f"run `clipsearch index PATH` first (or pass --home to use another store)"
            )
        return model

    def vector_index(self, save: bool = True, mapped: bool = False) -> tuple[VectorIndex, list[str]]:
        """The store's index, current with the catalog; `mapped` for a process that queries once
        (see VectorIndex.load)."""
        from clipsearch.vectors import open_index

        model = self.require_model()
        if save and self.next_index_path.exists():
            self.settle_index_files()  # a reembed switched the store but was killed before moving the files
        settings = self.settings
        return open_index(self.catalog, settings.index_path, model.model_id, settings.flat_max, save, mapped)

    def sync_index_file(self) -> list[str]:
        """Bring the saved index file up to date with the catalog; notes worth telling the user."""
        from clipsearch.vectors.header import index_file_current

        model = self.require_model()
        if index_file_current(self.catalog, self.settings.index_path, model.model_id):
            return []
        return self.vector_index()[1]

    # -- index files of vector generations (`clipsearch reembed`) ------------------------------

    @property
    def next_index_path(self) -> Path:
        """Where a reembed saves the index of the generation it is about to switch to."""
        return self.settings.index_path.with_name("vectors.next.faiss")

    def retired_index_path(self, gen_id: int) -> Path:
        """Where the index of a generation a reembed switched away from is kept until dropped."""
        return self.settings.index_path.with_name(f"vectors.gen{gen_id}.faiss")

    def settle_index_files(self) -> None:
        """After a switch: the active index file moves aside for the retired generation and the
        new generation's (saved before the switch) takes its place. Safe to repeat after a crash."""
        model, nxt, current = self.model, self.next_index_path, self.settings.index_path
        if model is None or not nxt.exists():
            return
        if _index_model(nxt) != model.model_id:
            return  # made for a switch that has not committed (yet): the reembed's own save replaces it
        old = _index_model(current)
        retired = self.catalog.generations.find(old) if old is not None and old != model.model_id else None
        # Two processes may settle at once: whichever moves a file first wins, the other finds it gone.
        with contextlib.suppress(FileNotFoundError):
            if retired is not None:
                os.replace(current, self.retired_index_path(retired.id))
            os.replace(nxt, current)

    def close(self) -> None:
        self.catalog.close()


def _index_model(path: Path) -> str | None:
    from clipsearch.vectors.header import IndexFileError, read_header

    try:
        return read_header(path).model_id
    except IndexFileError:
        return None
