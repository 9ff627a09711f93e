"""A FAISS index plus the header that says what it holds, stored as one file."""

from __future__ import annotations

import json
import mmap
import os
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
    def __init__(self, index: faiss.Index, header: IndexHeader, mapped_body: np.ndarray | None = None):
        self.index = index
        self.header = header
        # load(mapped=True): the file's body, mapped read-only; parts of `index` point into it.
        self._mapped_body = mapped_body

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

    @property
    def mapped(self) -> bool:
        """Whether parts of the index are views of its file's read-only mapping (load(mapped=True))."""
        return self._mapped_body is not None

    def _own(self) -> None:
        """Before the first change, a mapped index becomes an ordinary copy: FAISS aborts the process
        when a change would resize a view (a flat index's vectors), and the mapping is read-only."""
        if self._mapped_body is not None:
            self.index = faiss.deserialize_index(self._mapped_body)  # every part copied
            self._mapped_body = None

    def train(self, sample: np.ndarray) -> None:
        if self.kind == IndexKind.IVFPQ:
            self.index.train(np.ascontiguousarray(sample, dtype=np.float32))
            self.header.trained_on = len(sample)

    def upsert(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        self._own()
        self.remove(ids)
        self.index.add_with_ids(
            np.ascontiguousarray(vectors, dtype=np.float32), np.ascontiguousarray(ids, dtype=np.int64)
        )

    def remove(self, ids: np.ndarray) -> None:
        if len(ids) and self.ntotal:
            self._own()
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
    def load(cls, path: Path, mapped: bool = False) -> VectorIndex:
        """The saved index, checked against its header's checksum.

        mapped: map the file read-only and let FAISS read the body in place, for a process that
        answers a query and exits. FAISS then copies only what it must (IVF lists) and leaves the
        rest as views of the mapping (a flat index's vectors, IVF centroids): at 1M images 0.07
        CPU-seconds where reading the file into memory first took 0.17. The index copies itself
        before its first change (upsert, remove), so a mapped index may still catch up.
        """
        try:
            with open(path, "rb") as fh:  # header and body from one file: a concurrent save renames, never mixes
                data = _mapping(fh) if mapped else np.frombuffer(fh.read(), dtype=np.uint8)
        except FileNotFoundError as exc:
            raise IndexFileError("no index file yet") from exc
        hlen = header_length(data[:16].tobytes(), len(data))
        header = parse_header(data[16 : 16 + hlen].tobytes(), hlen, len(data))
        body = data[16 + hlen :]
        if body_checksum(body) != header.body_checksum:
            raise IndexFileError("index file is damaged (its checksum does not match)")
        try:
            if mapped:
                index = faiss.read_index(faiss.ZeroCopyIOReader(faiss.swig_ptr(body), body.size))
                index.referenced_objects = [body]  # the mapping lives as long as the views into it
            else:
                index = faiss.deserialize_index(body)
        except Exception as exc:
            raise IndexFileError(f"index file is damaged ({exc})") from exc
        if index.d != header.dim:
            raise IndexFileError("index file has an unsupported format")
        return cls(index, header, body if mapped else None)


def _mapping(fh: Any) -> np.ndarray:
    """The open file's bytes, mapped read-only; read instead where the file cannot be mapped (an
    empty one, or a file system without mmap): the index treats them alike (read-only views)."""
    try:
        if os.fstat(fh.fileno()).st_size:
            return np.frombuffer(mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ), dtype=np.uint8)
    except (OSError, ValueError):
        pass
    return np.frombuffer(fh.read(), dtype=np.uint8)
