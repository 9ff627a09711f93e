"""Vector generations: a second model's vectors built beside the active ones, then switched to.

The active generation's vectors are the images rows' `embedding` column (the query path reads
them there, unchanged). `clipsearch reembed` fills generation_vectors for a "building" generation;
the switch, one transaction, swaps the two: the active vectors move into generation_vectors
(the generation becomes "retired", kept until dropped) and the new ones into the images rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from clipsearch.catalog.database import CatalogPart, Database
from clipsearch.catalog.facts import MODEL_KEY, SEQ_KEY, StoreFacts
from clipsearch.catalog.records import FileStatus
from clipsearch.errors import StoreError

if TYPE_CHECKING:
    import numpy as np

# `all` (what `clipsearch status` shows) is plain SQL; the reembed's reads and writes import
# SQLAlchemy and numpy when they run, so status stays as light as before generations existed.

ACTIVE, BUILDING, RETIRED = "active", "building", "retired"
_OK = FileStatus.OK.value
_FAILED_PREFIX = "the new model could not read it: "  # a SQL literal: no quotes


@dataclass(frozen=True)
class GenerationInfo:
    id: int
    model_id: str
    spec: str
    dim: int
    state: str
    embedded: int  # images with a vector of this generation (current with their row, when building)
    failed: int  # images this generation's model could not embed (building only)
    total: int  # images the generation must cover: every image with an active vector

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model": self.model_id,
            "state": self.state,
            "embedded": self.embedded,
            "failed": self.failed,
            "total": self.total,
        }


@dataclass(frozen=True)
class PendingImage:
    """An image a building generation still needs a vector for."""

    id: int
    path: str
    path_bytes: bytes | None
    root: str
    size: int
    mtime_ns: int
    content_hash: str | None
    vec_seq: int  # its row's vec_seq when read: recorded with the vector made for it


@dataclass(frozen=True)
class GenerationResult:
    image_id: int
    src_seq: int
    vector: np.ndarray | None
    error: str | None = None


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Generations(CatalogPart):
    def __init__(self, db: Database, facts: StoreFacts):
        super().__init__(db)
        self._facts = facts

    # -- reading ------------------------------------------------------------------------------

    def all(self) -> list[GenerationInfo]:
        """Every generation, the active one first, then by id."""
        gens = self.db.rows([("SELECT id, model_id, spec, dim, state FROM generations ORDER BY id", ())])
        # Images with an active vector are the "ok" ones: counted on the status index, not by
        # reading every row's vector (a status request must stay cheap at 1M images).
        total = int(self.db.rows([("SELECT count(*) FROM images WHERE status = ?", (_OK,))])[0][0])
        out = []
        for gen_id, model_id, spec, dim, state in gens:
            embedded, failed = (total, 0) if state == ACTIVE else self._counts(gen_id, state)
            out.append(GenerationInfo(gen_id, model_id, spec, int(dim), state, embedded, failed, total))
        return sorted(out, key=lambda g: (g.state != ACTIVE, g.id))

    def _counts(self, gen_id: int, state: str) -> tuple[int, int]:
        """(vectors, failures) of a generation that is not active."""
        sql = "SELECT count(*), sum(CASE WHEN g.embedding IS NULL THEN 1 ELSE 0 END) FROM generation_vectors g"
        params: tuple[Any, ...] = (gen_id,)
        if state == BUILDING:
            # Only vectors made from the row as it is now count; the rest are made again.
            sql += " JOIN images i ON i.id = g.image_id AND i.vec_seq = g.src_seq AND i.status = ?"
            params = (_OK, gen_id)
        n, failed = self.db.rows([(sql + " WHERE g.generation_id = ?", params)])[0]
        return int(n) - int(failed or 0), int(failed or 0)

    def find(self, model_id: str) -> GenerationInfo | None:
        return next((g for g in self.all() if g.model_id == model_id), None)

    def building(self) -> GenerationInfo | None:
        return next((g for g in self.all() if g.state == BUILDING), None)

    def pending(self, gen_id: int, after_id: int = 0, limit: int = 1000) -> list[PendingImage]:
        """Images with an active vector but none (or a stale one) in generation `gen_id`, by id."""
        from sqlalchemy import select
        from sqlalchemy.orm import Session

        from clipsearch.catalog.schema import GenerationVector, ImageRow

        gv = GenerationVector
        stmt = (
            select(
                ImageRow.id,
                ImageRow.path,
                ImageRow.path_bytes,
                ImageRow.root,
                ImageRow.size,
                ImageRow.mtime_ns,
                ImageRow.content_hash,
                ImageRow.vec_seq,
            )
            .outerjoin(gv, (gv.generation_id == gen_id) & (gv.image_id == ImageRow.id))
            .where(
                ImageRow.embedding.is_not(None),
                ImageRow.id > after_id,
                (gv.image_id.is_(None)) | (gv.src_seq != ImageRow.vec_seq),
            )
            .order_by(ImageRow.id)
            .limit(limit)
        )
        with Session(self.engine) as s:
            return [PendingImage(*row) for row in s.execute(stmt).all()]

    def count_pending(self, gen_id: int) -> int:
        """How many images `pending` would list."""
        from sqlalchemy import func, select
        from sqlalchemy.orm import Session

        from clipsearch.catalog.schema import GenerationVector, ImageRow

        gv = GenerationVector
        stmt = (
            select(func.count())
            .select_from(ImageRow)
            .outerjoin(gv, (gv.generation_id == gen_id) & (gv.image_id == ImageRow.id))
            .where(ImageRow.embedding.is_not(None), (gv.image_id.is_(None)) | (gv.src_seq != ImageRow.vec_seq))
        )
        with Session(self.engine) as s:
            return int(s.scalar(stmt) or 0)

    def vectors(self, gen_id: int, dim: int, chunk: int = 20_000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, float32 vectors) of a generation, in chunks by image id."""
        from sqlalchemy import select

        from clipsearch.catalog.schema import GenerationVector
        from clipsearch.catalog.vector_reads import vector_pages

        gv = GenerationVector

        def page(last: int) -> Any:
            return (
                select(gv.image_id, gv.embedding)
                .where(gv.generation_id == gen_id, gv.embedding.is_not(None), gv.image_id > last)
                .order_by(gv.image_id)
                .limit(chunk)
            )

        return vector_pages(self.engine, page, dim)

    def sample(self, gen_id: int, dim: int, n: int, seed: int = 0) -> np.ndarray:
        """Up to n of a generation's vectors, spread over it (for training a quantiser)."""
        import numpy as np
        from sqlalchemy import select
        from sqlalchemy.orm import Session

        from clipsearch.catalog.codec import decode_vectors
        from clipsearch.catalog.schema import GenerationVector
        from clipsearch.catalog.sql import chunks

        gv = GenerationVector
        with Session(self.engine) as s:
            stmt = select(gv.image_id).where(gv.generation_id == gen_id, gv.embedding.is_not(None))
            ids = np.array(s.scalars(stmt).all(), dtype=np.int64)
            if len(ids) > n:
                ids = np.sort(np.random.default_rng(seed).choice(ids, size=n, replace=False))
            blobs: list[bytes] = []
            for chunk in chunks(ids.tolist()):
                stmt2 = select(gv.embedding).where(gv.generation_id == gen_id, gv.image_id.in_(chunk))
                blobs += [b for b in s.scalars(stmt2).all() if b is not None]
        return decode_vectors(blobs, dim)

    # -- writing ------------------------------------------------------------------------------

    def start(self, model_id: str, spec: str, dim: int) -> GenerationInfo:
        """A building generation for this model (a retired one of the same model starts again empty)."""
        from sqlalchemy import delete, select
        from sqlalchemy.orm import Session

        from clipsearch.catalog.schema import Generation, GenerationVector

        with Session(self.engine) as s, s.begin():
            old = s.scalars(select(Generation).where(Generation.model_id == model_id)).all()
            for g in old:
                s.execute(delete(GenerationVector).where(GenerationVector.generation_id == g.id))
                s.delete(g)
            s.add(Generation(model_id=model_id, spec=spec, dim=dim, state=BUILDING, created_at=_now()))
        found = self.building()
        assert found is not None  # just written
        return found

    def write(self, gen_id: int, results: Sequence[GenerationResult]) -> None:
        """One committed batch of a building generation (replacing stale vectors of the same images)."""
        from sqlalchemy import delete
        from sqlalchemy.orm import Session

        from clipsearch.catalog.codec import encode_vector
        from clipsearch.catalog.schema import GenerationVector
        from clipsearch.catalog.sql import chunks

        if not results:
            return
        with Session(self.engine) as s, s.begin():
            for chunk in chunks([r.image_id for r in results]):
                s.execute(
                    delete(GenerationVector).where(
                        GenerationVector.generation_id == gen_id, GenerationVector.image_id.in_(chunk)
                    )
                )
            s.add_all(
                GenerationVector(
                    generation_id=gen_id,
                    image_id=r.image_id,
                    src_seq=r.src_seq,
                    embedding=encode_vector(r.vector),
                    error=r.error,
                )
                for r in results
            )

    def drop(self, gen_id: int) -> None:
        """Delete a generation that is not active, with its vectors."""
        from sqlalchemy import delete
        from sqlalchemy.orm import Session

        from clipsearch.catalog.schema import Generation, GenerationVector

        with Session(self.engine) as s, s.begin():
            g = s.get(Generation, gen_id)
            if g is None:
                return
            if g.state == ACTIVE:
                raise StoreError(f"{g.model_id} is the store's active model; it cannot be dropped")
            s.execute(delete(GenerationVector).where(GenerationVector.generation_id == gen_id))
            s.delete(g)

    def switch(self, gen_id: int) -> int:
        """Make a complete building generation the active one, in one transaction; returns the new sequence.

        The caller holds the whole-store lock (no index run writes meanwhile) and has embedded
        every pending image. Images the new model could not embed become failed, with the reason.
        """
        from sqlalchemy import delete, select, text, update
        from sqlalchemy.orm import Session

        from clipsearch.catalog.batch_writes import bump_rows_seq
        from clipsearch.catalog.schema import Generation, GenerationVector, StoreMeta

        gv = GenerationVector.__tablename__
        with Session(self.engine) as s, s.begin():
            new = s.get(Generation, gen_id)
            old = s.scalars(select(Generation).where(Generation.state == ACTIVE)).one_or_none()
            if new is None or new.state != BUILDING or old is None:
                raise StoreError("no reembed is under way to switch to")
            row = s.execute(select(StoreMeta).where(StoreMeta.key == SEQ_KEY).with_for_update()).scalar_one()
            seq = int(row.value) + 1
            params = {"old": old.id, "new": new.id, "seq": seq, "model": new.model_id}
            # The active vectors are kept as the retired generation (until `reembed --drop`).
            s.execute(
                text(
                    f"INSERT INTO {gv} (generation_id, image_id, src_seq, embedding, error) "
                    "SELECT :old, id, vec_seq, embedding, NULL FROM images WHERE embedding IS NOT NULL"
                ),
                params,
            )
            mine = f"FROM {gv} g WHERE g.generation_id = :new AND g.image_id = images.id"
            s.execute(
                text(
                    f"UPDATE images SET status = :failed, "
                    f"error = COALESCE((SELECT '{_FAILED_PREFIX}' || g.error {mine}), 'not re-embedded') "
                    f"WHERE embedding IS NOT NULL AND NOT EXISTS (SELECT 1 {mine} AND g.embedding IS NOT NULL)"
                ),
                {**params, "failed": FileStatus.FAILED.value},
            )
            s.execute(
                text(
                    f"UPDATE images SET embedding = (SELECT g.embedding {mine}), model_id = :model, vec_seq = :seq "
                    "WHERE embedding IS NOT NULL"
                ),
                params,
            )
            s.execute(delete(GenerationVector).where(GenerationVector.generation_id == new.id))
            now = _now()
            s.execute(update(Generation).where(Generation.id == old.id).values(state=RETIRED, switched_at=now))
            s.execute(update(Generation).where(Generation.id == new.id).values(state=ACTIVE, switched_at=now))
            row.value = str(seq)
            bump_rows_seq(s)  # images the new model could not embed became failed rows
            model = {"model_id": new.model_id, "spec": new.spec, "dim": new.dim}
            s.merge(StoreMeta(key=MODEL_KEY, value=json.dumps(model)))
        self._facts.forget_model()
        return seq
