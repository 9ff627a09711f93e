"""Finding image files under the roots, with the stat data that decides what needs work."""

from __future__ import annotations

import errno
import functools
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
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


def _is_image_name(name: str) -> bool:
    # Not os.path.splitext: this runs once per file of every re-index, and is 3x cheaper.
    dot = name.rfind(".")
    return dot > 0 and name[dot:].lower() in IMAGE_EXTENSIONS


def _is_utf8(path: str) -> bool:
    if path.isascii():  # most names are: no encoding attempt for them
        return True
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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
    if not _is_utf8(path):
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


# A folder is listed through a descriptor where the platform allows it: each file's stat then
# resolves one name instead of the whole path (a fifth of an unchanged re-index's walk).
_BY_FD = os.scandir in os.supports_fd
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
# FoundFile's own constructor is Python code; found() makes one per file.
_found_file = functools.partial(tuple.__new__, FoundFile)


class Listing(NamedTuple):
    """One folder's image files, as its listing found them."""

    prefix: str  # the folder, ending with a separator
    files: list[tuple[str, int, int]]  # (name, size, mtime_ns) of regular files with UTF-8 names, by name
    odd: list[FoundFile]  # the others, with the reason they cannot be read (or their escaped name)


@dataclass
class Walk:
    """The image files under one root, folder by folder (depth first), and the folders that could not be listed.

    Kept as bare (name, size, mtime) rows: a re-index whose walk matches the last one's
    (see walks.py) never needs a FoundFile or a full path per file.
    """

    root: str  # in its catalog (printable) form
    listings: list[Listing] = field(default_factory=list)
    unreadable: dict[str, str] = field(default_factory=dict)  # folder -> reason

    def __len__(self) -> int:
        return sum(len(listing.files) + len(listing.odd) for listing in self.listings)

    def found(self) -> list[FoundFile]:
        out: list[FoundFile] = []
        for prefix, files, odd in self.listings:
            found = [
                _found_file((prefix + name, self.root, size, mtime_ns, None, None)) for name, size, mtime_ns in files
            ]
            if odd:
                found = sorted(found + odd)
            out.extend(found)
        return out


def walk_root(root: Root, exclusions: Exclusions | None = None) -> Walk:
    """Walk one root: image files in name order, a folder's files before its subfolders.

    Directory symlinks are not followed (no loops). Folders that cannot be listed are
    recorded in `unreadable`, so that the rows under them are kept rather than swept as
    deleted, and the user is told. Excluded files and folders (see indexer.exclude) are not visited.
    """
    walk = Walk(printable_path(root.path))
    if not root.is_dir:
        folder, name = os.path.split(root.path)
        listing = Listing(folder if folder.endswith(os.sep) else folder + os.sep, [], [])
        found = _found(root.path, walk.root)
        if found.error is None and found.raw is None:
            listing.files.append((name, found.size, found.mtime_ns))
        else:
            listing.odd.append(found)
        walk.listings.append(listing)
        return walk
    exclusions = exclusions or Exclusions()
    stack = [root.path]
    while stack:
        folder = stack.pop()
        prefix = folder if folder.endswith(os.sep) else folder + os.sep
        listing, folders = Listing(prefix, [], []), []
        try:
            _list_folder(listing, walk.root, root.path, exclusions, folders)
        except OSError as exc:
            walk.unreadable[folder] = exc.strerror or str(exc)
            continue
        listing.files.sort()
        walk.listings.append(listing)
        folders.sort()
        stack.extend(reversed(folders))
    return walk


def _list_folder(listing: Listing, shown_root: str, root: str, exclusions: Exclusions, folders: list[str]) -> None:
    """One folder's image files into `listing`, its subfolders into `folders`."""
    prefix, files = listing.prefix, listing.files
    skips_name = exclusions.name_rule
    # skips_path only where a rule can apply: path patterns, and for folders the folders never entered.
    check_files = exclusions.has_path_patterns
    check_folders = check_files or bool(exclusions.skip_dirs)
    # Under a folder whose own name is not UTF-8, every file is looked at one by one (_found).
    plain = _is_utf8(prefix)
    fd = os.open(prefix, _DIR_FLAGS) if _BY_FD else None
    try:
        with os.scandir(prefix if fd is None else fd) as entries:
            for entry in entries:
                name = entry.name
                if skips_name is not None and skips_name(name):
                    continue
                try:
                    is_dir = entry.is_dir(follow_symlinks=False)
                except OSError:
                    is_dir = False
                # A file that is no image is dropped before the costlier checks.
                if not is_dir and not _is_image_name(name):
                    continue
                if (check_folders if is_dir else check_files) and exclusions.skips_path(
                    entry, prefix + name, is_dir, root
                ):
                    continue
                if is_dir:
                    folders.append(prefix + name)
                    continue
                try:
                    # Follows file symlinks: a linked photo is indexed under its link path.
                    st = entry.stat() if plain and name.isascii() else None
                except OSError:
                    st = None
                if st is not None and stat.S_ISREG(st.st_mode):
                    files.append((name, st.st_size, st.st_mtime_ns))
                else:  # errors, other kinds of file, names that may not be UTF-8: looked at one by one
                    found = _found(prefix + name, shown_root)
                    if found.error is None and found.raw is None:
                        files.append((name, found.size, found.mtime_ns))
                    else:
                        listing.odd.append(found)
    finally:
        if fd is not None:
            os.close(fd)


def scan(root: Root, unreadable: dict[str, str], exclusions: Exclusions | None = None) -> Iterator[FoundFile]:
    """The image files under a root (see walk_root); folders that could not be listed go into `unreadable`."""
    walk = walk_root(root, exclusions)
    unreadable.update(walk.unreadable)
    yield from walk.found()
