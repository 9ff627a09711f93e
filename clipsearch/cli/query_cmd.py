"""`clipsearch query`: ranked results for texts and example images, added or subtracted."""

from __future__ import annotations

import json
import os
import re
from datetime import datetime
from pathlib import Path
from typing import Optional

import typer

from clipsearch.cli.common import cli_command, err, open_store, warn_if_random, with_runtime
from clipsearch.errors import QueryError
from clipsearch.settings import check_device

# A path separator, a home folder or a file extension anywhere in a term (see may_name_files).
_PATH_LIKE = re.compile(r"[/\\~]|\.[A-Za-z0-9]{2,5}\b")
_TERM_HELP = "text or an image path, optionally weighted as WEIGHT:TERM (e.g. 2:snow); repeatable."


@cli_command
def query_command(
    ctx: typer.Context,
    text: Optional[str] = typer.Argument(
        None, help="What to look for, in words; or terms combined as '2:cat + ./pool.jpg - fruit'."
    ),
    k: int = typer.Option(10, "-k", "--top", help="How many results."),
    offset: int = typer.Option(0, "--offset", help="Skip this many results (paging)."),
    image: Optional[Path] = typer.Option(
        None, "--image", help="Search by example: an image file (alone or with TEXT)."
    ),
    plus: list[str] = typer.Option([], "--plus", help=f"Add a term: {_TERM_HELP}"),
    minus: list[str] = typer.Option([], "--minus", help=f"Subtract a term (push it out of the results): {_TERM_HELP}"),
    folder: Optional[str] = typer.Option(
        None, "--folder", help="Only images in this folder or below it (a relative path starts here)."
    ),
    camera: Optional[str] = typer.Option(
        None, "--camera", help="Only photos whose EXIF camera contains this text (any case), e.g. 'X-T3'."
    ),
    file_types: list[str] = typer.Option(
        [], "--type", help="Only these file types: jpeg, png, webp, gif, bmp, tiff, heic (repeatable or a,b)."
    ),
    min_width: Optional[int] = typer.Option(None, "--min-width", help="Only images at least this many pixels wide."),
    min_height: Optional[int] = typer.Option(None, "--min-height", help="Only images at least this many pixels high."),
    tag: Optional[str] = typer.Option(None, "--tag", help="Only images given this label by `clipsearch tag`."),
    sort: str = typer.Option(
        "score", "--sort", help="score (best first), date (the top matches oldest first) or date-desc."
    ),
    min_score: Optional[float] = typer.Option(
        None, "--min-score", help="Only results with at least this cosine score."
    ),
    collapse: bool = typer.Option(
        False,
        "--collapse-duplicates",
        help="Show each group of near-duplicates once, as its best member (threshold as `clipsearch duplicates`).",
    ),
    after: Optional[datetime] = typer.Option(None, "--after", help="Only photos taken on/after this date (EXIF)."),
    before: Optional[datetime] = typer.Option(None, "--before", help="Only photos taken on/before this date (EXIF)."),
    raw: Optional[bool] = typer.Option(
        None,
        "--raw/--prompts",
        help="--raw: embed text terms as typed; --prompts: average each with the model's prompt templates "
        "('a photo of {}.' ...). Default: as recorded with the model (`clipsearch models` shows it).",
    ),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model spec; default: the store's model."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    runtime: Optional[str] = typer.Option(
        None,
        "--runtime",
        help="onnx, torch or auto (default: CLIPSEARCH_RUNTIME, else auto: torch to index on a CUDA GPU, else onnx).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON object: the terms used and the results."),
    no_server: bool = typer.Option(
        False, "--no-server", help="Search in this process even when `clipsearch serve` runs for this store."
    ),
) -> None:
    """Find the images that best match TEXT, --image and --plus terms, and least match --minus terms."""
    settings = ctx.obj.settings
    device = check_device(device)
    # A running server answers with its own model; terms that may name image files are read here.
    if not (no_server or model or runtime or device != "auto" or may_name_files(text, *plus, *minus)):
        fields = dict(
            q=text, plus=plus, minus=minus, k=k, offset=offset, folder=folder, min_score=min_score,
            after=after, before=before, camera=camera, min_width=min_width, min_height=min_height, tag=tag, sort=sort,
            raw=raw, collapse=collapse,
            file_types=[t for value in file_types for t in value.split(",") if t.strip()],
        )  # fmt: skip
        answer = answer_from_server(settings, fields, image)
        if answer is not None:
            result = {name: answer.get(name) for name in ("terms", "prompts", "results", "notes")}
            print_results(result, answer["notes"], answer["warnings"], as_json)
            return
    from clipsearch.search import QueryTerm, SearchRequest, SearchService, load_query_image, parse_query

    store = open_store(ctx, with_runtime(settings, runtime))
    image_term = _image_term_reader(settings.max_megapixels)
    text_plus, text_minus = parse_query(text, image_term) if text else ([], [])
    request = SearchRequest(
        image=load_query_image(image, settings.max_megapixels) if image else None,
        plus=(*text_plus, *(QueryTerm.parse(s, image_term) for s in plus)),
        minus=(*text_minus, *(QueryTerm.parse(s, image_term) for s in minus)),
        k=k,
        offset=offset,
        folder=folder,
        min_score=min_score,
        taken_after=after,
        taken_before=before,
        camera=camera,
        file_types=tuple(t for value in file_types for t in value.split(",") if t.strip()),
        min_width=min_width,
        min_height=min_height,
        tag=tag,
        sort=sort,
        raw=raw,
        collapse=collapse,
    )
    request.validate()
    service = SearchService.open(store, model, device, mapped=True)  # one query, then exit
    warn_if_random(service.encoder)
    result = service.search(request)
    print_results(result.to_dict(), service.open_notes + result.notes, [], as_json)


