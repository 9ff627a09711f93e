"""What the Ray engine indexes: folders (walked as by the local engine) and path lists.

A path list is a text file (one path per line), a CSV or a Parquet file (a `path` column),
local or behind any fsspec URL (s3://, gs://, ...); its entries are local paths or URLs.
The list itself is the source's root: a later run of the same list sweeps rows of that root
whose path is no longer listed, just as a folder's run sweeps files no longer on disk.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select

from clipsearch.catalog import Catalog, FileState
from clipsearch.catalog.schema import ImageRow
from clipsearch.errors import ConfigError
from clipsearch.indexer.decode import MAX_FILE_BYTES
from clipsearch.indexer.exclude import Exclusions
from clipsearch.indexer.runner import Plan, plan_files, plan_root
from clipsearch.indexer.scan import FoundFile, Root, resolve_roots, scan
from clipsearch.indexer.summary import IndexSummary
from clipsearch.thumbnails import Thumbnails

LIST_SUFFIXES = (".txt", ".csv", ".parquet", ".pq")
_STAT_THREADS = 16  # stat calls on object stores are network round trips
_IN_CHUNK = 900


def is_url(path: str) -> bool:
    return "://" in path


def is_path_list(source: str) -> bool:
    return source.lower().endswith(LIST_SUFFIXES)


@dataclass(frozen=True)
class PathList:
    uri: str  # the list file, as a local absolute path or a URL: the root of its rows


def resolve_sources(sources: list[str]) -> list[Root | PathList]:
    """Folders and image files as the local engine resolves them (overlaps walked once); path lists as PathList."""
    lists: list[Root | PathList] = []
    local: list[Path] = []
    for source in sources:
        if is_path_list(source):
            uri = source if is_url(source) else os.path.abspath(os.path.expanduser(source))
            if not is_url(uri) and not os.path.isfile(uri):
                raise FileNotFoundError(2, "no such path list", source)
            lists.append(PathList(uri))
        elif is_url(source):
            raise ConfigError(
                f"{source}: a URL source must be a path list (.txt, .csv or .parquet) naming the images to index"
            )
        else:
            local.append(Path(source))
    return [*resolve_roots(local), *lists]


def source_key(source: Root | PathList) -> str:
    return source.path if isinstance(source, Root) else source.uri


def plan_source(
    catalog: Catalog,
    source: Root | PathList,
    summary: IndexSummary,
    thumbs: Thumbnails | None,
    exclusions: Exclusions | None = None,
) -> Plan:
    """A folder is planned as by the local engine; a list's entries are all indexed (they were named)."""
    if isinstance(source, Root):
        return plan_root(catalog.writes, source, summary, thumbs, exclusions)
    entries = read_path_list(source.uri)
    states = list_states(catalog, source.uri, entries)
    return plan_files(stat_entries(entries, source.uri), states, {}, summary, thumbs)


# -- reading a list ----------------------------------------------------------------------------


def _open(uri: str):
    import fsspec

    return fsspec.open(uri, "rb")


def read_path_list(uri: str) -> list[str]:
    """The entries of a path list, in order, without blanks, comments or repeats."""
    lower = uri.lower()
    try:
        with _open(uri) as fh:
            data = fh.read()
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the path list {uri}: {exc}") from exc
    if lower.endswith((".parquet", ".pq")):
        raw = _parquet_paths(data, uri)
    elif lower.endswith(".csv"):
        raw = _csv_paths(data, uri)
    else:
        raw = [line.strip() for line in data.decode("utf-8", "replace").splitlines()]
        raw = [line for line in raw if line and not line.startswith("#")]
    base = None if is_url(uri) else os.path.dirname(uri)
    return list(dict.fromkeys(_absolute(p, base) for p in raw))


def _absolute(entry: str, base: str | None) -> str:
    """URLs as they are; local paths made absolute (relative ones against the list's own folder)."""
    if is_url(entry) and not entry.startswith("file://"):
        return entry
    path = entry[len("file://") :] if entry.startswith("file://") else entry
    path = os.path.expanduser(path)
    if not os.path.isabs(path) and base is not None:
        path = os.path.join(base, path)
    return os.path.abspath(path)


def _parquet_paths(data: bytes, uri: str) -> list[str]:
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(data))
    if "path" not in table.column_names:
        raise ConfigError(f"the path list {uri} has no `path` column (columns: {', '.join(table.column_names)})")
    return [p for p in table.column("path").to_pylist() if p]


def _csv_paths(data: bytes, uri: str) -> list[str]:
    reader = csv.DictReader(io.StringIO(data.decode("utf-8", "replace")))
    if not reader.fieldnames or "path" not in reader.fieldnames:
        raise ConfigError(f"the path list {uri} needs a header row with a `path` column")
    return [row["path"].strip() for row in reader if (row.get("path") or "").strip()]


# -- what the catalog and the storage know about the entries -------------------------------------


def list_states(catalog: Catalog, root: str, entries: list[str]) -> dict[str, FileState]:
    """Rows first indexed from this list, plus rows of listed paths indexed from anywhere else."""
    cols = (ImageRow.id, ImageRow.path, ImageRow.size, ImageRow.mtime_ns, ImageRow.content_hash, ImageRow.status)
    with catalog.engine.connect() as conn:
        states = {r[1]: FileState(*r) for r in conn.execute(select(*cols).where(ImageRow.root == root))}
        unseen = [p for p in entries if p not in states]
        for start in range(0, len(unseen), _IN_CHUNK):
            chunk = unseen[start : start + _IN_CHUNK]
            states.update((r[1], FileState(*r)) for r in conn.execute(select(*cols).where(ImageRow.path.in_(chunk))))
    return states


def stat_entries(entries: list[str], root: str) -> Iterator[FoundFile]:
    """A FoundFile per entry: local ones as a folder walk makes them, URLs from their storage's listing."""
    urls = [p for p in entries if is_url(p)]
    url_found: dict[str, FoundFile] = {}
    if urls:
        with ThreadPoolExecutor(_STAT_THREADS) as pool:
            url_found = dict(zip(urls, pool.map(lambda u: _stat_url(u, root), urls), strict=False))
    for entry in entries:
        if entry in url_found:
            yield url_found[entry]
        else:
            found = next(scan(Root(entry, is_dir=False), {}))
            yield found._replace(root=root)


def _stat_url(url: str, root: str) -> FoundFile:
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(url)
        info = fs.info(path)
    except FileNotFoundError:
        return FoundFile(url, root, 0, 0, error="cannot stat: no such object")
    except (OSError, ValueError) as exc:
        return FoundFile(url, root, 0, 0, error=f"cannot stat: {exc}")
    return FoundFile(url, root, int(info.get("size") or 0), _mtime_ns(info))


def _mtime_ns(info: dict) -> int:
    """The modification time an fsspec listing reports, whatever the backend calls it (0 if none)."""
    for key in ("mtime", "LastModified", "last_modified", "updated", "modified", "created"):
        value = info.get(key)
        if value is None:
            continue
        if isinstance(value, str):
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if isinstance(value, datetime):
            return int(value.timestamp() * 1e9)
        return int(float(value) * 1e9)
    return 0


def read_url(url: str) -> bytes:
    """The bytes of a file behind a URL, at most the decode stage's cap (its reader for URL entries)."""
    try:
        with _open(url) as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError as exc:
        raise OSError(2, "no such object") from exc
    except ValueError as exc:
        raise OSError(str(exc)) from exc
    if len(data) > MAX_FILE_BYTES:
        raise OSError("larger than the 1 GiB limit; not an image we can index")
    return data
