"""Facts about the whole store: its key/value meta, bound model, sequence counter, counts, failures."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime, timezone

from clipsearch.catalog.database import CatalogPart, Database
from clipsearch.catalog.records import CatalogStats, FileStatus, StoreModel
from clipsearch.errors import ModelMismatchError, StoreError

# SQLAlchemy is imported by the methods that write or count: reading facts (the model, the
# sequence counter) is plain SQL, on every command's path.

SEQ_KEY = "vector_seq"  # meta key of the sequence counter: the last number given to a vector change
# Moved by every transaction that writes image rows (new, changed, moved, failed, deleted; a
# reembed's switch): a run that sees it where it left it knows no one else changed the rows.
ROWS_SEQ_KEY = "rows_seq"
MODEL_KEY = "model"


class StoreFacts(CatalogPart):
    def __init__(self, db: Database):
        super().__init__(db)
        # Once read the model is kept: every vector fetch needs its dim. Only a reembed's switch
        # changes it (forget_model; other processes notice the sequence counter moving).
        self._model: StoreModel | None = None

    def get(self, key: str) -> str | None:
        # Plain SQL: every query and index run reads the model and the sequence counter.
        rows = self.db.rows([("SELECT value FROM store_meta WHERE key = ?", (key,))])
        return rows[0][0] if rows else None

    def set(self, key: str, value: str) -> None:
        from sqlalchemy.orm import Session

        from clipsearch.catalog.schema import StoreMeta

        with Session(self.engine) as s, s.begin():
            s.merge(StoreMeta(key=key, value=value))

    def model(self) -> StoreModel | None:
        if self._model is None:
            raw = self.get(MODEL_KEY)
            if raw:
                data = json.loads(raw)
                self._model = StoreModel(model_id=data["model_id"], spec=data["spec"], dim=int(data["dim"]))
        return self._model

    def forget_model(self) -> None:
        """Read the model again on next use (a reembed switched the store to another)."""
        self._model = None

    def bind_model(self, model_id: str, spec: str, dim: int) -> StoreModel:
        """Record the store's model (its first, active generation) on first use; refuse a different one afterwards."""
        current = self.model()
        if current is None:
            current = self._bind_first(StoreModel(model_id=model_id, spec=spec, dim=dim))
        check_model(current, model_id)
        return current

    def _bind_first(self, model: StoreModel) -> StoreModel:
        from sqlalchemy import func, select
        from sqlalchemy.orm import Session

        from clipsearch.catalog.schema import Generation, StoreMeta

        with Session(self.engine) as s, s.begin():
            # Simultaneous first runs on a PostgreSQL store: the counter row's lock makes the later
            # ones wait and then find the first one's binding, instead of inserting it again.
            s.execute(select(StoreMeta).where(StoreMeta.key == SEQ_KEY).with_for_update())
            bound = s.get(StoreMeta, MODEL_KEY)
            if bound is not None:
                data = json.loads(bound.value)
                return StoreModel(model_id=data["model_id"], spec=data["spec"], dim=int(data["dim"]))
            s.add(StoreMeta(key=MODEL_KEY, value=json.dumps(asdict(model))))
            if s.scalar(select(func.count()).select_from(Generation)) == 0:
                s.add(
                    Generation(
                        model_id=model.model_id, spec=model.spec, dim=model.dim, state="active", created_at=_now()
                    )
                )
        return model

    def dim(self) -> int:
        model = self.model()
        if model is None:
            raise StoreError("the store has no model yet; run `clipsearch index PATH` first")
        return model.dim

    def current_seq(self) -> int:
        value = self.get(SEQ_KEY)
        return int(value) if value else 0

    def rows_seq(self) -> int:
        value = self.get(ROWS_SEQ_KEY)
        return int(value) if value else 0

    def has_images(self) -> bool:
        """Whether any image is indexed: one row looked up, where stats() counts them all."""
        sql = "SELECT 1 FROM images WHERE status = ? LIMIT 1"
        return bool(self.db.rows([(sql, (FileStatus.OK.value,))]))

    def stats(self) -> CatalogStats:
        # Plain SQL: a query reads the counts to judge its index's layout.
        counts = dict(self.db.rows([("SELECT status, count(*) FROM images GROUP BY status", ())]))
        return CatalogStats(
            images=counts.get(FileStatus.OK.value, 0),
            failed=counts.get(FileStatus.FAILED.value, 0),
            seq=self.current_seq(),
        )

    def failures(self, limit: int = 1000) -> list[tuple[str, str]]:
        """(path, reason) of failed files, by path."""
        from sqlalchemy import select
        from sqlalchemy.orm import Session

        from clipsearch.catalog.schema import ImageRow

        stmt = (
            select(ImageRow.path, ImageRow.error)
            .where(ImageRow.status == FileStatus.FAILED.value)
            .order_by(ImageRow.path)
            .limit(limit)
        )
        with Session(self.engine) as s:
            return [(p, e or "") for p, e in s.execute(stmt)]


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def check_model(store: StoreModel, model_id: str, spec: str | None = None) -> None:
    if store.model_id != model_id:
        raise ModelMismatchError(
            f"this store was indexed with model {store.model_id!r}, not {model_id!r}. "
            f"Pass --model {store.spec} (or leave --model out); to move this store to the other model "
            f"keeping its images, run `clipsearch reembed --model {spec or model_id}` (or use --home NEW_DIR "
            f"for a separate store)"
        )
