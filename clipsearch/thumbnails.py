"""Small JPEG previews of indexed images, cached under the store's home by content hash.

The web grid shows these instead of decoding full-size originals on every page view.
The indexer writes them while it has each image decoded anyway; anything it missed (a store
indexed before thumbnails existed, a failed write) is made on first request.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clipsearch.atomic import write_atomically
from clipsearch.errors import StoreError
from clipsearch.settings import Settings

if TYPE_CHECKING:
    from PIL import Image

# Pillow (and numpy, through clipsearch.imaging) are imported when a thumbnail is made: an index
# run that finds nothing new only checks which folders are covered.

JPEG_QUALITY = 82
COVERED_NAME = ".covered.json"  # folders whose every image had a thumbnail, and when


def encode_thumbnail(rgb: Image.Image, side: int) -> bytes:
    """An RGB image -> JPEG bytes whose longer side is at most `side` pixels."""
    from PIL import Image

    thumb = rgb.copy()
    # reducing_gap=1: box-reduce first, then Lanczos; ~3x faster than the default 2.0 on
    # photo-sized inputs with no visible difference at thumbnail size (this runs per indexed image).
    thumb.thumbnail((side, side), Image.Resampling.LANCZOS, reducing_gap=1.0)
    buf = io.BytesIO()
    thumb.convert("RGB").save(buf, "JPEG", quality=JPEG_QUALITY, optimize=True)
    return buf.getvalue()


class DiskReserveError(OSError):
    """Writing a thumbnail would eat into the disk space kept for the catalog."""


class Thumbnails:
    """The thumbnail cache of one store: thumbs/ab/abcdef....jpg."""

    def __init__(self, root: Path, side: int, max_megapixels: float, reserve_bytes: int = 0):
        self.root = Path(root)
        self.side = side
        self.max_megapixels = max_megapixels
        self.reserve_bytes = reserve_bytes
        self.paused_at: int | None = None  # free bytes when writing stopped for the reserve

    @classmethod
    def for_settings(cls, settings: Settings) -> Thumbnails:
        reserve = settings.disk_reserve_mb << 20
        return cls(settings.home / "thumbs", settings.thumbnail_size, settings.max_megapixels, reserve)

    def _check_reserve(self) -> None:
        """Stop writing (for good, in this process) once free space falls under the reserve."""
        if self.paused_at is None and self.reserve_bytes:
            folder = self.root if self.root.is_dir() else self.root.parent
            st = os.statvfs(folder)
            free = st.f_bavail * st.f_frsize
            if free < self.reserve_bytes:
                self.paused_at = free
        if self.paused_at is not None:
            raise DiskReserveError(28, "thumbnails paused to keep disk space for the catalog", str(self.root))

    def reserve_note(self) -> str | None:
        """What to tell the user when thumbnails were paused, or None."""
        if self.paused_at is None:
            return None
        return (
            f"thumbnails paused: {self.paused_at / 2**20:.0f} MiB free under {self.root.parent}, less than the "
            f"{self.reserve_bytes >> 20} MiB kept for the catalog (CLIPSEARCH_DISK_RESERVE_MB); free some space and "
            f"run the same command again to make the missing ones"
        )

    def path_for(self, digest: str) -> Path:
        if not digest or not all(c in "0123456789abcdef" for c in digest):
            # Hashes come from the catalog, but a bad one must never become a path outside root.
            raise StoreError(f"not a content hash: {digest!r}")
        return self.root / digest[:2] / f"{digest}.jpg"

    def has(self, digest: str) -> bool:
        return self.path_for(digest).is_file()

    def existing(self) -> set[str]:
        """Hashes with a thumbnail, from one listing per shard (much cheaper than a stat per image)."""
        found: set[str] = set()
        if not self.root.is_dir():
            return found
        for shard in os.scandir(self.root):
            if shard.is_dir(follow_symlinks=False):
                found.update(
                    name[:-4] for name in os.listdir(shard.path) if name.endswith(".jpg") and not name.startswith(".")
                )
        return found

    def covers(self, folders: list[str], seq: int) -> list[bool]:
        """For each folder: whether every image under it had a thumbnail at catalog sequence `seq`,
        with none removed since.

        Lets a re-index of an unchanged folder skip listing the whole cache (a tenth of such a run).
        """
        marks = self._marks()
        if not marks:
            return [False] * len(folders)
        stamp = [seq, self._fingerprint()]
        return [marks.get(folder) == stamp for folder in folders]

    def mark_covered(self, folders: list[str], seq: int) -> None:
        """Record that every image under `folders` has a thumbnail now (at catalog sequence `seq`)."""
        marks = self._marks()
        stamp = [seq, self._fingerprint()]
        marks.update((folder, stamp) for folder in folders)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            write_atomically(self.root / COVERED_NAME, json.dumps(marks).encode(), durable=False)
        except OSError:
            pass  # only an optimisation: the next run lists the cache instead

    def _marks(self) -> dict[str, Any]:
        try:
            marks = json.loads((self.root / COVERED_NAME).read_text())
        except (OSError, ValueError):
            return {}
        return marks if isinstance(marks, dict) else {}

    def _fingerprint(self) -> str:
        """Changes whenever a thumbnail is added to or removed from any shard (their folder mtimes)."""
        if not self.root.is_dir():
            return ""
        with os.scandir(self.root) as it:
            shards = sorted(
                f"{e.name}:{e.stat(follow_symlinks=False).st_mtime_ns}" for e in it if e.is_dir(follow_symlinks=False)
            )
        return hashlib.blake2b("/".join(shards).encode(), digest_size=16).hexdigest()

    def save(self, digest: str, rgb: Image.Image) -> Path:
        """Write the thumbnail of an already decoded image (atomically: readers never see half a file)."""
        path = self.path_for(digest)
        self._check_reserve()
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, encode_thumbnail(rgb, self.side), durable=False)
        return path

    def get(self, digest: str | None, original: str | Path) -> bytes:
        """The thumbnail bytes for an indexed image, made from `original` when missing.

        `original` must be a path read from the catalog, never one supplied by a user.
        Raises StoreError when the original is gone and no thumbnail was kept, and
        ImageDecodeError when the original can no longer be decoded.
        """
        if digest:
            cached = self.path_for(digest)
            if cached.is_file():
                return cached.read_bytes()
        return self.make(read_original(original))

    def make(self, data: bytes) -> bytes:
        """The thumbnail of an original's bytes, kept in the cache when the home is writable."""
        from clipsearch.imaging import content_hash, load_rgb

        rgb, _info = load_rgb(data, self.max_megapixels, min_side=self.side)
        # Keyed by the bytes actually read: if the file changed since it was indexed,
        # its old hash must not end up showing the new picture.
        try:
            return self.save(content_hash(data), rgb).read_bytes()
        except OSError:
            # The cache is an optimisation; a read-only home still gets its preview.
            return encode_thumbnail(rgb, self.side)


def read_original(path: str | Path) -> bytes:
    """An indexed file's bytes, with readable errors for the ways it can have gone away."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError as exc:
        raise StoreError(
            f"{path} is no longer on disk; run `clipsearch index` on its folder to update the catalog"
        ) from exc
    except IsADirectoryError as exc:
        raise StoreError(f"{path} is now a folder, not an image; re-run `clipsearch index`") from exc
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror or exc}") from exc
