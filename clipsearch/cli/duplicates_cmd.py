"""`clipsearch duplicates`: groups of near-identical images (copies, resized or re-encoded, bursts)."""

from __future__ import annotations

import json

import typer

from clipsearch.cli.common import cli_command, open_store


@cli_command
def duplicates_command(
    ctx: typer.Context,
    threshold: float = typer.Option(
        0.95, "--threshold", help="Cosine similarity at which two images count as duplicates (0-1]."
    ),
    limit: int = typer.Option(0, "--limit", min=0, help="Show only the N biggest groups (0: all)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON array of groups."),
) -> None:
    """List groups of near-duplicate images, biggest first; the first of each group is the one to keep
    (the most pixels, then the biggest file)."""
    from tqdm import tqdm

    from clipsearch.search.duplicates import find_duplicates

    store = open_store(ctx)
    store.require_model()
    index, notes = store.vector_index()
    for note in notes:
        typer.echo(f"note: {note}", err=True)
    with tqdm(total=index.ntotal, unit="img", desc="comparing", dynamic_ncols=True, disable=None) as bar:
        groups = find_duplicates(store.catalog, index, threshold, progress=bar.update)
    shown = groups[:limit] if limit else groups
    if as_json:
        typer.echo(json.dumps([g.to_dict() for g in shown], indent=2))
        return
    if not groups:
        typer.echo(f"no near-duplicates at threshold {threshold:g}")
        return
    extra = sum(len(g.members) - 1 for g in groups)
    typer.echo(f"{len(groups)} groups of near-duplicates ({extra} images beyond the first of each group)")
    for n, group in enumerate(shown, start=1):
        typer.echo(f"group {n}: {len(group.members)} images, {_size(sum(m.size for m in group.members))}")
        for meta, score in zip(group.members, group.scores, strict=True):
            dims = f"{meta.width}x{meta.height}" if meta.width else "?"
            typer.echo(f"  {score:.4f}  {dims:>11}  {_size(meta.size):>9}  {meta.path}")


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"
