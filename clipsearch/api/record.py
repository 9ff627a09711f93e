"""The running server's record in the store: where it listens, its pid and its token.

`clipsearch serve` writes it (owner-only, mode 0600: it holds the token) once it accepts
connections and removes it on exit; `clipsearch query` reads it to send queries there. A
record whose process is gone (killed, machine restarted) is stale: readers ignore and remove it.
Standard library only: the query path through a server must stay light.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

RECORD_NAME = "server.json"


@dataclass(frozen=True)
class ServerRecord:
    url: str  # http://127.0.0.1:8700, reachable from this machine
    pid: int
    token: str | None
    catalog: str  # a key of the catalog URL it serves: the same home may be used with another DATABASE_URL
    # The machine (or container) it runs on: a store shared between containers is read by processes
    # that cannot see the server's pid, and must neither use nor remove its record.
    host: str = ""

    def alive(self) -> bool:
        return pid_alive(self.pid)

    def is_local(self) -> bool:
        return self.host == socket.gethostname()


def catalog_key(catalog_url: str) -> str:
    """Names the catalog a server serves without writing its URL (and password) into the record."""
    return hashlib.sha256(catalog_url.encode()).hexdigest()[:32]


def record_path(home: Path) -> Path:
    return Path(home) / RECORD_NAME


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by someone else
    return True


def write_record(home: Path, record: ServerRecord) -> Path:
    """Write the record atomically with mode 0600 (it holds the token)."""
    path = record_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-server-", suffix=".json")  # mkstemp: mode 0600
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(asdict(record), fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_record(home: Path) -> ServerRecord | None:
    """The live server's record, or None; a stale record (dead pid) is removed."""
    path = record_path(home)
    try:
        data = json.loads(path.read_text())
        record = ServerRecord(
            url=str(data["url"]),
            pid=int(data["pid"]),
            token=data.get("token"),
            catalog=str(data["catalog"]),
            host=str(data.get("host", "")),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        return None  # unreadable or half-written by hand: not ours to judge, ignore it
    if not record.is_local():
        return None
    if not record.alive():
        remove_record(home, record.pid)
        return None
    return record


def remove_record(home: Path, pid: int) -> None:
    """Remove the record if it is still the one written by `pid` (a newer server may have replaced it)."""
    path = record_path(home)
    try:
        if int(json.loads(path.read_text()).get("pid", -1)) == pid:
            path.unlink()
    except (OSError, ValueError, AttributeError, TypeError):
        pass
