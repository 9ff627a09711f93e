"""A FAISS index plus the header that says what it holds, stored as one file."""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import asdict
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from clipsearch.atomic import remove_stale_temps, replacing
from clipsearch.faults import point
from clipsearch.vectors.header import (
    MAGIC,
    IndexFileError,
    IndexHeader,
    header_length,
    parse_header,
    read_header,
)
from clipsearch.vectors.policy import IndexKind, Layout, default_nprobe
from clipsearch.vectors.threads import openmp_threads

__all__ = ["MAGIC", "IndexFileError", "IndexHeader", "VectorIndex", "body_checksum", "read_header"]

_SERIAL_QUERIES = 4  # query batches up to this size are searched on one thread


def body_checksum(body: bytes | np.ndarray) -> str:
    """The checksum the header records for the serialized index (bytes or a uint8 array).

    CRC-32 finds the damage a disk or a bad copy does at 1.6 GB/s here (blake2b: 0.3 GB/s, which
    would add a third of a second to every query process's load at 1M images).
    """
    view = memoryview(body)  # type: ignore[arg-type]  # an ndarray is a buffer; numpy's stubs for 3.10 do not say so
    return f"crc32:{zlib.crc32(view):08x}"


class VectorIndex:
    def __init__(self, index: faiss.Index, header: IndexHeader):
        self.index = index
        self.header = header

    @classmethod
    def empty(cls, layout: Layout, dim: int, model_id: str, watermark: int = 0) -> VectorIndex:
        if layout.kind == IndexKind.FLAT:
            index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
            header = IndexHeader(IndexKind.FLAT, dim, model_id, watermark)
        else:
            index = faiss.index_factory(dim, layout.factory, faiss.METRIC_INNER_PRODUCT)
            header = IndexHeader(
                IndexKind.IVFPQ,
                dim,
                model_id,
                watermark,
                nlist=layout.nlist,
                nprobe=default_nprobe(layout.nlist),
                factory=layout.factory,
            )
        return cls(index, header)

    @property
    def kind(self) -> IndexKind:
        return self.header.kind

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def is_trained(self) -> bool:
        return bool(self.index.is_trained)

    def train(self, sample: np.ndarray) -> None:
        if self.kind == IndexKind.IVFPQ:
            self.index.train(np.ascontiguousarray(sample, dtype=np.float32))
            self.header.trained_on = len(sample)

    def upsert(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        self.remove(ids)
        self.index.add_with_ids(
            np.ascontiguousarray(vectors, dtype=np.float32), np.ascontiguousarray(ids, dtype=np.int64)
        )

    def remove(self, ids: np.ndarray) -> None:
        if len(ids) and self.ntotal:
            self.index.remove_ids(np.ascontiguousarray(ids, dtype=np.int64))

    def search(
        self, queries: np.ndarray, k: int, allowed_ids: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids) per query; ids are -1 where fewer than k exist."""
        k = max(1, min(k, max(self.ntotal, 1)))
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        selector = (
            faiss.IDSelectorBatch(np.ascontiguousarray(allowed_ids, dtype=np.int64))
            if allowed_ids is not None
            else None
        )
        if self.kind == IndexKind.IVFPQ:
            params = faiss.SearchParametersIVF(nprobe=self.header.nprobe, sel=selector)
        else:
            params = faiss.SearchParameters(sel=selector) if selector is not None else None
        if self.kind == IndexKind.FLAT or len(queries) > _SERIAL_QUERIES:
            return self._search(queries, k, params)
        # One query probes a few IVF lists: splitting that over threads costs more than it saves,
        # and FAISS's OpenMP threads fight torch's (a second OpenMP runtime still spinning
        # after the text encoder ran) for the cores: 7.8 ms per query at 1M, 1.5 ms serial.
        # A flat scan is the opposite (one long memory-bound loop): 3.0 ms serial at 10k, 1.9 ms on 2 threads.
        with openmp_threads(1):  # this thread's setting only (see vectors/threads.py)
            return self._search(queries, k, params)

    def _search(self, queries: np.ndarray, k: int, params: Any) -> tuple[np.ndarray, np.ndarray]:
        scores, ids = self.index.search(queries, k, params=params)
        return scores, ids

    def save(self, path: Path) -> None:
        """Write header and index to a temp file, then rename: readers see old or new, never half."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        blob = faiss.serialize_index(self.index)
        self.header.body_bytes = int(blob.size)
        self.header.body_checksum = body_checksum(blob)
        header = json.dumps(asdict(self.header)).encode()
        remove_stale_temps(path)  # before writing: a killed save's leftover is as large as this one
        with replacing(path) as fh:
            fh.write(MAGIC + struct.pack("<Q", len(header)) + header)
            fh.write(blob.tobytes())
            fh.flush()
            point("index-temp-written")
        point("index-saved")

    @staticmethod
    def read_header(path: Path) -> IndexHeader:
        """The header alone (checked against the file's length): enough to tell whether a file is current."""
        return read_header(path)

    @classmethod
    def load(cls, path: Path) -> VectorIndex:
        try:
            data = Path(path).read_bytes()  # header and body from one read: a concurrent save renames, never mixes
        except FileNotFoundError as exc:
            raise IndexFileError("no index file yet") from exc
        hlen = header_length(data[:16], len(data))
        header = parse_header(data[16 : 16 + hlen], hlen, len(data))
        body = np.frombuffer(data, dtype=np.uint8, offset=16 + hlen)
        if body_checksum(body) != header.body_checksum:
            raise IndexFileError("index file is damaged (its checksum does not match)")
        try:
            index = faiss.deserialize_index(body)
        except Exception as exc:
            raise IndexFileError(f"index file is damaged ({exc})") from exc
        if index.d != header.dim:
            raise IndexFileError("index file has an unsupported format")
        return cls(index, header)
