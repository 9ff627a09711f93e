"""Odd and hostile files: each is indexed or recorded as failed with a readable reason; the run goes on."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import catalog_rows, index_json, ok, run_cli
from PIL import Image


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _bomb_png() -> bytes:
    """A tiny file whose header claims 100,000 x 100,000 pixels."""
    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + _png_chunk(b"IEND", b"")
    )


def _encoded(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _noise(w: int, h: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


GOOD = {
    "plain.jpg": lambda: _encoded(_noise(64, 48, 1), "JPEG"),
    "png_named.jpg": lambda: _encoded(_noise(64, 48, 2), "PNG"),
    "one_pixel.png": lambda: _encoded(Image.new("RGB", (1, 1), (9, 9, 9)), "PNG"),
    "very_wide.png": lambda: _encoded(Image.new("RGB", (20_000, 3), (1, 2, 3)), "PNG"),
    "palette.gif": lambda: _encoded(Image.new("P", (64, 48), 3), "GIF"),
    "transparent.png": lambda: _encoded(Image.new("RGBA", (64, 48), (0, 0, 0, 0)), "PNG"),
    "grey.png": lambda: _encoded(Image.new("L", (64, 48), 100), "PNG"),
    "sixteen_bit.png": lambda: _encoded(
        Image.fromarray((np.arange(64 * 48).reshape(48, 64) * 20).astype(np.uint16)), "PNG"
    ),
    "cmyk.jpg": lambda: _encoded(Image.new("CMYK", (64, 48), (0, 100, 100, 0)), "JPEG"),
    "animated.gif": lambda: _encoded(
        Image.new("RGB", (32, 32), (200, 0, 0)),
        "GIF",
        save_all=True,
        append_images=[Image.new("RGB", (32, 32), (0, 0, 200))],
    ),
    "animated.webp": lambda: _encoded(
        Image.new("RGB", (32, 32), (200, 0, 0)),
        "WEBP",
        save_all=True,
        append_images=[Image.new("RGB", (32, 32), (0, 0, 200))],
    ),
    "corrupt_exif.jpg": lambda: _encoded(
        Image.new("RGB", (64, 48), (5, 5, 5)),
        "JPEG",
        exif=b"Exif\x00\x00II*\x00\x08\x00\x00\x00\xff\xff\x00\x00garbage",
    ),
    ("L" * 240) + ".jpg": lambda: _encoded(_noise(64, 48, 3), "JPEG"),
}

BAD = {
    "zero.jpg": (lambda: b"", "empty file"),
    "truncated.jpg": (lambda: _encoded(_noise(300, 200, 4), "JPEG")[:2000], "truncated"),
    "truncated.png": (lambda: _encoded(_noise(300, 200, 5), "PNG")[:5000], "truncated"),
    "random.png": (lambda: np.random.default_rng(6).bytes(5000), "not a recognised image format"),
    "text.jpg": (lambda: b"hello, I am not a picture\n" * 20, "not a recognised image format"),
    "bomb.png": (_bomb_png, "CLIPSEARCH_MAX_MEGAPIXELS"),
}


@pytest.fixture
def hostile(tmp_path) -> Path:
    folder = tmp_path / "hostile"
    folder.mkdir()
    for name, make in GOOD.items():
        (folder / name).write_bytes(make())
    for name, (make, _) in BAD.items():
        (folder / name).write_bytes(make())
    for orientation in range(1, 9):
        img = _noise(40, 30, 10 + orientation)
        exif = Image.Exif()
        exif[0x0112] = orientation
        img.save(folder / f"orient{orientation}.jpg", exif=exif)
    os.symlink(folder / "missing-target.jpg", folder / "broken_link.jpg")
    os.symlink("loop_b.jpg", folder / "loop_a.jpg")
    os.symlink("loop_a.jpg", folder / "loop_b.jpg")
    (folder / "dirloop").mkdir()
    os.symlink("..", folder / "dirloop" / "up")
    with open(os.fsencode(folder) + b"/not_utf8_\xff\xfe.jpg", "wb") as fh:
        fh.write(GOOD["plain.jpg"]())
    return folder


def test_every_odd_file_is_indexed_or_failed_with_a_reason(hostile, home):
    summary = index_json(hostile)
    failures = {Path(f["path"]).name: f["reason"] for f in summary["failures"]}
    for name, (_, reason) in BAD.items():
        assert reason in failures.get(name, ""), f"{name}: {failures.get(name)!r}"
    assert "broken symlink" in failures["broken_link.jpg"]
    assert "symlink loop" in failures["loop_a.jpg"] and "symlink loop" in failures["loop_b.jpg"]
    assert "not_utf8_\\xff\\xfe.jpg" not in failures  # indexed (tests/test_reliability_names.py)

    rows = catalog_rows(home)
    ok_names = {Path(p).name for p, r in rows.items() if r["status"] == "ok"}
    expected_ok = set(GOOD) | {f"orient{o}.jpg" for o in range(1, 9)} | {"not_utf8_\\xff\\xfe.jpg"}
    assert ok_names == expected_ok
    assert summary["new"] == len(expected_ok) and summary["failed"] == len(failures)
    for o in range(1, 9):
        row = next(r for p, r in rows.items() if p.endswith(f"orient{o}.jpg"))
        assert (row["width"], row["height"]) == ((30, 40) if o >= 5 else (40, 30))
    # The directory loop was not followed: nothing was indexed twice through dirloop/up.
    assert not any("/dirloop/" in p for p in rows)

    # A second run finds nothing new to embed and does not crash on the same files.
    again = index_json(hostile)
    assert again["embedded"] == 0 and again["new"] == 0


def test_files_deleted_or_rewritten_between_scan_and_decode(tmp_path, monkeypatch):
    """A file that vanishes or changes after the scan is reported, not fatal."""
    import clipsearch.indexer.decode as decode_mod

    folder = tmp_path / "volatile"
    folder.mkdir()
    for i in range(6):
        (folder / f"p{i}.jpg").write_bytes(_encoded(_noise(40, 30, 20 + i), "JPEG"))
    real_decode = decode_mod.decode

    def racing_decode(job, *args, **kwargs):
        name = Path(job.file.path).name
        if name == "p1.jpg":
            os.unlink(job.file.path)
        if name == "p2.jpg":
            Path(job.file.path).write_bytes(b"rewritten into garbage")
        return real_decode(job, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr("clipsearch.indexer.runner.decode", racing_decode)
        summary = index_json(folder)
    failures = {Path(f["path"]).name: f["reason"] for f in summary["failures"]}
    assert "cannot read" in failures["p1.jpg"]
    assert "not a recognised image format" in failures["p2.jpg"]
    assert summary["new"] == 4
    # The next run forgets the deleted file and keeps reporting the broken one.
    later = index_json(folder)
    assert later["removed"] == 1 and later["failed"] == 1
    assert ok(run_cli("status", "--json")).stdout.count('"failed": 1') == 1


def test_an_unreadable_file_is_reported(tmp_path, monkeypatch):
    """Permission denied (simulated: the tests run as root, whom file modes do not stop)."""
    folder = tmp_path / "perm"
    folder.mkdir()
    for i in range(3):
        (folder / f"q{i}.jpg").write_bytes(_encoded(_noise(40, 30, 40 + i), "JPEG"))
    locked = str(folder / "q1.jpg")
    real_open = os.open

    def guarded_open(path, *args, **kwargs):
        if str(path) == locked:
            raise PermissionError(13, "Permission denied", locked)
        return real_open(path, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(os, "open", guarded_open)
        summary = index_json(folder)
    assert summary["new"] == 2
    assert summary["failures"] == [{"path": locked, "reason": "cannot read: Permission denied"}]
