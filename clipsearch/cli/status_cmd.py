"""`clipsearch status`: what the store holds."""

from __future__ import annotations

import json

import typer

from clipsearch.cli.common import cli_command, open_store


@cli_command
def status_command(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
    failures: bool = typer.Option(False, "--failures", help="List the files that failed to index."),
) -> None:
    """Show the store's model, image counts and index."""
    store = open_store(ctx)
    info = store.facts()
    notes: list[str] = []
    if store.model is not None:
        index, notes = store.vector_index()
        info.update(vectors=index.ntotal, index_kind=index.kind)
    if failures:
        info["failures"] = [{"path": p, "reason": r} for p, r in store.catalog.facts.failures()]
    for note in notes:  # on stderr, so --json output stays parseable
        typer.echo(f"note: {note}", err=True)
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    width = max(len(k) for k in info)
    for key, value in info.items():
        if key not in ("failures", "generations"):
            typer.echo(f"{key:<{width}}  {value if value is not None else '-'}")
    for gen in info["generations"]:
        failed = f", {gen['failed']} failed" if gen["failed"] else ""
        line = f"{gen['model']}  {gen['state']}  {gen['embedded']}/{gen['total']} images{failed}"
        typer.echo(f"{'generation':<{width}}  {line}")
    for item in info.get("failures", []):
        typer.echo(f"  failed: {item['path']}: {item['reason']}")
