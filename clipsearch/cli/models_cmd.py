"""`clipsearch models`: the models clipsearch can use, offline."""

from __future__ import annotations

import json

import typer

from clipsearch.cli.common import cli_command


@cli_command
def models_command(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """List the bundled models, open_clip's architectures and pretrained tags, and the local model cache."""
    from clipsearch import model_list

    settings = ctx.obj.settings
    info = {
        "bundled": model_list.bundled(),
        "open_clip": model_list.open_clip_pretrained(),
        "cache": str(settings.model_cache),
        "cached": model_list.cached(settings.model_cache),
    }
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    typer.echo("bundled (offline, in the package):")
    for row in info["bundled"]:
        prompts = "queries with prompts" if row["query_prompts"]["default"] else "queries as typed"
        dims = f"dim {row['embed_dim']:<5} {row['image_size']} px"
        typer.echo(f"  {row['spec']:<40} {dims}  {row['model_id']}  {prompts}")
    if info["open_clip"] is None:
        typer.echo("open_clip pretrained: open_clip is not installed (pip install torch open_clip_torch to list them)")
        typer.echo(
            "multilingual (e.g. xlm-roberta-base-ViT-B-32:laion5b_s13b_b90k): torch runtime only, "
            "pip install 'clipsearch[torch]' (torch, open_clip and transformers)"
        )
    else:
        typer.echo(f"open_clip pretrained ({len(info['open_clip'])}; `--model SPEC` downloads one once):")
        for row in info["open_clip"]:
            dims = f"dim {row['embed_dim'] or '?':<5} {row['image_size'] or '?'} px"
            typer.echo(f"  {row['spec']:<52} {dims}  {row['vision'] or ''}")
        multilingual = [row for row in info["open_clip"] if row["multilingual"]]
        typer.echo(f"multilingual ({len(multilingual)}; queries in any language; torch runtime with transformers):")
        for row in multilingual:
            typer.echo(f"  {row['spec']:<52} text tower {row['text']}")
    typer.echo(f"cached in {info['cache']}:" if info["cached"] else f"nothing cached in {info['cache']} yet")
    for row in info["cached"]:
        typer.echo(f"  {row['name']:<60} {row['bytes'] / 1e6:9.1f} MB")
