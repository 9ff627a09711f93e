"""Why a search found nothing: which filter removed what, asked of the search service itself."""

from __future__ import annotations

from clipsearch.search import SearchHit
from clipsearch.ui.folders import similar_folders
from clipsearch.ui.inputs import PageInput, build_request
from clipsearch.ui.state import Engine


def _first(engine: Engine, probe: PageInput, max_megapixels: float) -> SearchHit | None:
    hits = engine.search(build_request(probe, offset=0, k=1, max_megapixels=max_megapixels)).hits
    return hits[0] if hits else None


def _span(inp: PageInput) -> str:
    if inp.after and inp.before:
        return f"between {inp.after} and {inp.before}"
    return f"on or after {inp.after}" if inp.after else f"on or before {inp.before}"


def explain_empty(engine: Engine, inp: PageInput, max_megapixels: float, folders: dict[str, int]) -> list[str]:
    """Plain-text lines naming the filter that left no results (each probe lifts one more filter)."""
    folder = inp.folder.strip()
    if folder and _first(engine, inp.without("after", "before", "min_score"), max_megapixels) is None:
        similar = similar_folders(folders, folder)
        hint = ["Indexed folders with a similar name: " + ", ".join(similar)] if similar else []
        return [f"No indexed image is under the folder {folder}.", *hint]
    if (inp.after or inp.before) and _first(engine, inp.without("min_score"), max_megapixels) is None:
        where = f"under {folder}" if folder else "in the store"
        return [
            f"No image {where} was taken {_span(inp)}.",
            "Dates come from the photos' EXIF capture time; images without one never match a date filter.",
        ]
    if inp.min_score > 0:
        best = _first(engine, inp.without("min_score"), max_megapixels)
        if best is not None:
            return [
                f"The best match scores {best.score:.3f}, under the minimum score {inp.min_score:.2f}: "
                "lower it to see results."
            ]
    return ["No results: try other words."]
