"""clipsearch.originals: an original is served only while it is still the catalog row's file."""

from __future__ import annotations

import os

import pytest
from conftest import catalog_rows, index_json, pattern_image, save_image

from clipsearch import originals
from clipsearch.errors import OriginalChangedError, OriginalMissingError
from clipsearch.settings import Settings
from clipsearch.store import Store


@pytest.fixture
def store(backend, home, photos):
    index_json(photos)
    opened = Store.open(Settings.from_env(home))
    yield opened
    opened.close()


def _original(store, home, path) -> originals.Original:
    found = originals.lookup(store.catalog, catalog_rows(home)[str(path)]["id"])
    assert found is not None and found.path == str(path)
    return found


def _same_stat(target, like) -> None:
    st = like.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_unchanged_files_are_read_changed_or_missing_ones_refused(store, home, photos, tmp_path):
    path = photos / "exif" / "upright.jpg"
    assert originals.read_original(_original(store, home, path)) == path.read_bytes()
    fh, st = originals.open_original(_original(store, home, path))
    with fh:
        assert st.st_size == path.stat().st_size

    # Unknown and failed ids are not found.
    assert originals.lookup(store.catalog, 10**9) is None
    bad = tmp_path / "bad"
    (bad / "broken.jpg").parent.mkdir()
    (bad / "broken.jpg").write_bytes(b"not a jpeg")
    index_json(bad)
    failed_id = catalog_rows(home)[str(bad / "broken.jpg")]["id"]
    assert originals.lookup(store.catalog, failed_id) is None

    # Changed or missing files are refused.
    grown = photos / "img000.jpg"
    found = _original(store, home, grown)
    grown.write_bytes(grown.read_bytes() + b"\0")
    with pytest.raises(OriginalChangedError, match="changed on disk"):
        originals.read_original(found)

    touched = photos / "img001.jpg"
    found = _original(store, home, touched)
    os.utime(touched, ns=(0, touched.stat().st_mtime_ns + 1))
    with pytest.raises(OriginalChangedError):
        originals.read_original(found)

    gone = photos / "img002.png"
    found = _original(store, home, gone)
    gone.unlink()
    with pytest.raises(OriginalMissingError, match="no longer on disk"):
        originals.read_original(found)


def test_swaps_after_indexing_are_refused(store, home, photos, tmp_path):
    """A symlink, FIFO, folder or folder link put in a file's place, even when the symlink's target
    has the size and mtime the row recorded (a planted twin)."""
    path = photos / "img003.jpg"
    found = _original(store, home, path)
    secret = tmp_path / "secret"
    secret.write_bytes(b"s" * path.stat().st_size)
    _same_stat(secret, path)
    path.unlink()
    path.symlink_to(secret)
    with pytest.raises(OriginalChangedError, match="symbolic link"):
        originals.read_original(found)

    # A FIFO or a folder swapped in: refused, without blocking on the FIFO.
    path = photos / "img004.jpg"
    found = _original(store, home, path)
    path.unlink()
    os.mkfifo(path)
    with pytest.raises(OriginalChangedError):
        originals.read_original(found)
    path.unlink()
    path.mkdir()
    with pytest.raises(OriginalChangedError):
        originals.read_original(found)

    # A folder link below the indexed root.
    path = photos / "exif" / "rotated.jpg"
    found = _original(store, home, path)
    (photos / "exif").rename(tmp_path / "moved")
    (photos / "exif").symlink_to(tmp_path / "moved", target_is_directory=True)
    with pytest.raises(OriginalChangedError, match="folder"):
        originals.read_original(found)


def test_a_photo_indexed_through_a_link_is_served(backend, home, tmp_path):
    real = save_image(pattern_image(77), tmp_path / "elsewhere" / "real.jpg")
    folder = tmp_path / "linked"
    folder.mkdir()
    (folder / "link.jpg").symlink_to(real)
    index_json(folder)
    store = Store.open(Settings.from_env(home))
    try:
        found = _original(store, home, folder / "link.jpg")
        assert originals.read_original(found) == real.read_bytes()
        # Re-pointed at another file after indexing (a new link): refused.
        twin = tmp_path / "twin.jpg"
        twin.write_bytes(b"t" * real.stat().st_size)
        _same_stat(twin, real)
        (folder / "link.jpg").unlink()
        (folder / "link.jpg").symlink_to(twin)
        with pytest.raises(OriginalChangedError):
            originals.read_original(found)
    finally:
        store.close()


def test_a_file_whose_name_is_not_utf8_is_served_by_its_original_bytes(backend, home, tmp_path):
    folder = tmp_path / "archive"
    folder.mkdir()
    raw = os.path.join(os.fsencode(folder), b"caf\xe9.jpg")
    save_image(pattern_image(3), tmp_path / "staged.jpg")
    os.rename(tmp_path / "staged.jpg", raw)
    index_json(folder)
    row = next(r for r in catalog_rows(home).values() if r["path_bytes"] == raw)
    opened = Store.open(Settings.from_env(home))
    try:
        found = originals.lookup(opened.catalog, row["id"])
    finally:
        opened.close()
    assert found is not None and found.path == str(folder / "caf\\xe9.jpg")
    with open(raw, "rb") as fh:
        assert originals.read_original(found) == fh.read()
