"""Facts about the whole store: its key/value meta, bound model, sequence counter, counts, failures."""

from __future__ import annotations

import json

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from clipsearch.catalog.records import CatalogStats, FileStatus, StoreModel
from clipsearch.catalog.schema import ImageRow, StoreMeta
from clipsearch.errors import ModelMismatchError, StoreError

SEQ_KEY = "vector_seq"  # meta key of the sequence counter: the last number given to a vector change
MODEL_KEY = "model"


class StoreFacts:
    def __init__(self, engine: Engine):
        self.engine = engine
        # A bound model never changes, so once read it is kept: every vector fetch needs its dim.
        self._model: StoreModel | None = None

    def get(self, key: str) -> str | None:
        # Core, not an ORM session: every query and index run reads the sequence counter.
        with self.engine.connect() as conn:
            value: str | None = conn.execute(select(StoreMeta.value).where(StoreMeta.key == key)).scalar_one_or_none()
            return value

    def set(self, key: str, value: str) -> None:
        with Session(self.engine) as s, s.begin():
            s.merge(StoreMeta(key=key, value=value))

    def model(self) -> StoreModel | None:
        if self._model is None:
            raw = self.get(MODEL_KEY)
            if raw:
                data = json.loads(raw)
                self._model = StoreModel(model_id=data["model_id"], spec=data["spec"], dim=int(data["dim"]))
        return self._model

    def bind_model(self, model_id: str, spec: str, dim: int) -> StoreModel:
        """Record the store's model on first use; refuse a different one afterwards."""
        current = self.model()
        if current is None:
            self.set(MODEL_KEY, json.dumps({"model_id": model_id, "spec": spec, "dim": dim}))
            return StoreModel(model_id=model_id, spec=spec, dim=dim)
        check_model(current, model_id)
        return current

    def dim(self) -> int:
        model = self.model()
        if model is None:
            raise StoreError("the store has no model yet; run `clipsearch index PATH` first")
        return model.dim

    def current_seq(self) -> int:
        value = self.get(SEQ_KEY)
        return int(value) if value else 0

    def stats(self) -> CatalogStats:
        with Session(self.engine) as s:
            counts = dict(s.execute(select(ImageRow.status, func.count()).group_by(ImageRow.status)).all())
        return CatalogStats(
            images=counts.get(FileStatus.OK.value, 0),
            failed=counts.get(FileStatus.FAILED.value, 0),
            seq=self.current_seq(),
        )

    def failures(self, limit: int = 1000) -> list[tuple[str, str]]:
        """(path, reason) of failed files, by path."""
        stmt = (
            select(ImageRow.path, ImageRow.error)
            .where(ImageRow.status == FileStatus.FAILED.value)
            .order_by(ImageRow.path)
            .limit(limit)
        )
        with Session(self.engine) as s:
            return [(p, e or "") for p, e in s.execute(stmt)]


def check_model(store: StoreModel, model_id: str) -> None:
    if store.model_id != model_id:
        raise ModelMismatchError(
            f"this store was indexed with model {store.model_id!r}, not {model_id!r}. "
            f"Pass --model {store.spec} (or leave --model out), or index into a new store with "
            f"--home NEW_DIR to use the other model"
        )
