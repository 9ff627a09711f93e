"""Zero-shot tags: which labels each image was given, the label set that gave them, and how far
through the catalog's vector changes tagging has got (so an index run tags only what is new)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from clipsearch.catalog.database import CatalogPart, Database
from clipsearch.catalog.facts import StoreFacts
from clipsearch.catalog.sql import chunks

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

# SQLAlchemy is imported by the methods that use it: an index run reads the label set (plain SQL)
# on every run, and most stores have none.

LABELS_KEY = "tag_labels"  # the label set, its prompts, threshold and label embeddings (JSON)
SEQ_KEY = "tag_seq"  # vector changes up to this sequence number have been tagged


class TagStore(CatalogPart):
    def __init__(self, db: Database, facts: StoreFacts):
        super().__init__(db)
        self._facts = facts

    def label_set(self) -> str | None:
        return self._facts.get(LABELS_KEY)

    def watermark(self) -> int:
        value = self._facts.get(SEQ_KEY)
        return int(value) if value else 0

    def replace(self, label_set: str, tags: Iterable[tuple[int, str, float]], seq: int) -> None:
        """A new label set: all old tags go, these come, in one transaction."""
        from sqlalchemy import delete
        from sqlalchemy.orm import Session

        from clipsearch.catalog.schema import ImageTag

        with Session(self.engine) as s, s.begin():
            s.execute(delete(ImageTag))
            s.add_all(ImageTag(image_id=i, label=label, score=score) for i, label, score in tags)
            self._set(s, LABELS_KEY, label_set)
            self._set(s, SEQ_KEY, str(seq))

    def update(self, image_ids: list[int], tags: Iterable[tuple[int, str, float]], seq: int) -> None:
        """Re-tag these images (new or re-embedded since the watermark) and move the watermark to seq."""
        from sqlalchemy import delete
        from sqlalchemy.orm import Session

        from clipsearch.catalog.schema import ImageTag

        with Session(self.engine) as s, s.begin():
            for chunk in chunks(image_ids):
                s.execute(delete(ImageTag).where(ImageTag.image_id.in_(chunk)))
            s.add_all(ImageTag(image_id=i, label=label, score=score) for i, label, score in tags)
            self._set(s, SEQ_KEY, str(seq))

    def counts(self) -> dict[str, int]:
        """Images per label, over images still in the catalog."""
        from sqlalchemy import func, select
        from sqlalchemy.orm import Session

        from clipsearch.catalog.schema import ImageRow, ImageTag

        stmt = (
            select(ImageTag.label, func.count())
            .join(ImageRow, ImageRow.id == ImageTag.image_id)
            .where(ImageRow.embedding.is_not(None))
            .group_by(ImageTag.label)
        )
        with Session(self.engine) as s:
            return {label: int(n) for label, n in s.execute(stmt).all()}

    def of(self, image_ids: Iterable[int]) -> dict[int, list[tuple[str, float]]]:
        """Each image's tags, best score first."""
        from sqlalchemy import select
        from sqlalchemy.orm import Session

        from clipsearch.catalog.schema import ImageTag

        found: dict[int, list[tuple[str, float]]] = {}
        with Session(self.engine) as s:
            for chunk in chunks([int(i) for i in image_ids]):
                stmt = select(ImageTag.image_id, ImageTag.label, ImageTag.score).where(ImageTag.image_id.in_(chunk))
                for image_id, label, score in s.execute(stmt):
                    found.setdefault(image_id, []).append((label, float(score)))
        return {i: sorted(tags, key=lambda t: -t[1]) for i, tags in found.items()}

    @staticmethod
    def _set(s: Session, key: str, value: str) -> None:
        from clipsearch.catalog.schema import StoreMeta

        s.merge(StoreMeta(key=key, value=value))