def may_name_files(*specs: str | None) -> bool:
    """Whether a query term could be an image path: such queries are answered in this process,
    which may read local files (a server never reads a path it is sent)."""
    return any(spec and _PATH_LIKE.search(spec) for spec in specs)


def answer_from_server(settings, fields: dict, image: Path | None) -> dict | None:
    """The answer of a `clipsearch serve` running for this store, or None to search in this process."""
    from clipsearch.api.client import ServerUnavailable, query_server  # standard library only

    try:
        return query_server(settings, fields, image)
    except ServerUnavailable as exc:
        err(f"note: {exc}; searching in this process")
        return None


def print_results(result: dict, notes: list[str], warnings: list[str], as_json: bool) -> None:
    """The same output whether a running server or this process answered (`result`: SearchResult.to_dict())."""
    for warning in warnings:
        err(f"warning: {warning}")
    for note in notes:
        err(f"note: {note}")
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    if len(result["terms"]) > 1:
        err(f"query: {describe_terms(result['terms'])}")
    if (result.get("prompts") or {}).get("used"):
        err(f"text embedded with the prompts {', '.join(result['prompts']['templates'])} (--raw: as typed)")
    if not result["results"]:
        typer.echo("no results")
        return
    for hit in result["results"]:
        typer.echo(f"{hit['rank']:>4}  {hit['score']:.4f}  {hit['path']}")
        copies = hit.get("duplicates", [])
        if copies:
            typer.echo(f"      +{len(copies)} near-duplicate{'s' if len(copies) > 1 else ''}:")
            for copy in copies:
                typer.echo(f"            {copy['score']:.4f}  {copy['path']}")


def _image_term_reader(max_megapixels: float):
    """A term naming an image file, or a path to an existing file, is an example image.

    A plain word is text even if a file of that name happens to be in the working folder.
    """
    from clipsearch.image_types import IMAGE_EXTENSIONS
    from clipsearch.search import QueryTerm, load_query_image

    def read(spec: str, weight: float) -> QueryTerm | None:
        try:
            path = Path(spec).expanduser()
            is_file = path.is_file()
        except (OSError, RuntimeError):  # a name too long for a path, an unknown ~user: text
            return None
        has_image_suffix = path.suffix.lower() in IMAGE_EXTENSIONS
        if is_file and (has_image_suffix or os.sep in spec or spec.startswith("~")):
            return QueryTerm(image=load_query_image(path, max_megapixels, what="query term"), weight=weight, label=spec)
        if has_image_suffix:
            raise QueryError(
                f"query term {spec}: no such image file (a term ending in {path.suffix} is read as an image path)"
            )
        return None

    return read


def describe_terms(terms: list[dict]) -> str:
    """`golden retriever + 2×snow − people + [image] pool.jpg` for the terms a query used."""
    parts = []
    for i, term in enumerate(terms):
        weight = abs(term["weight"])
        sign = "-" if term["weight"] < 0 else "+"
        body = (f"{weight:g}×" if weight != 1 else "") + (
            term["value"] if term["kind"] == "text" else f"[{term['kind']}] {term['value']}"
        )
        parts.append(body if i == 0 and sign == "+" else f"{sign} {body}")
    return " ".join(parts)
