"""Finding image files under the roots, with the stat data that decides what needs work."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from typing import NamedTuple

from clipsearch.image_types import IMAGE_EXTENSIONS
from clipsearch.indexer.exclude import Exclusions


class FoundFile(NamedTuple):
    """One image file found on disk (a tuple: a walk makes one per file, and it must stay cheap)."""

    path: str
    root: str
    size: int
    mtime_ns: int
    error: str | None = None  # set when the file is listed but cannot be stat'ed or read
    # The path's exact bytes when they are not valid UTF-8: `path` then shows them as \xNN
    # escapes (what the catalog and a terminal can hold), and the file is opened by these bytes.
    raw: bytes | None = None


@dataclass(frozen=True)
class Root:
    path: str
    is_dir: bool


def resolve_roots(paths: list[Path]) -> list[Root]:
    """The roots to walk: absolute, existing, and without overlaps.

    A root inside another one (`index DIR/a DIR`, or the same folder twice) is walked once, as
    part of the outer root: two walks of one file would plan it twice and write it twice.
    """
    roots = []
    for p in paths:
        resolved = Path(os.path.abspath(os.path.expanduser(p)))
        if not resolved.exists():
            raise FileNotFoundError(2, "no such file or folder", str(p))
        roots.append(Root(str(resolved), resolved.is_dir()))
    return _without_overlaps(roots)


def _without_overlaps(roots: list[Root]) -> list[Root]:
    kept: list[Root] = []
    for root in sorted(roots, key=lambda r: r.path):
        # Sorted, so an outer folder comes before everything inside it.
        if any(
            r.path == root.path or (r.is_dir and root.path.startswith(r.path.rstrip(os.sep) + os.sep)) for r in kept
        ):
            continue
        kept.append(root)
    return kept


_entry_name = attrgetter("name")


def _is_image_name(name: str) -> bool:
    # Not os.path.splitext: this runs once per file of every re-index, and is 3x cheaper.
    dot = name.rfind(".")
    return dot > 0 and name[dot:].lower() in IMAGE_EXTENSIONS


def printable_path(path: str) -> str:
    """The path as text a database and a terminal accept (undecodable bytes as \\xNN escapes)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


_NOT_REGULAR = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISDIR, "a folder"),
)


def not_regular_reason(mode: int) -> str | None:
    """Why a file of this mode is never read (reading a FIFO blocks forever, /dev/zero never ends)."""
    if stat.S_ISREG(mode):
        return None
    kind = next((name for test, name in _NOT_REGULAR if test(mode)), "not a regular file")
    return f"not a regular file: it is {kind}; only regular files are indexed"


def _found(path: str, root: str) -> FoundFile:
    """One listed file; `root` is already in its catalog (printable) form."""
    if not path.isascii():  # most names are ASCII: no encoding attempt for them
        try:
            path.encode("utf-8")
        except UnicodeEncodeError:
            return _found_undecodable(path, root)
    return _stat(path, path, root)


def _found_undecodable(path: str, root: str) -> FoundFile:
    """A file whose name is not valid UTF-8 (old cameras, Windows archives): kept under its escaped name."""
    shown, raw = printable_path(path), os.fsencode(path)
    if os.path.lexists(shown):
        # A real file is literally named like the escaped form: the catalog could not tell them apart.
        reason = f"its name, shown with \\x escapes, is the name of another file ({shown}); rename one of them"
        return FoundFile(shown, root, 0, 0, error=reason, raw=raw)
    return _stat(raw, shown, root)._replace(raw=raw)


def _stat(target: str | bytes, path: str, root: str) -> FoundFile:
    try:
        st = os.stat(target)  # follows file symlinks: a linked photo is indexed under its link path
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            reason = "symlink loop"
        elif os.path.islink(target):
            reason = "broken symlink (its target does not exist)"
        else:
            reason = exc.strerror or str(exc)
        return FoundFile(path, root, 0, 0, error=f"cannot stat: {reason}")
    if not stat.S_ISREG(st.st_mode):
        return FoundFile(path, root, 0, 0, error=not_regular_reason(st.st_mode))
    return FoundFile(path, root, st.st_size, st.st_mtime_ns)


def scan(root: Root, unreadable: dict[str, str], exclusions: Exclusions | None = None) -> Iterator[FoundFile]:
    """Image files under a root, depth first. Directory symlinks are not followed (no loops).

    Folders that cannot be listed are recorded in `unreadable` (folder -> reason), so that
    the rows under them are kept rather than swept as deleted, and the user is told.
    Excluded files and folders (see indexer.exclude) are not visited.
    """
    shown_root = printable_path(root.path)
    if not root.is_dir:
        yield _found(root.path, shown_root)
        return
    exclusions = exclusions or Exclusions()
    stack = [root.path]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=_entry_name)
        except OSError as exc:
            unreadable[folder] = exc.strerror or str(exc)
            continue
        for entry in entries:
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            # A file that is no image is never yielded: dropped before the costlier exclusion check.
            if not is_dir and not _is_image_name(entry.name):
                continue
            if exclusions.skips(entry, is_dir, root.path):
                continue
            if is_dir:
                stack.append(entry.path)
            else:
                yield _found(entry.path, shown_root)
