"""What front ends ask the search service, and what it answers.

SearchRequest is the one place where request fields live: the CLI options, the UI's controls
and the HTTP API's parameters all map onto its fields, so every front end gets every feature.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from PIL import Image

from clipsearch.catalog import ImageMeta
from clipsearch.errors import ImageDecodeError, QueryError
from clipsearch.imaging import load_rgb
from clipsearch.search.filters import SORTS, file_extensions
from clipsearch.search.terms import QueryTerm, parse_query

MAX_K = 10_000


@dataclass(frozen=True)
class SearchRequest:
    """One search. Every field is optional except that some term must say what to look for.

    Terms (the query vector is their weighted sum of normalised vectors, renormalised):
      text      words to look for; may use the compact form `2:cat + snow - 0.5:people`, whose
                terms are all texts here (a front end that may read files resolves image paths
                into `plus`/`minus` itself, see `terms.parse_query`)
      image     an example picture, added with weight 1
      image_id  an indexed image's id: its stored vector is added with weight 1 ("more like this")
      plus      further terms to add (texts or images, each with a positive weight)
      minus     terms to subtract: their concept is pushed out of the results

    Paging and filters:
      k             how many results (1..10,000)
      offset        skip this many results first (paging)
      folder        only images at or under this folder (absolute, or relative to the working dir)
      min_score     only results whose cosine score is at least this
      taken_after   only photos whose EXIF capture time is on/after this
      taken_before  only photos whose EXIF capture time is on/before this
      camera        only photos whose EXIF camera (make and model) contains this, ignoring case
      file_types    only these file types: names from filters.FILE_TYPES (jpeg, png, webp, gif, bmp, tiff, heic)
      min_width     only images at least this many pixels wide (as displayed, after EXIF rotation)
      min_height    only images at least this many pixels high
      tag           only images given this label by zero-shot tagging (`clipsearch tag`)
      sort          "score" (best first, the default), "date" (the top matches by capture time, oldest
                    first) or "date-desc" (newest first); undated photos come last either way
      collapse      show each group of near-duplicates (cosine >= 0.95, as `clipsearch duplicates`) once,
                    as its best member (the most pixels, then the biggest file, then the earliest); the
                    others are the hit's `duplicates`, and paging counts groups

    Text embedding:
      raw           True: text terms are embedded as typed; False: each is averaged with the model's
                    prompt templates ("a photo of {}." ..., prompt ensembling); None (the default): as
                    the model's record says (`clipsearch.models.prompts`). Image terms are unaffected.

    Filters are applied before ranking: a filter matching few images ranks exactly among them, a
    broad one widens the approximate search, so k results come back whenever k images match.
    """

    text: str | None = None
    image: Image.Image | None = None
    image_id: int | None = None
    plus: tuple[QueryTerm, ...] = ()
    minus: tuple[QueryTerm, ...] = ()
    k: int = 20
    offset: int = 0
    folder: str | None = None
    min_score: float | None = None
    taken_after: datetime | None = None
    taken_before: datetime | None = None
    camera: str | None = None
    file_types: tuple[str, ...] = ()
    min_width: int | None = None
    min_height: int | None = None
    tag: str | None = None
    sort: str = "score"
    raw: bool | None = None
    collapse: bool = False

    def terms(self) -> list[tuple[int, QueryTerm]]:
        """Every term with its sign (+1 added, -1 subtracted), in the order they were given."""
        plus, minus = parse_query(self.text) if self.text else ([], [])
        signed = [(1, t) for t in plus] + [(-1, t) for t in minus]
        if self.image is not None:
            signed.append((1, QueryTerm(image=self.image, label="example image")))
        if self.image_id is not None:
            signed.append((1, QueryTerm(image_id=self.image_id)))
        signed += [(1, t) for t in self.plus] + [(-1, t) for t in self.minus]
        return signed

    def validate(self) -> None:
        """Reject a request that cannot be answered, before any model is loaded."""
        signs = [sign for sign, _ in self.terms()]
        if not signs:
            raise QueryError("empty query: give some text, an --image, or both")
        if 1 not in signs:
            raise QueryError("the query only has terms to exclude: add something to look for (text, --image or --plus)")
        if self.k < 1 or self.k > MAX_K:
            raise QueryError(f"k must be between 1 and {MAX_K} (got {self.k})")
        if self.offset < 0:
            raise QueryError(f"offset must be 0 or more (got {self.offset})")
        for name in ("min_width", "min_height"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise QueryError(f"{name.replace('_', '-')} must be 0 or more (got {value})")
        if self.sort not in SORTS:
            raise QueryError(f"unknown sort {self.sort!r}: use one of {', '.join(SORTS)}")
        file_extensions(self.file_types)  # an unknown type is refused before any model loads

    @property
    def has_filters(self) -> bool:
        return bool(
            self.folder
            or self.taken_after
            or self.taken_before
            or (self.camera and self.camera.strip())
            or self.file_types
            or self.min_width
            or self.min_height
            or (self.tag and self.tag.strip())
        )


@dataclass(frozen=True)
class SearchHit(ImageMeta):
    """An image's catalog facts plus where it ranked and its cosine score."""

    rank: int
    score: float
    # Near-duplicates of this image folded into it (SearchRequest.collapse), best score first.
    duplicates: tuple[SearchHit, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out = self._fields()
        if self.duplicates:
            out["duplicates"] = [hit._fields() for hit in self.duplicates]
        return out

    def _fields(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "id": self.id,
            "path": self.path,
            "score": round(self.score, 6),
            "width": self.width,
            "height": self.height,
            "size": self.size,
            "taken_at": self.taken_at.isoformat() if self.taken_at else None,
            "camera": self.camera,
        }


@dataclass
class SearchResult:
    hits: list[SearchHit]
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # The terms the query vector was built from: {"kind", "value", "weight"} (negative: subtracted).
    terms: list[dict[str, Any]] = field(default_factory=list)
    # Whether text terms were averaged with prompt templates: {"used", "templates", "model_default"}.
    prompts: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape every front end prints or serves."""
        return {
            "terms": self.terms,
            "prompts": self.prompts,
            "results": [hit.to_dict() for hit in self.hits],
            "notes": self.notes,
        }


def load_query_image(path: Path, max_megapixels: float, what: str = "--image") -> Image.Image:
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError as exc:
        raise QueryError(f"{what} {path}: no such file") from exc
    except OSError as exc:
        raise QueryError(f"{what} {path}: cannot read it ({exc.strerror})") from exc
    try:
        return load_rgb(data, max_megapixels)[0]
    except ImageDecodeError as exc:
        raise QueryError(f"{what} {path}: {exc}") from exc
