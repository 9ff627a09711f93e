"""The page's inputs as one value, and its translation into the search service's request."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time

from clipsearch.errors import ImageDecodeError, QueryError
from clipsearch.imaging import content_hash, load_rgb
from clipsearch.search import SearchRequest

PAGE_SIZES = (12, 24, 48)
DEFAULT_PAGE_SIZE = 24


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

    @property
    def is_empty(self) -> bool:
        return not self.text.strip() and self.upload is None and self.like_id is None

    def signature(self) -> tuple:
        """Equal for inputs that ask for the same results (paging state is kept while it holds)."""
        upload = content_hash(self.upload.data) if self.upload else None
        return (
            " ".join(self.text.split()),
            upload,
            self.like_id,
            self.folder.strip(),
            self.after,
            self.before,
            self.min_score,
            self.page_size,
        )


def build_request(inp: PageInput, offset: int, max_megapixels: float) -> SearchRequest:
    """The service request for one page of results; QueryError says what to fix in the form."""
    if inp.after and inp.before and inp.after > inp.before:
        raise QueryError(f"the date range is reversed: taken after {inp.after} but before {inp.before}")
    image = None
    if inp.upload is not None:
        try:
            image = load_rgb(inp.upload.data, max_megapixels)[0]
        except ImageDecodeError as exc:
            raise QueryError(f"the uploaded file {inp.upload.name} cannot be used as an example: {exc}") from None
    return SearchRequest(
        text=inp.text if inp.like_id is None else None,
        image=image,
        image_id=inp.like_id,
        k=inp.page_size,
        offset=offset,
        folder=inp.folder.strip() or None,
        min_score=inp.min_score if inp.min_score > 0 else None,
        taken_after=datetime.combine(inp.after, time.min) if inp.after else None,
        taken_before=datetime.combine(inp.before, time.max) if inp.before else None,
    )
