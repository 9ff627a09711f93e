"""The catalog's tables. Alembic revisions in migrations/ create and evolve them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Float, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class StoreMeta(Base):
    """Key/value facts about the store: its model, dimension, vector sequence counter."""

    __tablename__ = "store_meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text, nullable=False)


class ImageRow(Base):
    __tablename__ = "images"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    path: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    # The exact bytes of the path when they are not valid UTF-8 (`path` then shows them as \xNN
    # escapes, which text columns can hold): files are opened by these bytes. NULL otherwise.
    path_bytes: Mapped[bytes | None] = mapped_column(LargeBinary)
    root: Mapped[str] = mapped_column(Text, nullable=False)
    content_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    mtime_ns: Mapped[int] = mapped_column(BigInteger, nullable=False)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    taken_at: Mapped[datetime | None] = mapped_column(DateTime, index=True)
    camera: Mapped[str | None] = mapped_column(Text)
    orientation: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), nullable=False, index=True)  # ok | failed
    error: Mapped[str | None] = mapped_column(Text)
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)
    model_id: Mapped[str | None] = mapped_column(Text)
    # Value of the store's sequence counter when this row's vector last changed:
    # the FAISS cache catches up by reading rows with vec_seq above its watermark.
    vec_seq: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0, index=True)
    indexed_at: Mapped[datetime | None] = mapped_column(DateTime)

    # AUTOINCREMENT: SQLite must never reuse a deleted id, the FAISS cache keys vectors by id.
    __table_args__ = (Index("ix_images_root", "root"), {"sqlite_autoincrement": True})


class Tombstone(Base):
    """A vector that left the catalog at sequence `seq`; the index drops it when catching up."""

    __tablename__ = "tombstones"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    image_id: Mapped[int] = mapped_column(Integer, nullable=False)


class Generation(Base):
    """One model's set of vectors for the catalog (`clipsearch reembed` builds a second one).

    The active generation's vectors are the images rows' own `embedding` column, so a query reads
    them exactly as before generations existed; a generation being built (state "building") or kept
    after a switch until dropped ("retired") keeps its vectors in generation_vectors.
    """

    __tablename__ = "generations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_id: Mapped[str] = mapped_column(Text, nullable=False)
    spec: Mapped[str] = mapped_column(Text, nullable=False)
    dim: Mapped[int] = mapped_column(Integer, nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False)  # active | building | retired
    created_at: Mapped[datetime | None] = mapped_column(DateTime)
    switched_at: Mapped[datetime | None] = mapped_column(DateTime)  # when it became active or retired

    __table_args__ = ({"sqlite_autoincrement": True},)


class GenerationVector(Base):
    """A vector of a generation that is not the active one, or why the image got none."""

    __tablename__ = "generation_vectors"

    generation_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    image_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    # The image row's vec_seq when this vector was made: a row whose vector changed since (an index
    # run re-embedded it) is embedded again before the switch.
    src_seq: Mapped[int] = mapped_column(BigInteger, nullable=False)
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)  # NULL: failed, `error` says why
    error: Mapped[str | None] = mapped_column(Text)


class ImageTag(Base):
    """A zero-shot label given to an image, with its score (the label's softmax probability)."""

    __tablename__ = "image_tags"

    image_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    label: Mapped[str] = mapped_column(Text, primary_key=True, index=True)
    score: Mapped[float] = mapped_column(Float, nullable=False)
