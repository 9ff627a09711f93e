"""What a re-index needs to know to skip the catalog: each root's last complete walk.

A run that completes records, for each root it walked, a digest of what the walk found (every
path with its size and modification time) and the catalog's rows counter after the run. The
next run walks again; when the digest and the counter are both unchanged, nothing under the root
changed on disk and no one changed the catalog since, so the run plans nothing without reading
the root's rows (a third of the CPU time of re-indexing an unchanged 20k-file folder). Any
transaction that writes image rows, by any run on any machine sharing the catalog, moves the
counter (facts.ROWS_SEQ_KEY); the record is only a shortcut, and a missing or unreadable one
means the run reads the catalog as usual.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from array import array
from pathlib import Path

from clipsearch.atomic import write_atomically
from clipsearch.image_types import IMAGE_EXTENSIONS
from clipsearch.indexer.exclude import Exclusions
from clipsearch.indexer.scan import Root, Walk
from clipsearch.settings import Settings

WALKS_NAME = "walks.json"
MAX_RECORDS = 1000  # folders walked most recently; older ones read the catalog on their next run
# Part of every key: a release that lists other files (new extensions, other default
# exclusions) or compares them differently starts from the catalog again.
_FORMAT = 1


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def walk_digest(walk: Walk) -> str | None:
    """The digest of one walk's files; None when it met a folder it could not list or a file it could
    not stat (or whose name is not UTF-8): such runs always read the catalog."""
    if walk.unreadable:
        return None
    h = hashlib.blake2b(digest_size=16)
    for prefix, files, odd in walk.listings:
        if odd:
            return None
        if not files:
            continue
        # Whole columns at once (a join and two arrays): a line per file cost four times as much.
        names, sizes, mtimes = zip(*files, strict=True)
        h.update(len(files).to_bytes(8, "little"))
        h.update(f"{prefix}\0{chr(0).join(names)}\0".encode("utf-8", "surrogateescape"))
        h.update(array("q", sizes).tobytes())
        h.update(array("q", mtimes).tobytes())
    return h.hexdigest()


class WalkRecords:
    """One index run's use of the walk records, kept in the store's home (one file, keyed by catalog)."""

    def __init__(self, settings: Settings, exclusions: Exclusions, rows_seq: int):
        self.path = Path(settings.home) / WALKS_NAME
        # One home may point at several catalogs over time (CLIPSEARCH_DATABASE_URL): a record
        # is only ever compared with the counter of the catalog that made it.
        self.catalog = _digest(settings.catalog_url)
        exts = sorted(IMAGE_EXTENSIONS)
        self.rules = (_FORMAT, exclusions.patterns, exclusions.include_hidden, sorted(exclusions.skip_dirs), exts)
        self.rows_seq = rows_seq  # the catalog's rows counter when the run started
        self.walked: dict[str, str] = {}  # key -> digest of this run's clean walks
        self._recorded: dict[str, list] | None = None  # the records as the run found them, read once

    def unchanged(self, root: Root, walk: Walk) -> bool:
        """Whether the last complete run over `root` walked the same files, with the catalog as it is now.

        Folders only: a file named on the command line costs one row to compare, and a script that
        indexes each new photo by name would grow the records without end.
        """
        digest = walk_digest(walk) if root.is_dir else None
        if digest is None:
            return False
        key = _digest(repr((self.rules, root.path)))
        self.walked[key] = digest
        if self._recorded is None:
            self._recorded = self._load()
        return self._recorded.get(key) == [self.rows_seq, digest]

    def save(self, rows_seq: int) -> None:
        """Record this run's walks, once it has completed, with the rows counter after it.

        The index lock kept every other run out of these roots meanwhile, so the rows under
        them are what the walks found, whatever other roots' runs did to the counter.
        """
        walks = self._load()  # read again: another run may have recorded other folders meanwhile
        fresh = {key: [rows_seq, digest] for key, digest in self.walked.items()}
        if all(walks.get(key) == record for key, record in fresh.items()):
            return  # an unchanged run over unchanged folders: nothing new to record
        for key in fresh:
            walks.pop(key, None)  # re-inserted last: the oldest records are the first dropped
        walks.update(fresh)
        kept = dict(list(walks.items())[-MAX_RECORDS:])
        data = json.dumps({"catalog": self.catalog, "walks": kept}).encode()
        with contextlib.suppress(OSError):  # only a shortcut: the next run reads the catalog instead
            write_atomically(self.path, data, durable=False)

    def _load(self) -> dict[str, list]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("catalog") != self.catalog or not isinstance(data.get("walks"), dict):
            return {}
        return data["walks"]
