"""`clipsearch index`: embed new and changed images, follow moves, drop deleted ones."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from tqdm import tqdm

from clipsearch.cli.common import cli_command, err, open_store, warn_if_random, with_runtime
from clipsearch.indexer import IndexOptions, run_index
from clipsearch.indexer.scan import resolve_roots
from clipsearch.lock import index_lock


@cli_command
def index_command(
    ctx: typer.Context,
    paths: list[Path] = typer.Argument(..., help="Folders (searched recursively) or image files."),
    model: Optional[str] = typer.Option(
        None,
        "--model",
        "-m",
        envvar="CLIPSEARCH_MODEL",
        help="Model spec; default: the store's model, or ViT-B-32-256:datacomp_s34b_b86k for a new store.",
    ),
    batch_size: Optional[int] = typer.Option(
        None, "--batch-size", min=1, help="Images per model batch (default 256 on GPU, 32 on CPU)."
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    runtime: Optional[str] = typer.Option(
        None,
        "--runtime",
        help="onnx, torch or auto (default: CLIPSEARCH_RUNTIME, else auto: torch to index on a CUDA GPU, else onnx).",
    ),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Decode threads running ahead of the model."),
    exclude: list[str] = typer.Option(
        [],
        "--exclude",
        metavar="PATTERN",
        help="Skip files and folders named like PATTERN (shell-style; with a /: the path under PATH). Repeatable.",
    ),
    include_hidden: bool = typer.Option(
        False, "--include-hidden", help="Also index files and folders whose name starts with '.'."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Index images under PATHS (JPEG, PNG, WebP, GIF, BMP, TIFF; HEIC with pillow-heif)."""
    settings = ctx.obj.settings
    # A missing path fails here, before any model loads or a fresh store is bound to one.
    roots = resolve_roots(paths)
    store = open_store(ctx, with_runtime(settings, runtime))
    try:
        with index_lock(store.catalog.engine, settings.lock_path, [r.path for r in roots]):
            options = IndexOptions(batch_size, workers, tuple(exclude), include_hidden)
            summary, notes = _index(store, paths, model, device, options)
    except KeyboardInterrupt:
        err("interrupted: finished batches are saved; resume by running the same command again")
        raise typer.Exit(130) from None
    for note in summary.notes + notes:
        err(f"note: {note}")
    if as_json:
        typer.echo(json.dumps(summary.to_dict(), indent=2))
    else:
        typer.echo(f"indexed: {summary.line()}")
        for path, reason in summary.failures:
            typer.echo(f"  failed: {path}: {reason}")
        for path, reason in summary.unreadable:
            typer.echo(f"  unreadable folder: {path}: {reason}; the catalog keeps what it had under it")


def _index(store, paths: list[Path], model: Optional[str], device: str, options: IndexOptions):
    store.resolve_model(model)  # a wrong model is refused before anything is read

    def load_encoder():
        # Only called when there are files to read: re-indexing an unchanged folder loads no model.
        encoder = store.load_encoder(model, device, purpose="index")
        warn_if_random(encoder)
        store.bind(encoder)
        return encoder

    with tqdm(total=0, unit="img", desc="indexing", dynamic_ncols=True, disable=None) as bar:
        summary = run_index(
            store.catalog,
            load_encoder,
            paths,
            store.settings,
            options,
            on_total=lambda n: _set_total(bar, n),
            on_progress=bar.update,
        )
    notes = store.sync_index_file() if store.model else []
    return summary, notes


def _set_total(bar: tqdm, total: int) -> None:
    bar.total = total
    bar.refresh()
