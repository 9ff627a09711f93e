"""Sending a CLI query to the server that runs for the same store (standard library only).

`clipsearch query` calls `search_via_server` first: with no live server for the store it returns
None and the query runs in-process, as it does with --no-server. A server that cannot be
reached or refuses the request for a reason the CLI could avoid (a stale token, an upload over
its cap) also returns None; a bad query is an error either way, with the server's message.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from clipsearch.api.record import ServerRecord, catalog_key, read_record
from clipsearch.errors import ClipsearchError, QueryError, StoreError
from clipsearch.settings import Settings

TIMEOUT_S = 120.0  # a first query may wait for the server to load the model after a first index run
FALL_BACK = (401, 413, 502, 504)


class ServerUnavailable(Exception):
    """The server could not be used for this query; search in-process instead."""


def server_for(settings: Settings) -> ServerRecord | None:
    """The live server of this store (same home, same catalog), if one runs."""
    record = read_record(settings.home)
    if record is None or record.catalog != catalog_key(settings.catalog_url):
        return None
    return record


def query_server(settings: Settings, fields: dict[str, Any], image: Path | None = None) -> dict | None:
    """The server's answer to a CLI query, or None when no server runs for this store.

    Raises ServerUnavailable when one runs but cannot answer this query (search in-process then),
    and QueryError/StoreError with the server's message when the query itself is refused.
    """
    record = server_for(settings)
    if record is None:
        return None
    if fields.get("folder"):
        fields = {**fields, "folder": _absolute(fields["folder"])}
    return search_via_server(record, fields, image)


def _absolute(folder: str) -> str:
    # The server runs elsewhere (another working directory): relative folders are resolved here.
    path = Path(folder).expanduser()
    return os.path.abspath(path) if path.exists() or folder.startswith((".", "~", "/")) else folder


def search_via_server(record: ServerRecord, fields: dict[str, Any], image: Path | None = None) -> dict:
    """POST the search to the server; its JSON answer. Raises ServerUnavailable to fall back."""
    params = {name: _wire(value) for name, value in fields.items() if value is not None}
    if image is None:
        body, kind = json.dumps(params).encode(), "application/json"
    else:
        body, kind = _multipart(params, image)
    return _post(record, "/api/search", body, kind)


def _wire(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_wire(v) for v in value]
    return value


def _multipart(params: dict[str, Any], image: Path) -> tuple[bytes, str]:
    import secrets

    boundary = secrets.token_hex(16)
    parts = []
    for name, value in params.items():
        for item in value if isinstance(value, list) else [value]:
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{item}\r\n'.encode())
    try:
        data = Path(image).read_bytes()
    except OSError as exc:
        raise ServerUnavailable("the example image cannot be read here; let the in-process path report it") from exc
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="query"\r\n'
        f"Content-Type: application/octet-stream\r\n\r\n".encode()
        + data
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def _post(record: ServerRecord, path: str, body: bytes, kind: str) -> dict:
    # Imported here: most queries find no server running, and http.client (with ssl) is 0.03 CPU-s.
    import http.client

    url = urlsplit(record.url)
    headers = {"Content-Type": kind, "Accept": "application/json"}
    if record.token:
        headers["Authorization"] = f"Bearer {record.token}"
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=TIMEOUT_S)
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        status, payload = response.status, response.read()
    except (TimeoutError, OSError, http.client.HTTPException) as exc:
        raise ServerUnavailable(f"the server at {record.url} did not answer ({exc})") from exc
    finally:
        conn.close()
    try:
        answer = json.loads(payload)
    except ValueError as exc:
        raise ServerUnavailable(f"the server at {record.url} sent no JSON (status {status})") from exc
    if status == 200:
        return answer
    message = answer.get("error", f"status {status}") if isinstance(answer, dict) else f"status {status}"
    if status in FALL_BACK:
        raise ServerUnavailable(f"the server at {record.url} refused the query: {message}")
    raise _error_for(status)(message)


def _error_for(status: int) -> type[ClipsearchError]:
    return QueryError if 400 <= status < 500 else StoreError
