"""`clipsearch reembed`: move a store to another model without losing its index, or drop a generation."""

from __future__ import annotations

import json
from typing import Optional

import typer

from clipsearch.cli.common import allow_pixels, cli_command, err, interrupted, open_store, warn_if_random, with_runtime
from clipsearch.errors import ConfigError, EmptyStoreError
from clipsearch.settings import check_device


@cli_command
def reembed_command(
    ctx: typer.Context,
    model: Optional[str] = typer.Option(
        None, "--model", "-m", help="The model to move the store to (any --model spec, or a NAME@HASH model id)."
    ),
    drop: Optional[str] = typer.Option(
        None, "--drop", metavar="MODEL", help="Delete the vectors and index file of this model's generation."
    ),
    batch_size: Optional[int] = typer.Option(
        None, "--batch-size", min=1, help="Images per model batch (default 256 on GPU, 32 on CPU)."
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    runtime: Optional[str] = typer.Option(None, "--runtime", help="onnx, torch or auto (as for index)."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Decode threads running ahead of the model."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Embed every indexed image again with another model, beside the current vectors (queries keep
    using them), then switch the store to the new model; resumable. --drop frees an old generation."""
    from clipsearch.lock import reembed_lock

    if (model is None) == (drop is None):
        raise ConfigError("pass --model MODEL to move the store to it, or --drop MODEL to delete a generation")
    settings = ctx.obj.settings
    store = open_store(ctx, with_runtime(settings, runtime))
    current = store.model
    if current is None or not store.catalog.facts.stats().images:
        raise EmptyStoreError(
            f"no images have been indexed in {settings.home} yet; run `clipsearch index PATH --model ...` instead"
        )
    try:
        with reembed_lock(store.catalog.engine, settings.lock_path):
            if drop is not None:
                _drop(store, drop, as_json)
                return
            from clipsearch.indexer import IndexOptions

            options = IndexOptions(batch_size, workers)
            _reembed(store, model, check_device(device), options, as_json)
    except KeyboardInterrupt:
        raise typer.Exit(
            interrupted("interrupted: finished batches are saved; resume by running the same command again")
        ) from None


def _reembed(store, model: str, device: str, options, as_json: bool) -> None:
    from tqdm import tqdm

    from clipsearch.indexer.reembed import ReembedSummary, embed_pending
    from clipsearch.indexer.reembed_switch import finish, retag_if_stale, start_generation
    from clipsearch.models import load_encoder, model_id_for

    current = store.model
    settings = store.settings

    def load():
        return load_encoder(model, device=device, cache_dir=settings.model_cache, runtime=settings.runtime)

    if model_id_for(model) == current.model_id:
        # Finishes what a run killed right after its switch left: index files, tags.
        store.settle_index_files()
        retagged = retag_if_stale(store, load)
        typer.echo(f"the store already uses {current.model_id}; nothing to re-embed")
        if retagged:
            typer.echo(f"re-tagged {retagged} images with it (`clipsearch tags` lists the counts)")
        return
    allow_pixels(settings.max_megapixels)
    encoder = load_encoder(
        model, device=device, cache_dir=settings.model_cache, runtime=settings.runtime, purpose="index"
    )
    warn_if_random(encoder)
    gen = start_generation(store, encoder)
    summary = ReembedSummary()
    with tqdm(total=0, unit="img", desc=f"reembed {encoder.model_id}", dynamic_ncols=True, disable=None) as bar:

        def total(n: int) -> None:
            bar.total = n
            bar.refresh()

        embed_pending(store.catalog, gen, encoder, store.settings, options, summary, total, bar.update)
        waiting = lambda: bar.set_postfix_str("switching (waits for running index runs)")  # noqa: E731
        retagged = finish(store, gen, encoder, options, summary, waiting, bar.update)
    _report(store, summary, current.model_id, retagged, as_json)


def _report(store, summary, old: str, retagged: int, as_json: bool) -> None:
    new = store.model.model_id
    if as_json:
        typer.echo(json.dumps({**summary.to_dict(), "model": new, "previous": old, "retagged": retagged}, indent=2))
        return
    typer.echo(f"reembedded: {summary.line()}")
    for path, reason in summary.failures:
        typer.echo(f"  failed: {path}: {reason}")
    typer.echo(f"switched the store from {old} to {new}; queries now use {new}")
    if retagged:
        typer.echo(f"re-tagged {retagged} images with the new model (`clipsearch tags` lists the counts)")
    err(f"note: the {old} vectors are kept; free them with `clipsearch reembed --drop {old}`")


def _drop(store, model: str, as_json: bool) -> None:
    from clipsearch.indexer.reembed_switch import drop

    gone = drop(store, model)
    if as_json:
        typer.echo(json.dumps({"dropped": gone.to_dict()}, indent=2))
    else:
        typer.echo(f"dropped the {gone.state} generation of {gone.model_id} ({gone.embedded} vectors)")
