"""The catalog of one store, opened from its URL and split by use.

Callers take the part they need: an index run `writes`, the FAISS cache reads `vectors`,
a query reads `results`, zero-shot tagging keeps `tags`, and everyone may read the store's `facts`.
"""

from __future__ import annotations

from sqlalchemy.engine import Engine

from clipsearch.catalog.engine import open_engine
from clipsearch.catalog.facts import StoreFacts
from clipsearch.catalog.results import ResultReads
from clipsearch.catalog.tags import TagStore
from clipsearch.catalog.vector_reads import VectorReads
from clipsearch.catalog.writes import IndexWrites


class Catalog:
    """The SQL catalog: the source of truth for images, their metadata and their vectors."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.facts = StoreFacts(engine)
        self.writes = IndexWrites(engine)
        self.vectors = VectorReads(engine, self.facts)
        self.results = ResultReads(engine)
        self.tags = TagStore(engine, self.facts)

    @classmethod
    def open(cls, url: str) -> Catalog:
        """Open (creating or upgrading its schema as needed) the catalog at `url`; raises StoreError."""
        return cls(open_engine(url))

    def close(self) -> None:
        self.engine.dispose()
