"""Reliability: vectors (issue 15, cases 3 and 4).

The same bytes get the same vector, bit for bit: an exact copy of an indexed file, and a run
resumed after a kill (made exact with the fault-injection hook, not a sleep), match an
uninterrupted run vector for vector. A damaged index file is caught by its checksum and rebuilt
from the catalog instead of being served.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import catalog_rows, index_argv, index_json, ok, pattern_image, query_json, run_cli, save_image

# Photo-sized JPEGs: big enough that a JPEG draft at the thumbnail's size (320 px) and one at the
# model's (2 x 32 px for the test model) decode different pixels.
SIZE = (800, 600)


def _photos(folder: Path, n: int, seed: int = 0) -> list[Path]:
    return [
        save_image(pattern_image(seed * 100 + i, size=SIZE, grid=(16, 12)), folder / f"p{i:03d}.jpg") for i in range(n)
    ]


def _vectors(home: Path) -> dict[str, bytes]:
    return {Path(p).name: r["embedding"] for p, r in catalog_rows(home).items()}


def _index_killed_at(folder: Path, home: Path, fault: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CLIPSEARCH_HOME": str(home), "CLIPSEARCH_FAULT": fault}
    args = index_argv(folder, "--batch-size", "8", "--workers", "1")
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)


def test_an_exact_copy_gets_the_same_vector(tmp_path, home):
    folder = tmp_path / "photos"
    originals = _photos(folder / "a", 5)
    index_json(folder / "a")
    (folder / "b").mkdir()
    shutil.copyfile(originals[2], folder / "b" / "copy.jpg")
    index_json(folder / "b")  # its thumbnail exists already (same content hash)
    vectors = _vectors(home)
    assert vectors["copy.jpg"] == vectors["p002.jpg"]


def test_a_run_resumed_after_a_kill_matches_an_uninterrupted_run(tmp_path, monkeypatch):
    folder = tmp_path / "photos"
    _photos(folder, 40)
    reference = tmp_path / "reference"
    monkeypatch.setenv("CLIPSEARCH_HOME", str(reference))
    index_json(folder, "--batch-size", "8", "--workers", "1")
    want = _vectors(reference)

    killed = tmp_path / "killed"
    # Killed when the decoders (running ahead of the model) have saved 20 thumbnails: the
    # images decoded but not committed yet have thumbnails, which used to send them down
    # another decode path on the resumed run.
    proc = _index_killed_at(folder, killed, "thumbnail-saved:20")
    assert proc.returncode == -9, proc.stderr
    committed = len(catalog_rows(killed))
    assert committed < len(list((killed / "thumbs").rglob("*.jpg"))) == 20

    monkeypatch.setenv("CLIPSEARCH_HOME", str(killed))
    resumed = index_json(folder, "--batch-size", "8", "--workers", "1")
    assert resumed["new"] == 40 - committed
    got = _vectors(killed)
    assert got.keys() == want.keys()
    differing = [name for name in want if got[name] != want[name]]
    assert differing == []


def _body_offset(data: bytes) -> int:
    (hlen,) = struct.unpack("<Q", data[8:16])
    return 16 + hlen


@pytest.mark.parametrize("where", ["vectors", "id map"])
def test_a_damaged_index_file_is_rebuilt_not_served(tmp_path, home, where):
    folder = tmp_path / "photos"
    _photos(folder, 12)
    index_json(folder)
    probe = folder / "p003.jpg"
    want = query_json("--image", probe, "-k", "5")
    assert Path(want[0]["path"]).name == "p003.jpg"

    path = home / "vectors.faiss"
    data = bytearray(path.read_bytes())
    start = _body_offset(data)
    if where == "vectors":
        # 512 random bytes in the middle of the stored vectors (the file keeps its length).
        at = start + (len(data) - start) // 3
        data[at : at + 512] = np.random.default_rng(1).bytes(512)
    else:
        # IndexIDMap2 stores the ids after the vectors: swap the last two ids.
        data[-16:] = data[-8:] + data[-16:-8]
    path.write_bytes(bytes(data))

    result = ok(run_cli("query", "--image", probe, "-k", "5", "--json"))
    assert "checksum does not match" in result.stderr and "rebuilt it from the catalog" in result.stderr
    got = query_json("--image", probe, "-k", "5")
    assert [h["path"] for h in got] == [h["path"] for h in want]
    assert all(abs(g["score"] - w["score"]) < 1e-4 for g, w in zip(got, want, strict=True))
    assert got[0]["score"] <= 1.0001


def test_an_index_file_without_a_checksum_is_rebuilt_once(tmp_path, home):
    """Files written before checksums existed cannot be verified: rebuilt on first use, then trusted."""
    folder = tmp_path / "photos"
    _photos(folder, 4)
    index_json(folder)
    path = home / "vectors.faiss"
    data = path.read_bytes()
    start = _body_offset(data)
    header = json.loads(data[16:start])
    header.update(version=1, body_checksum="")
    raw = json.dumps(header).encode()
    path.write_bytes(data[:8] + struct.pack("<Q", len(raw)) + raw + data[start:])
    first = ok(run_cli("query", "a photo", "--json"))
    assert "older version" in first.stderr
    second = ok(run_cli("query", "a photo", "--json"))
    assert "note:" not in second.stderr


def test_a_temp_file_left_by_a_save_killed_mid_way_goes_with_the_next_save(tmp_path, home):
    folder = tmp_path / "photos"
    _photos(folder, 6)
    proc = _index_killed_at(folder, home, "index-temp-written")  # killed after writing, before the rename
    assert proc.returncode == -9, proc.stderr
    left = list(home.glob("vectors.faiss*.tmp"))
    assert len(left) == 1 and left[0].stat().st_size > 1000
    assert not (home / "vectors.faiss").exists()
    _photos(folder / "more", 2, seed=1)
    index_json(folder)  # saves the index again
    assert list(home.glob("vectors.faiss*.tmp")) == []
    assert (home / "vectors.faiss").exists()
