"""The index file's header: what a saved FAISS index holds, readable without loading FAISS.

An index run that changed nothing only compares this header with the catalog, so it never
imports FAISS or numpy (a sixth of a CPU-second at start-up).
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from clipsearch.catalog import Catalog

MAGIC = b"CLIPSIDX"
# 2: the header carries a checksum of the body (vectors, quantisers and id map); files of
# version 1 cannot be verified and are rebuilt once.
FORMAT_VERSION = 2


class IndexKind(str, Enum):
    """The index layouts a store uses. A str: index file headers and status JSON hold the value."""

    FLAT = "flat"  # exact inner products over every vector
    IVFPQ = "ivfpq"  # IVF lists of 4-bit PQ codes, candidates re-ranked exactly

    def __str__(self) -> str:
        return self.value


class IndexFileError(Exception):
    """The index file is missing, truncated, damaged or not ours (it will be rebuilt)."""


@dataclass
class IndexHeader:
    kind: IndexKind
    dim: int
    model_id: str
    watermark: int  # catalog vector sequence this index reflects
    trained_on: int = 0  # vectors in the quantiser's training sample
    built_for: int = 0  # collection size when the quantiser was trained (the retrain policy's yardstick)
    nlist: int = 0
    nprobe: int = 0
    version: int = FORMAT_VERSION
    body_bytes: int = 0  # length of the serialized index after the header (0: not recorded)
    factory: str = ""  # the FAISS layout, e.g. IVF2000,PQ128x4fs ("" in files from before it was recorded)
    # A checksum of the body: a flipped byte anywhere (a vector, a quantiser, the id map) is caught
    # on load, where FAISS would serve it (scores of 1e37, or the wrong image for an id).
    body_checksum: str = ""

    def __post_init__(self) -> None:
        self.kind = IndexKind(self.kind)  # read from JSON as a plain string; an unknown one raises


def read_header(path: Path) -> IndexHeader:
    """The header alone (checked against the file's length): enough to tell whether a file is current."""
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            hlen = header_length(fh.read(16), size)
            return parse_header(fh.read(hlen), hlen, size)
    except FileNotFoundError as exc:
        raise IndexFileError("no index file yet") from exc


def header_length(head: bytes, file_size: int) -> int:
    if len(head) < 16 or head[:8] != MAGIC:
        raise IndexFileError("index file is not a clipsearch index")
    (hlen,) = struct.unpack("<Q", head[8:16])
    if hlen > file_size - 16:
        raise IndexFileError("index file is truncated")
    return int(hlen)


def parse_header(raw: bytes, hlen: int, file_size: int) -> IndexHeader:
    try:
        header = IndexHeader(**json.loads(raw))
    except Exception as exc:
        raise IndexFileError(f"index file is damaged ({exc})") from exc
    if header.version < FORMAT_VERSION:
        raise IndexFileError("index file is from an older version (without a checksum)")
    if header.version != FORMAT_VERSION:
        raise IndexFileError("index file has an unsupported format")
    if header.body_bytes and file_size != 16 + hlen + header.body_bytes:
        raise IndexFileError("index file is truncated")
    return header


def index_file_current(catalog: Catalog, path: Path, model_id: str) -> bool:
    """Whether the saved index already reflects the catalog, judged from its header alone.

    After an index run that changed nothing this is all there is to check; loading the whole
    index took longer than the rest of such a run's bookkeeping. Queries still load and check it.
    """
    try:
        header = read_header(path)
    except IndexFileError:
        return False
    return (
        header.model_id == model_id
        and header.dim == catalog.facts.dim()
        and header.watermark == catalog.facts.current_seq()
    )
