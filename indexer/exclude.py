"""What a walk leaves out: the store's own home, hidden entries, system folders, user patterns."""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# Folders that hold copies, caches or trash, never a user's photos: indexing them fills results
# with duplicates and thumbnails (NAS and desktop thumbnail caches, trash cans, version control).
DEFAULT_EXCLUDES = (
    ".thumbnails",  # freedesktop thumbnail cache
    ".Trash*",  # desktop trash (.Trash, .Trash-1000)
    "@eaDir",  # Synology thumbnails
    "#recycle",  # Synology recycle bin
    "$RECYCLE.BIN",  # Windows recycle bin
    ".git",
)


def _matcher(regexes: list[str]) -> re.Pattern | None:
    """One pattern matching any of `regexes` (from its start), or None for none."""
    if not regexes:
        return None
    return re.compile("|".join(f"(?:{r})" for r in regexes))


@dataclass(frozen=True)
class Exclusions:
    """Rules for one index run.

    Patterns are shell-style (`*`, `?`, `[...]`, case-sensitive) and match a file's or folder's
    name; a pattern containing `/` matches the path relative to the root instead. Names starting
    with `.` are hidden and skipped unless `include_hidden`. `skip_dirs` holds the (device, inode)
    of folders never entered: the store's own home, whose thumbnails would otherwise be indexed
    (and grow with every run) when a user indexes a folder holding it, such as `~`.
    """

    patterns: tuple[str, ...] = DEFAULT_EXCLUDES
    include_hidden: bool = False
    skip_dirs: frozenset[tuple[int, int]] = frozenset()
    _names: re.Pattern | None = field(init=False, repr=False, compare=False)
    _paths: re.Pattern | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = [fnmatch.translate(p) for p in self.patterns if "/" not in p]
        if not self.include_hidden:
            names.append(r"\.")  # matched from the start: a name beginning with "."
        paths = [fnmatch.translate(p.strip("/")) for p in self.patterns if "/" in p]
        object.__setattr__(self, "_names", _matcher(names))
        object.__setattr__(self, "_paths", _matcher(paths))

    @property
    def name_rule(self) -> Callable[[str], object] | None:
        """Whether a name is skipped (hidden, or matching a name pattern): one regex match, for every entry."""
        return self._names.match if self._names is not None else None

    @property
    def has_path_patterns(self) -> bool:
        """Whether files are skipped for more than their name (folders also for skip_dirs; skips_path decides)."""
        return self._paths is not None

    @classmethod
    def build(
        cls, extra: tuple[str, ...] = (), include_hidden: bool = False, skip: tuple[Path, ...] = ()
    ) -> Exclusions:
        skip_dirs = set()
        for folder in skip:
            try:
                st = os.stat(folder)
            except OSError:
                continue  # not created yet: nothing in it to index
            skip_dirs.add((st.st_dev, st.st_ino))
        return cls(DEFAULT_EXCLUDES + tuple(extra), include_hidden, frozenset(skip_dirs))

    def skips_path(self, entry: os.DirEntry, path: str, is_dir: bool, root: str) -> bool:
        """The rules beyond the name: path patterns, and the folders never entered."""
        if self._paths is not None and self._paths.match(os.path.relpath(path, root)):
            return True
        return is_dir and bool(self.skip_dirs) and self._is_skipped_dir(entry)

    def _is_skipped_dir(self, entry: os.DirEntry) -> bool:
        inode = entry.inode()  # from the directory listing: no system call
        if not any(inode == ino for _dev, ino in self.skip_dirs):
            return False
        try:
            return (entry.stat(follow_symlinks=False).st_dev, inode) in self.skip_dirs
        except OSError:
            return False
