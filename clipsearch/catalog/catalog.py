"""The catalog of one store, opened from its URL and split by use.

Callers take the part they need: an index run `writes`, the FAISS cache reads `vectors`,
a query reads `results`, zero-shot tagging keeps `tags`, `clipsearch reembed` builds and switches
`generations`, and everyone may read the store's `facts`.
Each part is imported when first used, so a command loads only the database code it runs.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from clipsearch.catalog.database import Database

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from clipsearch.catalog.facts import StoreFacts
    from clipsearch.catalog.generations import Generations
    from clipsearch.catalog.results import ResultReads
    from clipsearch.catalog.tags import TagStore
    from clipsearch.catalog.vector_reads import VectorReads
    from clipsearch.catalog.writes import IndexWrites


class Catalog:
    """The SQL catalog: the source of truth for images, their metadata and their vectors."""

    def __init__(self, db: Database):
        self.db = db

    @property
    def engine(self) -> Engine:
        """SQLAlchemy's engine (imports SQLAlchemy on first use; the hot reads run without it)."""
        return self.db.engine

    @cached_property
    def facts(self) -> StoreFacts:
        from clipsearch.catalog.facts import StoreFacts

        return StoreFacts(self.db)

    @cached_property
    def writes(self) -> IndexWrites:
        from clipsearch.catalog.writes import IndexWrites

        return IndexWrites(self.db)

    @cached_property
    def vectors(self) -> VectorReads:
        from clipsearch.catalog.vector_reads import VectorReads

        return VectorReads(self.db, self.facts)

    @cached_property
    def results(self) -> ResultReads:
        from clipsearch.catalog.results import ResultReads

        return ResultReads(self.db)

    @cached_property
    def tags(self) -> TagStore:
        from clipsearch.catalog.tags import TagStore

        return TagStore(self.db, self.facts)

    @cached_property
    def generations(self) -> Generations:
        from clipsearch.catalog.generations import Generations

        return Generations(self.db, self.facts)

    @classmethod
    def open(cls, url: str) -> Catalog:
        """Open (creating or upgrading its schema as needed) the catalog at `url`; raises StoreError."""
        from clipsearch.catalog.opening import open_database

        return cls(open_database(url))

    def close(self) -> None:
        self.db.dispose()
