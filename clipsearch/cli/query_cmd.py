"""`clipsearch query`: ranked results for a text, an example image, or both."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Optional

import typer

from clipsearch.cli.common import cli_command, err, open_store, warn_if_random, with_runtime
from clipsearch.search import SearchRequest, SearchService, load_query_image


@cli_command
def query_command(
    ctx: typer.Context,
    text: Optional[str] = typer.Argument(None, help="What to look for, in words."),
    k: int = typer.Option(10, "-k", "--top", help="How many results."),
    offset: int = typer.Option(0, "--offset", help="Skip this many results (paging)."),
    image: Optional[Path] = typer.Option(
        None, "--image", help="Search by example: an image file (alone or with TEXT)."
    ),
    folder: Optional[str] = typer.Option(None, "--folder", help="Only images whose path starts with this folder."),
    min_score: Optional[float] = typer.Option(
        None, "--min-score", help="Only results with at least this cosine score."
    ),
    after: Optional[datetime] = typer.Option(None, "--after", help="Only photos taken on/after this date (EXIF)."),
    before: Optional[datetime] = typer.Option(None, "--before", help="Only photos taken on/before this date (EXIF)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model spec; default: the store's model."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    runtime: Optional[str] = typer.Option(
        None,
        "--runtime",
        help="onnx, torch or auto (default: CLIPSEARCH_RUNTIME, else auto: torch to index on a CUDA GPU, else onnx).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON array of results."),
) -> None:
    """Find the images that best match TEXT and/or --image."""
    settings = ctx.obj.settings
    store = open_store(ctx, with_runtime(settings, runtime))
    query_image = load_query_image(image, settings.max_megapixels) if image else None
    request = SearchRequest(
        text=text,
        image=query_image,
        k=k,
        offset=offset,
        folder=folder,
        min_score=min_score,
        taken_after=after,
        taken_before=before,
    )
    request.validate()
    service = SearchService.open(store, model, device)
    warn_if_random(service.encoder)
    result = service.search(request)
    for note in service.open_notes + result.notes:
        err(f"note: {note}")
    if as_json:
        typer.echo(json.dumps([hit.to_dict() for hit in result.hits], indent=2))
        return
    if not result.hits:
        typer.echo("no results")
        return
    for hit in result.hits:
        typer.echo(f"{hit.rank:>4}  {hit.score:.4f}  {hit.path}")
