"""The Ray engine: the local engine's stages as a Ray Data pipeline, written by the driver.

Planning (walk or list, catalog comparison), routing (moves, touched files, failures) and the
committed batch writes are the local engine's own code, run on the driver; decoding runs in
CPU tasks spread over the cluster and the model in a pool of actors (one per GPU where there
are GPUs). Only the driver writes, in committed batches keyed by path, and each file's result
is routed once: a retried task or a restarted actor can deliver a row again, and the repeat is
dropped; a run that dies is resumed by running it again (finished batches are unchanged rows).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

from clipsearch.catalog import Catalog, FileState
from clipsearch.errors import ClipsearchError, ModelError
from clipsearch.indexer.batch import BatchWriter
from clipsearch.indexer.decode import DecodeJob
from clipsearch.indexer.exclude import Exclusions
from clipsearch.indexer.ray_cluster import cluster_resources, require_ray
from clipsearch.indexer.ray_sources import plan_source, resolve_sources, source_key
from clipsearch.indexer.ray_stages import EmbedActor, Embedded, decode_batch, job_table, unpack
from clipsearch.indexer.runner import Plan, Router, run_plans
from clipsearch.indexer.summary import IndexSummary
from clipsearch.models import Encoder
from clipsearch.settings import Settings
from clipsearch.thumbnails import Thumbnails

DECODE_BLOCK = 32  # jobs per decode task: small enough to spread, large enough to amortise a task


@dataclass(frozen=True)
class RayOptions:
    batch_size: int | None = None  # images per model call; None: 256 on a GPU, 32 on a CPU
    workers: int | None = None  # model actors; None: one per GPU, else one per 4 CPUs
    gpus_per_worker: float | None = None  # None: 1 when the cluster has GPUs, else 0
    cpus_per_decoder: int = 1  # CPUs (and threads) per decode task
    exclude: tuple[str, ...] = ()  # as IndexOptions: patterns skipped in folders
    include_hidden: bool = False


@dataclass(frozen=True)
class Layout:
    """The actor pool a run uses, resolved against the cluster."""

    workers: int
    gpus_per_worker: float
    batch_size: int

    @property
    def device(self) -> str:
        return "cuda" if self.gpus_per_worker > 0 else "cpu"


def resolve_layout(options: RayOptions) -> Layout:
    res = cluster_resources()
    gpus = options.gpus_per_worker if options.gpus_per_worker is not None else (1.0 if res.gpus >= 1 else 0.0)
    if options.workers:
        workers = options.workers
    elif gpus > 0:
        workers = max(1, int(res.gpus / gpus))
    else:
        workers = max(1, int(res.cpus // 4))
    batch = options.batch_size or (256 if gpus > 0 else 32)
    return Layout(workers, gpus, batch)


# Rows per committed write on the driver. Committing every model batch (32 rows on a CPU) made
# each commit's fixed cost (the sequence row lock, the counter update, the WAL flush) the engine's
# ceiling; the vectors are computed already, so the write batch need not follow the model's.
WRITE_ROWS = 1_000
# ...but commit at least this often, so a slow cluster's progress is durable and visible to queries.
WRITE_SECONDS = 2.0


class _VectorWriter(BatchWriter):
    """The local engine's writer, fed vectors computed by the actors instead of pixels."""

    _flushed_at = 0.0

    def add_decoded(self, item: Embedded, state: FileState | None) -> None:
        self.add_embedded(item, state, item.vector)
        if not self._flushed_at:
            self._flushed_at = time.monotonic()
        if len(self._records) >= WRITE_ROWS or time.monotonic() - self._flushed_at >= WRITE_SECONDS:
            self.flush()

    def flush(self) -> None:
        super().flush()
        self._flushed_at = time.monotonic()


