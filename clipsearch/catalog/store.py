"""Reading and writing the catalog (SQLite by default, PostgreSQL through DATABASE_URL)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from sqlalchemy import create_engine, delete, event, func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import ColumnElement

from clipsearch.catalog import migrate
from clipsearch.catalog.records import (
    CatalogStats,
    FileState,
    ImageMeta,
    ImageRecord,
    Move,
    StoreModel,
)
from clipsearch.catalog.schema import ImageRow, StoreMeta, Tombstone
from clipsearch.errors import ModelMismatchError, StoreError

SEQ_KEY = "vector_seq"
_IN_CHUNK = 900  # stays under SQLite's bound-parameter limit
_ID_CHUNK = 10_000  # ids inlined per statement when fetching rows by id
_IMAGES = ImageRow.__tablename__


def _chunks(items: list, size: int = _IN_CHUNK) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets queries read while an index run writes; busy_timeout waits instead of failing.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    # Reads through a memory map instead of read() calls: re-ranking fetches hundreds of
    # random rows per query, and this halves that time (writes still go through the journal).
    cur.execute("PRAGMA mmap_size=2147483648")
    cur.close()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        db_path = url.split("///", 1)[-1]
        if db_path and db_path != ":memory:":
            Path(db_path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _read_only_hint(url: str) -> str:
    if not url.startswith("sqlite:///"):
        return ""
    folder = Path(url.split("///", 1)[1]).parent
    if folder.is_dir() and (os.statvfs(folder).f_flag & os.ST_RDONLY or not os.access(folder, os.W_OK)):
        return f" ({folder} is read-only; a SQLite store needs write access to its folder for its journal)"
    return ""


def _vector_blob(vector: np.ndarray | None) -> bytes | None:
    return None if vector is None else np.asarray(vector, dtype=np.float16).tobytes()


class Catalog:
    def __init__(self, engine: Engine):
        self.engine = engine
        # A bound model never changes, so once read it is kept: every vector fetch needs its dim.
        self._model: StoreModel | None = None

    @classmethod
    def open(cls, url: str) -> Catalog:
        try:
            engine = make_engine(url)
            migrate.ensure_current(engine)
        except OperationalError as exc:
            raise StoreError(f"cannot open the catalog at {safe_url(url)}: {exc.orig}{_read_only_hint(url)}") from None
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot open the catalog at {safe_url(url)}: {exc}") from None
        except OSError as exc:  # e.g. its folder cannot be created
            raise StoreError(f"cannot open the catalog at {safe_url(url)}: {exc.strerror or exc}") from None
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    # -- store facts -------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        # Core, not an ORM session: every query and index run reads the sequence counter.
        with self.engine.connect() as conn:
            return conn.execute(select(StoreMeta.value).where(StoreMeta.key == key)).scalar_one_or_none()

    def set_meta(self, key: str, value: str) -> None:
        with Session(self.engine) as s, s.begin():
            s.merge(StoreMeta(key=key, value=value))

    def store_model(self) -> StoreModel | None:
        if self._model is None:
            raw = self.get_meta("model")
            if raw:
                data = json.loads(raw)
                self._model = StoreModel(model_id=data["model_id"], spec=data["spec"], dim=int(data["dim"]))
        return self._model

    def bind_model(self, model_id: str, spec: str, dim: int) -> StoreModel:
        """Record the store's model on first use; refuse a different one afterwards."""
        current = self.store_model()
        if current is None:
            self.set_meta("model", json.dumps({"model_id": model_id, "spec": spec, "dim": dim}))
            return self.store_model()
        check_model(current, model_id)
        return current

    # -- indexing ----------------------------------------------------------------------------

    def file_states(self, root: str, is_dir: bool) -> dict[str, FileState]:
        """Every row at or under `root` (by path, whichever root it was first indexed under)."""
        cols = (ImageRow.id, ImageRow.path, ImageRow.size, ImageRow.mtime_ns, ImageRow.content_hash, ImageRow.status)
        where = self._path_under(root.rstrip(os.sep) + os.sep) if is_dir else ImageRow.path == root
        return {r[1]: FileState(*r) for r in self._plain_rows(select(*cols).where(where))}

    def _plain_rows(self, stmt: Select) -> list[tuple]:
        """A Core statement's rows as the driver's own tuples (text, int and NULL parameters only)."""
        compiled = stmt.compile(dialect=self.engine.dialect)
        params = compiled.params
        if compiled.positiontup is not None:  # qmark drivers (SQLite) take a sequence
            params = [params[name] for name in compiled.positiontup]
        return self._driver_rows([(str(compiled), params)])

    def _driver_rows(self, statements: Iterable[tuple[str, Sequence | dict | None]]) -> list[tuple]:
        """The rows of plain SQL statements, run on one connection's own cursor.

        The hot reads (a re-index's known files, every query's re-rank vectors and result
        metadata) skip SQLAlchemy's per-statement and per-row work, which was most of their time.
        """
        rows: list[tuple] = []
        with self.engine.connect() as conn:
            cursor = conn.connection.cursor()
            try:
                for sql, params in statements:
                    if params is None:
                        cursor.execute(sql)
                    else:
                        cursor.execute(sql, params)
                    rows.extend(cursor.fetchall())
            finally:
                cursor.close()
        return rows

    def _path_under(self, prefix: str) -> ColumnElement[bool]:
        """Rows whose path starts with `prefix`, matched case-sensitively."""
        if self.engine.dialect.name == "sqlite":
            # SQLite's LIKE ignores ASCII case, so /photos/ would also claim /Photos/ (and a
            # re-index of one would sweep the other as deleted). A range on the path index is
            # exact and fast: UTF-8 byte order is code point order.
            return (ImageRow.path >= prefix) & (ImageRow.path < prefix[:-1] + chr(ord(prefix[-1]) + 1))
        return ImageRow.path.startswith(prefix, autoescape=True)

    def vectors_by_hash(self, hashes: list[str]) -> dict[str, bytes]:
        """Embeddings already computed for these contents (copies and moves reuse them)."""
        found: dict[str, bytes] = {}
        with Session(self.engine) as s:
            for chunk in _chunks(hashes):
                stmt = select(ImageRow.content_hash, ImageRow.embedding).where(
                    ImageRow.content_hash.in_(chunk), ImageRow.embedding.is_not(None)
                )
                for content_hash, blob in s.execute(stmt):
                    found.setdefault(content_hash, blob)
        return found

    def write(
        self,
        records: list[ImageRecord],
        existing: dict[str, int],
        moves: list[Move] = (),
        deleted: list[int] = (),
        model_id: str | None = None,
    ) -> None:
        """Apply one batch of an index run atomically; existing maps path -> id for rows to update."""
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        with Session(self.engine) as s, s.begin():
            seq = self._reserve_seq(s)
            for rec in records:
                values = _row_values(rec, now)
                if rec.vector is not None:
                    seq += 1
                    values.update(vec_seq=seq, model_id=model_id)
                row_id = existing.get(rec.path)
                if row_id is None:
                    values.setdefault("vec_seq", 0)
                    s.add(ImageRow(**values))
                else:
                    if rec.vector is None:
                        # The old vector belongs to content that is gone.
                        values.update(embedding=None, model_id=None)
                        seq += 1
                        values["vec_seq"] = seq
                        s.add(Tombstone(seq=seq, image_id=row_id))
                    s.execute(update(ImageRow).where(ImageRow.id == row_id).values(**values))
            for mv in moves:
                s.execute(
                    update(ImageRow)
                    .where(ImageRow.id == mv.id)
                    .values(path=mv.path, root=mv.root, size=mv.size, mtime_ns=mv.mtime_ns)
                )
            for row_id in deleted:
                seq += 1
                s.add(Tombstone(seq=seq, image_id=row_id))
            for chunk in _chunks(list(deleted)):
                s.execute(delete(ImageRow).where(ImageRow.id.in_(chunk)))
            s.merge(StoreMeta(key=SEQ_KEY, value=str(seq)))

    def _reserve_seq(self, s: Session) -> int:
        # Row lock on the counter (PostgreSQL) serialises writers, so commits happen in
        # sequence order and a reader's watermark never skips a slower transaction.
        row = s.execute(select(StoreMeta).where(StoreMeta.key == SEQ_KEY).with_for_update()).scalar_one_or_none()
        return int(row.value) if row else 0

    # -- reading vectors ---------------------------------------------------------------------

    def current_seq(self) -> int:
        value = self.get_meta(SEQ_KEY)
        return int(value) if value else 0

    def dim(self) -> int:
        model = self.store_model()
        if model is None:
            raise StoreError("the store has no model yet; run `clipsearch index PATH` first")
        return model.dim

    def iter_vectors(
        self, after_seq: int = 0, up_to_seq: int | None = None, chunk: int = 20_000
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, float32 vectors) for rows whose vector changed in (after_seq, up_to_seq]."""
        dim = self.dim()
        last_id = 0
        while True:
            stmt = (
                select(ImageRow.id, ImageRow.embedding)
                .where(ImageRow.vec_seq > after_seq, ImageRow.embedding.is_not(None), ImageRow.id > last_id)
                .order_by(ImageRow.id)
                .limit(chunk)
            )
            if up_to_seq is not None:
                stmt = stmt.where(ImageRow.vec_seq <= up_to_seq)
            with Session(self.engine) as s:
                rows = s.execute(stmt).all()
            if not rows:
                return
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            yield ids, _decode_blobs([r[1] for r in rows], dim)
            last_id = int(ids[-1])

    def tombstones(self, after_seq: int, up_to_seq: int | None = None) -> np.ndarray:
        stmt = select(Tombstone.image_id).where(Tombstone.seq > after_seq)
        if up_to_seq is not None:
            stmt = stmt.where(Tombstone.seq <= up_to_seq)
        with Session(self.engine) as s:
            return np.array(s.scalars(stmt).all(), dtype=np.int64)

    def fetch_vectors(self, ids: Iterable[int]) -> tuple[np.ndarray, np.ndarray]:
        """(ids found, float32 vectors) for the given ids, in no particular order."""
        got_ids, blobs = [], []
        for row_id, blob in self._select_by_ids("id, embedding", ids, " AND embedding IS NOT NULL"):
            got_ids.append(row_id)
            blobs.append(blob)
        return np.array(got_ids, dtype=np.int64), _decode_blobs(blobs, self.dim())

    def _select_by_ids(self, columns: str, ids: Iterable[int], where: str = "") -> list[tuple]:
        """Rows of the images table for these ids (inlined: they are ints, so that is safe)."""
        chunks = _chunks([int(i) for i in ids], _ID_CHUNK)
        return self._driver_rows(
            (f"SELECT {columns} FROM {_IMAGES} WHERE id IN ({','.join(map(str, chunk))}){where}", None)
            for chunk in chunks
        )

    def sample_vectors(self, n: int, seed: int = 0) -> np.ndarray:
        """Up to n vectors spread over the whole catalog (for training a quantiser)."""
        with Session(self.engine) as s:
            all_ids = np.array(
                s.scalars(select(ImageRow.id).where(ImageRow.embedding.is_not(None))).all(), dtype=np.int64
            )
        if len(all_ids) > n:
            all_ids = np.sort(np.random.default_rng(seed).choice(all_ids, size=n, replace=False))
        return self.fetch_vectors(all_ids)[1]

    # -- metadata for results ----------------------------------------------------------------

    def fetch_meta(self, ids: Iterable[int]) -> dict[int, ImageMeta]:
        rows = self._select_by_ids("id, path, width, height, size, taken_at, camera, content_hash", ids)
        return {r[0]: ImageMeta(*r[:5], _datetime(r[5]), *r[6:]) for r in rows}

    def filtered_ids(
        self, folder: str | None, taken_after: datetime | None, taken_before: datetime | None, limit: int
    ) -> list[int] | None:
        """Ids matching the filters, or None when more than `limit` match (too many to rank exactly)."""
        stmt = select(ImageRow.id).where(ImageRow.embedding.is_not(None))
        if folder:
            stmt = stmt.where(self._path_under(folder))
        if taken_after:
            stmt = stmt.where(ImageRow.taken_at >= taken_after)
        if taken_before:
            stmt = stmt.where(ImageRow.taken_at <= taken_before)
        with Session(self.engine) as s:
            ids = s.scalars(stmt.limit(limit + 1)).all()
        return None if len(ids) > limit else list(ids)

    def failures(self, limit: int = 1000) -> list[tuple[str, str]]:
        with Session(self.engine) as s:
            stmt = (
                select(ImageRow.path, ImageRow.error)
                .where(ImageRow.status == "failed")
                .order_by(ImageRow.path)
                .limit(limit)
            )
            return [(p, e or "") for p, e in s.execute(stmt)]

    def stats(self) -> CatalogStats:
        with Session(self.engine) as s:
            counts = dict(s.execute(select(ImageRow.status, func.count()).group_by(ImageRow.status)).all())
        return CatalogStats(images=counts.get("ok", 0), failed=counts.get("failed", 0), seq=self.current_seq())


def check_model(store: StoreModel, model_id: str) -> None:
    if store.model_id != model_id:
        raise ModelMismatchError(
            f"this store was indexed with model {store.model_id!r}, not {model_id!r}. "
            f"Pass --model {store.spec} (or leave --model out), or index into a new store with "
            f"--home NEW_DIR to use the other model"
        )


def _row_values(rec: ImageRecord, now: datetime) -> dict:
    return {
        "path": rec.path,
        "root": rec.root,
        "size": rec.size,
        "mtime_ns": rec.mtime_ns,
        "content_hash": rec.content_hash,
        "status": rec.status,
        "error": rec.error,
        "width": rec.width,
        "height": rec.height,
        "taken_at": rec.taken_at,
        "camera": rec.camera,
        "orientation": rec.orientation,
        "embedding": _vector_blob(rec.vector),
        "model_id": None,
        "indexed_at": now,
    }


def _decode_blobs(blobs: list[bytes], dim: int) -> np.ndarray:
    if not blobs:
        return np.zeros((0, dim), dtype=np.float32)
    import torch  # the model's dependency, loaded by then wherever vectors are read

    # torch widens float16 with vector instructions; numpy's scalar loop took 0.44 ms of a
    # 512-vector re-rank, torch 0.03 ms. A bytearray: torch wants a writable buffer.
    halfs = torch.frombuffer(bytearray().join(blobs), dtype=torch.float16)
    return halfs.view(len(blobs), dim).float().numpy()


def _datetime(value: datetime | str | None) -> datetime | None:
    # Plain SQL on SQLite returns the text SQLAlchemy stored; PostgreSQL returns a datetime.
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def safe_url(url: str) -> str:
    """A database URL with any password hidden, for messages."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url
