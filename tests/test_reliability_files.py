"""Reliability: what the walk and the reader meet on disk (issue 15, cases 2, 7 and 8).

Non-regular files (a FIFO, a socket, links to endless devices) are refused without being read,
the store's own home and system folders are never indexed, and a folder that cannot be listed
is reported. The CLI runs in a subprocess where a regression would hang, so it fails instead.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest
from conftest import MODEL, catalog_rows, index_argv, index_json, make_photos, ok, run_cli


def _index_subprocess(folder: Path, home: Path, *extra: str, timeout: float = 120) -> dict:
    env = {**os.environ, "CLIPSEARCH_HOME": str(home)}
    proc = subprocess.run(
        index_argv(folder, "--json", "--workers", "4", *extra),
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture
def zoo(tmp_path) -> Path:
    """Good photos behind a FIFO, a socket and links to /dev/zero, /dev/urandom and a folder."""
    folder = tmp_path / "zoo"
    make_photos(folder / "good", 4)
    os.mkfifo(folder / "a.jpg")  # sorts first: a hang here would starve everything behind it
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(folder / "sock.jpg"))
    os.symlink("/dev/zero", folder / "zero.jpg")
    os.symlink("/dev/urandom", folder / "urandom.png")
    os.symlink(folder / "good", folder / "dir_link.jpg")
    yield folder
    server.close()


def test_fifo_socket_and_devices_are_refused_without_reading(zoo, home):
    summary = _index_subprocess(zoo, home)
    reasons = {Path(f["path"]).name: f["reason"] for f in summary["failures"]}
    assert "FIFO" in reasons["a.jpg"]
    assert "socket" in reasons["sock.jpg"]
    assert "character device" in reasons["zero.jpg"] and "character device" in reasons["urandom.png"]
    assert "folder" in reasons["dir_link.jpg"]
    assert not any("1 GiB" in r for r in reasons.values())
    assert summary["new"] == 4 and summary["failed"] == 5


def test_a_file_swapped_for_a_fifo_after_the_scan_is_refused_when_opened(tmp_path):
    """The reader checks the opened descriptor, not the scan's stat: a swap cannot make it block."""
    from clipsearch.indexer.decode import MAX_FILE_BYTES, _Unreadable, read_file

    fifo = tmp_path / "swapped.jpg"
    os.mkfifo(fifo)
    with pytest.raises(_Unreadable, match="FIFO"):
        read_file(str(fifo))
    with pytest.raises(_Unreadable, match="character device"):
        read_file("/dev/zero")
    sparse = tmp_path / "huge.jpg"
    with open(sparse, "wb") as fh:
        fh.truncate(MAX_FILE_BYTES + 1)  # sparse: nothing is written, and nothing must be read
    with pytest.raises(_Unreadable, match="larger than the 1 GiB limit"):
        read_file(str(sparse))


def test_a_home_inside_the_indexed_folder_is_not_indexed(tmp_path, monkeypatch):
    folder = tmp_path / "user"
    make_photos(folder / "Pictures", 5)
    monkeypatch.setenv("CLIPSEARCH_HOME", str(folder / "clipsearch-store"))
    for _ in range(3):
        index_json(folder)
    rows = catalog_rows(folder / "clipsearch-store")
    assert any((folder / "clipsearch-store" / "thumbs").rglob("*.jpg")), "thumbnails were made"
    assert len(rows) == 5, sorted(rows)
    assert not any("clipsearch-store" in p for p in rows)


def test_hidden_and_system_folders_are_excluded_by_default(tmp_path, home):
    folder = tmp_path / "photos"
    make_photos(folder, 2)
    for sub in (".hidden", ".thumbnails/normal", ".Trash-1000/files", "@eaDir/img000.jpg", ".git/objects", "#recycle"):
        make_photos(folder / sub, 1, seed=7)
    make_photos(folder / "album", 1, seed=8, prefix="._apple_double")
    summary = index_json(folder)
    rows = catalog_rows(home)
    assert sorted(Path(p).relative_to(folder).as_posix() for p in rows) == ["img000.jpg", "img001.jpg"]
    assert summary["new"] == 2

    # --include-hidden walks hidden folders, but the system folders stay excluded.
    index_json(folder, "--include-hidden")
    names = sorted(Path(p).relative_to(folder).as_posix() for p in catalog_rows(home))
    assert names == [".hidden/img000.jpg", "album/._apple_double000.jpg", "img000.jpg", "img001.jpg"]


def test_exclude_patterns_by_name_and_by_path_and_excluded_rows_leave(tmp_path, home):
    folder = tmp_path / "photos"
    make_photos(folder / "keep", 2)
    make_photos(folder / "raw", 2, seed=1)
    make_photos(folder / "2020" / "drafts", 2, seed=2)
    make_photos(folder / "2020" / "best", 1, seed=3, prefix="final")
    index_json(folder)
    assert len(catalog_rows(home)) == 7
    summary = index_json(folder, "--exclude", "raw", "--exclude", "2020/drafts", "--exclude", "final*.jpg")
    assert summary["removed"] == 5
    assert sorted(Path(p).relative_to(folder).as_posix() for p in catalog_rows(home)) == [
        "keep/img000.jpg",
        "keep/img001.jpg",
    ]


def test_an_unreadable_subfolder_is_reported_and_its_rows_kept(tmp_path, home, monkeypatch):
    """Permission denied on a folder (simulated: the tests run as root, whom modes do not stop)."""
    folder = tmp_path / "photos"
    make_photos(folder / "open", 2)
    make_photos(folder / "locked", 2, seed=1)
    assert index_json(folder)["new"] == 4
    locked = str(folder / "locked")

    def guarded(real):
        def call(path=".", *args, **kwargs):
            if os.path.normpath(str(path)) == locked:
                raise PermissionError(13, "Permission denied", locked)
            return real(path, *args, **kwargs)

        return call

    # The walk lists a folder by path, or opens it and lists the descriptor where the platform can.
    monkeypatch.setattr(os, "scandir", guarded(os.scandir))
    monkeypatch.setattr(os, "open", guarded(os.open))
    summary = index_json(folder)
    assert summary["unreadable"] == [{"path": locked, "reason": "Permission denied"}]
    assert summary["removed"] == 0 and len(catalog_rows(home)) == 4
    out = ok(run_cli("index", folder, "--model", MODEL)).stdout
    assert f"unreadable folder: {locked}: Permission denied" in out