def run_index_ray(
    catalog: Catalog,
    encoder: Encoder | Callable[[], Encoder],
    sources: list[str],
    settings: Settings,
    options: RayOptions = RayOptions(),
    on_total: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> IndexSummary:
    """Index folders and path lists on the connected Ray cluster (see `ray_cluster.connect`).

    `encoder` (or the function loading it, called only when there is something to read) is the
    driver's copy: it binds the store's model and gives the preprocessing; the actors load their own.
    """
    require_ray()
    resolved = resolve_sources(sources)
    exclusions = Exclusions.build(options.exclude, options.include_hidden, skip=(settings.home,))

    def read(loaded: Encoder, plans: list[Plan], thumbs: Thumbnails | None, summary: IndexSummary) -> None:
        layout = resolve_layout(options)
        writer = _VectorWriter(catalog.writes, loaded, layout.batch_size, summary)
        routers = [Router(plan, writer, summary) for plan in plans]
        pending = [(i, job) for i, plan in enumerate(plans) for job in plan.jobs]
        while pending:  # a second pass only for copies of a moved file that found no row left to claim
            pending = _pass(pending, routers, loaded, settings, thumbs, layout, options, on_progress)
            writer.flush()

    return run_plans(
        catalog,
        settings,
        [source_key(s) for s in resolved],
        lambda i, summary, thumbs: plan_source(catalog, resolved[i], summary, thumbs, exclusions),
        read,
        encoder,
        on_total,
    )


def _pass(pending, routers: list[Router], encoder: Encoder, settings, thumbs, layout: Layout, options, on_progress):
    """Run the pipeline over `pending` (plan index, job) pairs; returns the jobs to run again."""
    routed: set[tuple[int, str]] = set()
    retries: list[tuple[int, DecodeJob]] = []
    for plan_index, result in _stream(pending, routers, encoder, settings, thumbs, layout, options):
        key = (plan_index, result.file.path)
        if key in routed:
            continue  # delivered again by a retried task: already routed and written
        routed.add(key)
        retry = routers[plan_index].handle(result)
        if retry is not None:
            retries.append((plan_index, retry))
        elif on_progress:
            on_progress(1)
    return retries


def _stream(pending, routers: list[Router], encoder: Encoder, settings, thumbs, layout: Layout, options):
    ray = require_ray()
    table = job_table(pending)
    blocks = [table.slice(start, DECODE_BLOCK) for start in range(0, table.num_rows, DECODE_BLOCK)]
    ds = ray.data.from_arrow(blocks)
    # Ray Data's own bars and plan logs off: the caller shows one progress bar, as for the local engine.
    ds.context.enable_progress_bars = False
    ds.context.print_on_execution_start = False
    with warnings.catch_warnings():
        # Ray 2.60 flags ray_remote_args_fn for a future rename; the argument still works as documented.
        warnings.simplefilter("ignore", DeprecationWarning)
        ds = ds.map_batches(
            decode_batch,
            batch_size=None,
            fn_kwargs={
                "cfg": encoder.preprocess_cfg,
                "max_megapixels": settings.max_megapixels,
                "move_hashes": [r.move_hashes for r in routers],
                "thumbs": thumbs,
                "threads": options.cpus_per_decoder,
            },
            num_cpus=options.cpus_per_decoder,
            # Decode tasks spread over every node. Given as a function, these arguments also keep
            # Ray Data from fusing decoding into the actors' processes: it scales apart from the model.
            ray_remote_args_fn=_spread,
        )
    ds = ds.map_batches(
        EmbedActor,
        fn_constructor_kwargs={
            "spec": encoder.spec,
            "device": layout.device,
            "runtime": settings.runtime,
            "cache_dir": str(settings.model_cache),
            "model_id": encoder.model_id,
        },
        compute=ray.data.ActorPoolStrategy(size=layout.workers),
        batch_size=layout.batch_size,
        num_gpus=layout.gpus_per_worker or None,
        num_cpus=1,
    )
    try:
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            yield from unpack(batch)
    except Exception as exc:
        cause = _user_error(exc)
        if cause is not None:
            raise cause from None
        raise


def _spread() -> dict:
    return {"scheduling_strategy": "SPREAD"}


def _user_error(exc: BaseException) -> ClipsearchError | None:
    """Our own typed error inside Ray's wrappers (a worker could not load the model, say), if any."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, ClipsearchError):
            return exc
        if getattr(exc, "actor_init_failed", False):
            # Ray keeps only the text of an actor's failed __init__: its last line names the error.
            last = next((line.strip() for line in reversed(str(exc).splitlines()) if line.strip()), str(exc))
            return ModelError(f"the model workers could not start: {last}")
        exc = getattr(exc, "cause", None) or exc.__cause__
    return None
