"""What an index run did, for the closing summary line."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class IndexSummary:
    new: int = 0
    updated: int = 0
    moved: int = 0
    removed: int = 0
    unchanged: int = 0
    failed: int = 0
    embedded: int = 0
    seconds: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # folders that could not be listed, why
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        rate = f", {self.embedded / self.seconds:.1f} images/s" if self.seconds > 0 and self.embedded else ""
        return (
            f"{self.new} new, {self.updated} updated, {self.moved} moved, {self.removed} removed, "
            f"{self.unchanged} unchanged, {self.failed} failed ({self.seconds:.1f} s{rate})"
        )

    def to_dict(self) -> dict:
        return {
            "new": self.new,
            "updated": self.updated,
            "moved": self.moved,
            "removed": self.removed,
            "unchanged": self.unchanged,
            "failed": self.failed,
            "embedded": self.embedded,
            "seconds": round(self.seconds, 3),
            "failures": [{"path": p, "reason": r} for p, r in self.failures],
            "unreadable": [{"path": p, "reason": r} for p, r in self.unreadable],
            "notes": list(self.notes),
        }
