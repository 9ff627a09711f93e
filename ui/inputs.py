"""The page's inputs as one value, its place in the URL, and its translation into a search request."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time

from clipsearch.errors import ImageDecodeError, QueryError
from clipsearch.imaging import IMAGE_EXTENSIONS, content_hash, load_rgb
from clipsearch.search import QueryTerm, SearchRequest

PAGE_SIZES = (12, 24, 48, 96)
DEFAULT_PAGE_SIZE = 48
MAX_PAGES = 50
# How text terms are embedded: the model's recorded default, as typed, or averaged with its prompt templates.
PROMPT_MODES = {"default": None, "raw": True, "prompts": False}  # -> SearchRequest.raw
HEIF_EXTENSIONS = frozenset({".heic", ".heif"})


@dataclass(frozen=True)
class Upload:
    name: str
    data: bytes


@dataclass(frozen=True)
class PageInput:
    text: str = ""
    upload: Upload | None = None
    like_id: int | None = None  # "more like this": an indexed image's id, never a path
    folder: str = ""
    after: date | None = None
    before: date | None = None
    min_score: float = 0.0  # 0 means no minimum
    page_size: int = DEFAULT_PAGE_SIZE
    pages: int = 1  # pages shown ("load more" adds one)
    plus: tuple[str, ...] = ()  # further terms to look for ("+ add term"); "2:snow" weighs one
    minus: tuple[str, ...] = ()  # terms to push out of the results ("− exclude")
    prompts: str = "default"  # a key of PROMPT_MODES
    collapse: bool = False  # near-duplicates shown once, as their best member

    @property
    def is_empty(self) -> bool:
        nothing_to_add = not self.text.strip() and not any(t.strip() for t in self.plus)
        return nothing_to_add and self.upload is None and self.like_id is None and not self.terms(self.minus)

    @staticmethod
    def terms(values: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(t.strip() for t in values if t.strip())

    @property
    def shown(self) -> int:
        return self.page_size * self.pages

    def signature(self) -> tuple:
        """Equal for inputs that rank the same results (pages only say how many are shown)."""
        upload = content_hash(self.upload.data) if self.upload else None
        return (
            " ".join(self.text.split()),
            upload,
            self.like_id,
            self.folder.strip(),
            self.after,
            self.before,
            self.min_score,
            self.terms(self.plus),
            self.terms(self.minus),
            self.prompts,
            self.collapse,
        )

    def without(self, *filters: str) -> PageInput:
        """The same search with some filters lifted (to explain an empty result)."""
        blank = PageInput()
        return replace(self, **{name: getattr(blank, name) for name in filters})


def upload_types() -> list[str]:
    """Extensions the uploader offers: HEIC/HEIF only when pillow-heif can read them."""
    heif = importlib.util.find_spec("pillow_heif") is not None
    return sorted(e.lstrip(".") for e in IMAGE_EXTENSIONS if heif or e not in HEIF_EXTENSIONS)


def build_request(inp: PageInput, offset: int, k: int, max_megapixels: float) -> SearchRequest:
    """The service request for results offset..offset+k; QueryError says what to fix in the form."""
    if inp.after and inp.before and inp.after > inp.before:
        raise QueryError(f"the date range is reversed: taken on or after {inp.after} but on or before {inp.before}")
    image = None
    if inp.upload is not None:
        try:
            image = load_rgb(inp.upload.data, max_megapixels)[0]
        except ImageDecodeError as exc:
            raise QueryError(f"the uploaded file {inp.upload.name} cannot be used as an example: {exc}") from exc
    return SearchRequest(
        text=inp.text if inp.text.strip() else None,  # kept beside an example: a combined query
        image=image,
        image_id=inp.like_id,
        plus=tuple(QueryTerm.parse(t) for t in inp.terms(inp.plus)),
        minus=tuple(QueryTerm.parse(t) for t in inp.terms(inp.minus)),
        k=k,
        offset=offset,
        folder=inp.folder.strip() or None,
        min_score=inp.min_score if inp.min_score > 0 else None,
        taken_after=datetime.combine(inp.after, time.min) if inp.after else None,
        taken_before=datetime.combine(inp.before, time.max) if inp.before else None,
        raw=PROMPT_MODES.get(inp.prompts),
        collapse=inp.collapse,
    )


# -- the URL: a search as query parameters, so Back, reload, bookmarks and shared links work ---------


def to_params(inp: PageInput) -> dict[str, list[str]]:
    """Query parameters for a search (defaults left out; an uploaded example cannot travel in a URL)."""
    params = {
        "q": [inp.text.strip()],
        "plus": list(inp.terms(inp.plus)),
        "minus": list(inp.terms(inp.minus)),
        "like": [] if inp.like_id is None else [str(inp.like_id)],
        "folder": [inp.folder.strip()],
        "after": [inp.after.isoformat()] if inp.after else [],
        "before": [inp.before.isoformat()] if inp.before else [],
        "min": [f"{inp.min_score:g}"] if inp.min_score > 0 else [],
        "n": [] if inp.page_size == DEFAULT_PAGE_SIZE else [str(inp.page_size)],
        "page": [] if inp.pages <= 1 else [str(inp.pages)],
        "prompts": [] if inp.prompts == "default" else [inp.prompts],
        "dups": ["collapse"] if inp.collapse else [],
    }
    return {key: [v for v in values if v] for key, values in params.items() if any(values)}


def from_params(params: Mapping[str, Sequence[str]]) -> tuple[PageInput, list[str]]:
    """The search a URL asks for (each key's values), and what in it was unusable (and ignored)."""
    problems: list[str] = []

    def last(key: str) -> str:
        values = params.get(key) or [""]
        return values[-1]

    def parsed(key: str, parse, check=lambda v: True):
        raw = last(key)
        if raw == "":
            return None
        try:
            value = parse(raw)
            if check(value):
                return value
        except ValueError:
            pass
        problems.append(f"{key}={raw}")
        return None

    size = parsed("n", int, lambda v: v in PAGE_SIZES)
    inp = PageInput(
        text=last("q"),
        like_id=parsed("like", int, lambda v: v > 0),
        folder=last("folder"),
        after=parsed("after", date.fromisoformat),
        before=parsed("before", date.fromisoformat),
        min_score=parsed("min", float, lambda v: 0 <= v <= 1) or 0.0,
        page_size=size or DEFAULT_PAGE_SIZE,
        pages=parsed("page", int, lambda v: 1 <= v <= MAX_PAGES) or 1,
        plus=tuple(params.get("plus", ())),
        minus=tuple(params.get("minus", ())),
        prompts=parsed("prompts", str, lambda v: v in PROMPT_MODES) or "default",
        collapse=parsed("dups", str, lambda v: v == "collapse") is not None,
    )
    return inp, problems
