"""A store: the catalog, its vector index and its model, opened from settings."""

from __future__ import annotations

from dataclasses import dataclass
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

    def vector_index(self, save: bool = True) -> tuple[VectorIndex, list[str]]:
        from clipsearch.vectors import open_index

        model = self.require_model()
        return open_index(self.catalog, self.settings.index_path, model.model_id, self.settings.flat_max, save=save)

    def sync_index_file(self) -> list[str]:
        """Bring the saved index file up to date with the catalog; notes worth telling the user."""
        from clipsearch.vectors.header import index_file_current

        model = self.require_model()
        if index_file_current(self.catalog, self.settings.index_path, model.model_id):
            return []
        return self.vector_index()[1]

    def close(self) -> None:
        self.catalog.close()
