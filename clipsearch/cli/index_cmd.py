"""`clipsearch index`: embed new and changed images, follow moves, drop deleted ones."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from clipsearch.cli.common import allow_pixels, cli_command, err, interrupted, open_store, warn_if_random, with_runtime
from clipsearch.errors import ConfigError
from clipsearch.settings import check_device


@cli_command
def index_command(
    ctx: typer.Context,
    paths: list[str] = typer.Argument(
        ...,
        metavar="SOURCE...",
        help="Folders (searched recursively) or image files; with --engine ray also path lists "
        "(.txt, .csv or .parquet, local or an fsspec URL such as s3://bucket/list.parquet).",
    ),
    model: Optional[str] = typer.Option(
        None,
        "--model",
        "-m",
        envvar="CLIPSEARCH_MODEL",
        help="Model spec; default: the store's model, or ViT-B-32:laion2b_s34b_b79k for a new store.",
    ),
    batch_size: Optional[int] = typer.Option(
        None, "--batch-size", min=1, help="Images per model batch (default 256 on GPU, 32 on CPU)."
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    runtime: Optional[str] = typer.Option(
        None,
        "--runtime",
        help="onnx, torch or auto (default: CLIPSEARCH_RUNTIME, else auto: torch to index on a CUDA GPU, else onnx).",
    ),
    workers: Optional[int] = typer.Option(
        None,
        "--workers",
        min=1,
        help="Decode threads running ahead of the model; with --engine ray: model workers "
        "(default one per GPU, else one per 4 CPUs).",
    ),
    exclude: list[str] = typer.Option(
        [],
        "--exclude",
        metavar="PATTERN",
        help="Skip files and folders named like PATTERN (shell-style; with a /: the path under PATH). Repeatable.",
    ),
    include_hidden: bool = typer.Option(
        False, "--include-hidden", help="Also index files and folders whose name starts with '.'."
    ),
    engine: str = typer.Option("local", "--engine", help="local (this process) or ray (a Ray cluster)."),
    address: Optional[str] = typer.Option(
        None,
        "--address",
        help="--engine ray: the cluster to join (auto, or ray://HOST:10001); default: start one on this machine.",
    ),
    gpus_per_worker: Optional[float] = typer.Option(
        None, "--gpus-per-worker", min=0, help="--engine ray: GPUs per model worker (fractions share a GPU)."
    ),
    cpus_per_decoder: int = typer.Option(
        1, "--cpus-per-decoder", min=1, help="--engine ray: CPUs (and threads) per decode task."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Index images under SOURCES (JPEG, PNG, WebP, GIF, BMP, TIFF; HEIC with pillow-heif)."""
    from clipsearch.indexer import IndexOptions
    from clipsearch.lock import index_lock

    settings = ctx.obj.settings
    device = check_device(device)
    allow_pixels(settings.max_megapixels)
    _check_engine(engine, address, gpus_per_worker, cpus_per_decoder)
    # A missing path fails here, before any model loads or a fresh store is bound to one.
    keys = _source_keys(engine, paths)
    store = open_store(ctx, with_runtime(settings, runtime))
    try:
        with index_lock(store.catalog.db, settings.lock_path, keys):
            if engine == "ray":
                from clipsearch.indexer.ray_cluster import connect
                from clipsearch.indexer.ray_engine import RayOptions

                options = RayOptions(
                    batch_size, workers, gpus_per_worker, cpus_per_decoder, tuple(exclude), include_hidden
                )
                with connect(address):
                    summary, notes = _index(store, paths, model, device, options)
            else:
                options = IndexOptions(batch_size, workers, tuple(exclude), include_hidden)
                summary, notes = _index(store, paths, model, device, options)
            tagged = _tag_new(store)
    except KeyboardInterrupt:
        raise typer.Exit(
            interrupted("interrupted: finished batches are saved; resume by running the same command again")
        ) from None
    _report(summary, notes, tagged, as_json)


def _check_engine(engine: str, address, gpus_per_worker, cpus_per_decoder: int) -> None:
    if engine not in ("local", "ray"):
        raise ConfigError(f"unknown --engine {engine!r}; use local or ray")
    ray_only = [name for name, value in (("--address", address), ("--gpus-per-worker", gpus_per_worker)) if value]
    if engine == "local" and (ray_only or cpus_per_decoder != 1):
        raise ConfigError(f"{', '.join(ray_only) or '--cpus-per-decoder'} only applies with --engine ray")


def _source_keys(engine: str, paths: list[str]) -> list[str]:
    """What the index lock covers: each root folder (or path list); checks that sources exist."""
    from clipsearch.indexer.scan import resolve_roots

    if engine == "local":
        return [r.path for r in resolve_roots([Path(p) for p in paths])]
    from clipsearch.indexer import ray_cluster, ray_sources

    keys = [ray_sources.source_key(s) for s in ray_sources.resolve_sources(paths)]
    ray_cluster.require_ray()
    return keys


def _report(summary, notes: list[str], tagged: int, as_json: bool) -> None:
    for note in summary.notes + notes:
        err(f"note: {note}")
    if as_json:
        typer.echo(json.dumps({**summary.to_dict(), "tagged": tagged}, indent=2))
    else:
        typer.echo(f"indexed: {summary.line()}")
        if tagged:
            typer.echo(f"tagged: {tagged} new or changed images (`clipsearch tags` lists the counts)")
        for path, reason in summary.failures:
            typer.echo(f"  failed: {path}: {reason}")
        for path, reason in summary.unreadable:
            typer.echo(f"  unreadable folder: {path}: {reason}; the catalog keeps what it had under it")


def _index(store, paths: list[str], model: Optional[str], device: str, options):
    from clipsearch.indexer import IndexOptions, run_index

    store.resolve_model(model)  # a wrong model is refused before anything is read
    on_ray = not isinstance(options, IndexOptions)

    def load_encoder():
        # Only called when there are files to read: re-indexing an unchanged folder loads no model.
        # On Ray this is the driver's copy (model binding, preprocessing); the workers load their own.
        encoder = store.load_encoder(model, "cpu" if on_ray else device, purpose="index")
        warn_if_random(encoder)
        store.bind(encoder)
        return encoder

    with _Progress() as bar:
        progress = {"on_total": bar.start, "on_progress": bar.update}
        if on_ray:
            from clipsearch.indexer.ray_engine import run_index_ray

            summary = run_index_ray(store.catalog, load_encoder, paths, store.settings, options, **progress)
        else:
            summary = run_index(
                store.catalog, load_encoder, [Path(p) for p in paths], store.settings, options, **progress
            )
    if not store.model:
        return summary, []
    if on_ray:
        from clipsearch.indexer.ray_faiss import sync_index_file

        return summary, sync_index_file(store)
    return summary, store.sync_index_file()


class _Progress:
    """The progress bar (images/s, ETA), shown once a run knows it has files to read.

    tqdm is imported then: a run over an unchanged folder has nothing to show.
    """

    def __init__(self):
        self.bar = None

    def start(self, total: int) -> None:
        if total and self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="img", desc="indexing", dynamic_ncols=True, disable=None)

    def update(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *_exc) -> None:
        if self.bar is not None:
            self.bar.close()


def _tag_new(store) -> int:
    """New and re-embedded images get the labels of `clipsearch tag` (no model needed: vector math)."""
    if not store.model or store.catalog.tags.label_set() is None:
        return 0  # no label set: nothing to tag, and the tagging code (numpy, models) stays unloaded
    from clipsearch.search.tagging import tag_new

    return tag_new(store.catalog)
