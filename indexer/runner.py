"""The runner: plans the work, keeps decoders ahead of the model, writes in committed batches."""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from clipsearch.catalog import Catalog, FileState, FileStatus, ImageRecord, Move
from clipsearch.faults import point
from clipsearch.indexer.decode import DecodeJob, Failed, KnownContent, decode
from clipsearch.indexer.exclude import Exclusions
from clipsearch.indexer.scan import FoundFile, Root, printable_path, resolve_roots, walk_root
from clipsearch.indexer.summary import IndexSummary
from clipsearch.indexer.walks import WalkRecords
from clipsearch.settings import Settings
from clipsearch.thumbnails import Thumbnails

if TYPE_CHECKING:
    from clipsearch.catalog.writes import IndexWrites
    from clipsearch.indexer.batch import BatchWriter
    from clipsearch.models import Encoder

# The model code and the batch writer (numpy) are imported once there is a file to read: a run
# over an unchanged collection plans, finds nothing to do, and ends without them.


@dataclass(frozen=True)
class IndexOptions:
    batch_size: int | None = None  # None: 256 on a GPU, 32 on a CPU
    workers: int | None = None  # decode threads; None: one per core, at least 2
    exclude: tuple[str, ...] = ()  # name or relative-path patterns skipped besides the defaults
    include_hidden: bool = False  # walk names starting with "." too


@dataclass
class Plan:
    jobs: list[DecodeJob]
    existing: dict[str, FileState]  # path -> row, for every job the catalog already knows
    missing: dict[str, FileState]  # path -> row, known but not found on disk


def plan_root(
    writes: IndexWrites,
    root: Root,
    summary: IndexSummary,
    thumbs: Thumbnails | None = None,
    exclusions: Exclusions | None = None,
    walks: WalkRecords | None = None,
) -> Plan:
    """The decode jobs for one root; with `thumbs`, unchanged images lacking a thumbnail are read again for it.

    Rows of excluded files count as missing (they leave the catalog), rows under folders that
    could not be listed are kept. When `walks` shows that the last complete run walked the same
    files, the root's rows are not even read: there is nothing to do.
    """
    # Sequential on purpose: reading the catalog in a thread beside the walk made an unchanged
    # re-index of 20k files 25% slower here (the two threads hand the GIL back and forth).
    walk = walk_root(root, exclusions)
    if walks is not None and walks.unchanged(root, walk) and thumbs is None:
        summary.unchanged += len(walk)
        return Plan([], {}, {})
    states = writes.file_states(printable_path(root.path), root.is_dir)
    return plan_files(walk.found(), states, walk.unreadable, summary, thumbs)


def plan_files(
    found_files: Iterable[FoundFile],
    states: dict[str, FileState],
    unreadable: dict[str, str],
    summary: IndexSummary,
    thumbs: Thumbnails | None = None,
) -> Plan:
    """The decode jobs for files found on disk (or listed), given the catalog's rows for them.

    `states` holds every row the source covers; those not found become `missing` (swept as
    deleted), except under the folders in `unreadable` (filled while `found_files` runs).
    """
    have_thumbs = thumbs.existing() if thumbs is not None else set()
    jobs, existing = [], {}
    check_thumbs = thumbs is not None
    for found in found_files:
        state = states.pop(found.path, None)
        if state is not None:
            unchanged = state.size == found.size and state.mtime_ns == found.mtime_ns and found.error is None
            # Stores indexed before thumbnails existed gain them on their next run.
            lacks_thumb = (
                check_thumbs
                and state.status == FileStatus.OK
                and state.content_hash
                and state.content_hash not in have_thumbs
            )
            if unchanged and not lacks_thumb:
                summary.unchanged += 1
                continue
            existing[found.path] = state
        expected = state.content_hash if state is not None and state.status == FileStatus.OK else None
        jobs.append(DecodeJob(found, expected, allow_move=state is None))
    # Rows under folders we could not list are kept: unreadable is not deleted.
    kept = [printable_path(folder) + os.sep for folder in unreadable]
    missing = {p: s for p, s in states.items() if not any(p.startswith(prefix) for prefix in kept)}
    summary.unreadable.extend((printable_path(folder), reason) for folder, reason in unreadable.items())
    return Plan(jobs, existing, missing)


def resolve_batch_size(options: IndexOptions, encoder: Encoder) -> int:
    if options.batch_size:
        return options.batch_size
    return 256 if encoder.device == "cuda" else 32


class Router:
    """State of one root's run: claims moves, routes decode results to the writer."""

    def __init__(self, plan: Plan, writer: BatchWriter, summary: IndexSummary):
        self.plan = plan
        self.writer = writer
        self.summary = summary
        self.by_hash: dict[str, list[FileState]] = {}
        for state in plan.missing.values():
            if state.status == FileStatus.OK and state.content_hash:
                self.by_hash.setdefault(state.content_hash, []).append(state)

    @property
    def move_hashes(self) -> frozenset[str]:
        return frozenset(self.by_hash)

    def handle(self, result) -> DecodeJob | None:
        """Route one result; returns a job to run again (a duplicate of a moved file)."""
        found = result.file
        state = self.plan.existing.get(found.path)
        if isinstance(result, Failed):
            self.summary.failed += 1
            self.summary.failures.append((found.path, result.reason))
            self.writer.add_record(_failed_record(result), state)
        elif isinstance(result, KnownContent):
            if state is not None:  # touched: same bytes, new mtime
                self.summary.unchanged += 1
                self.writer.add_move(Move(state.id, found.path, found.root, found.size, found.mtime_ns, found.raw))
            else:
                candidates = self.by_hash.get(result.content_hash)
                if not candidates:
                    return DecodeJob(found, None, allow_move=False)
                old = candidates.pop()
                self.plan.missing.pop(old.path, None)
                self.summary.moved += 1
                self.writer.add_move(Move(old.id, found.path, found.root, found.size, found.mtime_ns, found.raw))
        else:
            self.writer.add_decoded(result, state)
        return None


def _failed_record(result: Failed) -> ImageRecord:
    f = result.file
    return ImageRecord(
        f.path,
        f.root,
        f.size,
        f.mtime_ns,
        result.content_hash,
        status=FileStatus.FAILED,
        error=result.reason,
        path_bytes=f.raw,
    )


def run_index(
    catalog: Catalog,
    encoder: Encoder | Callable[[], Encoder],
    paths: list[Path],
    settings: Settings,
    options: IndexOptions = IndexOptions(),
    on_total: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> IndexSummary:
    """Index the images under `paths`; every finished batch is committed before the next starts.

    `encoder` may be a function that loads it: then a run with nothing to read (an unchanged
    collection) never pays for loading the model.
    """
    roots = resolve_roots(paths)
    # The store's own home is never walked: its thumbnails are not photos (and would grow every run).
    exclusions = Exclusions.build(options.exclude, options.include_hidden, skip=(settings.home,))
    walks = WalkRecords(settings, exclusions, catalog.facts.rows_seq())

    def read(loaded: Encoder, plans: list[Plan], thumbs: Thumbnails | None, summary: IndexSummary) -> None:
        _read_and_write(catalog.writes, loaded, plans, settings, thumbs, options, summary, on_progress)

    summary = run_plans(
        catalog,
        settings,
        [root.path for root in roots],
        lambda i, summary, thumbs: plan_root(catalog.writes, roots[i], summary, thumbs, exclusions, walks),
        read,
        encoder,
        on_total,
    )
    walks.save(catalog.facts.rows_seq())
    return summary


PlanSource = Callable[[int, IndexSummary, "Thumbnails | None"], Plan]
ReadStage = Callable[["Encoder", list[Plan], "Thumbnails | None", IndexSummary], None]


def run_plans(
    catalog: Catalog,
    settings: Settings,
    keys: list[str],
    plan: PlanSource,
    read: ReadStage,
    encoder: Encoder | Callable[[], Encoder],
    on_total: Callable[[int], None] | None = None,
) -> IndexSummary:
    """What every engine does around reading: plan each source, read what needs it, sweep, mark thumbnails.

    `keys` name the sources (a folder, a path list); `plan(i, summary, thumbs)` plans source i;
    `read` decodes, embeds and writes the plans' jobs (threads here, Ray tasks in ray_engine).
    """
    started = time.perf_counter()
    summary = IndexSummary()
    thumbs = Thumbnails.for_settings(settings) if settings.thumbnail_size > 0 else None
    seq = catalog.facts.current_seq()
    covered = thumbs.covers(keys, seq) if thumbs is not None else [False] * len(keys)
    plans = [plan(i, summary, None if done else thumbs) for i, done in enumerate(covered)]
    point("planned")
    total = sum(len(p.jobs) for p in plans)
    if on_total:
        on_total(total)
    if total:
        from clipsearch.models import Encoder

        read(encoder if isinstance(encoder, Encoder) else encoder(), plans, thumbs, summary)
    for p in plans:
        sweep(catalog.writes, p, summary)
    point("swept")
    note = thumbs.reserve_note() if thumbs is not None else None
    if note:
        summary.notes.append(note)
    elif thumbs is not None:
        now = catalog.facts.current_seq()
        if not (all(covered) and now == seq):
            # Every image under these sources now has its thumbnail (an interrupted run never gets here).
            thumbs.mark_covered(keys, now)
    summary.seconds = time.perf_counter() - started
    return summary


def _read_and_write(
    writes: IndexWrites, encoder: Encoder, plans: list[Plan], settings, thumbs, options, summary, on_progress
) -> None:
    from clipsearch.indexer.batch import BatchWriter

    batch_size = resolve_batch_size(options, encoder)
    workers = options.workers or max(2, os.cpu_count() or 2)
    writer = BatchWriter(writes, encoder, batch_size, summary)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool:
        for plan in plans:
            run = Router(plan, writer, summary)
            _pump(pool, plan.jobs, run, encoder, settings, thumbs, workers + 2 * batch_size, on_progress)
            writer.flush()


def sweep(writes: IndexWrites, plan: Plan, summary: IndexSummary) -> None:
    if plan.missing:
        writes.write([], {}, deleted=[s.id for s in plan.missing.values()])
        summary.removed += len(plan.missing)


def _pump(
    pool, jobs, run: Router, encoder: Encoder, settings: Settings, thumbs: Thumbnails | None, window: int, on_progress
) -> None:
    """Keep up to `window` decodes in flight ahead of the model, consuming them in order."""
    cfg, limit, moves = encoder.preprocess_cfg, settings.max_megapixels, run.move_hashes
    queue: deque[DecodeJob] = deque(jobs)
    inflight: deque[Future] = deque()
    try:
        while queue or inflight:
            while queue and len(inflight) < window:
                inflight.append(pool.submit(decode, queue.popleft(), cfg, limit, moves, thumbs))
            retry = run.handle(inflight.popleft().result())
            if retry is not None:
                queue.appendleft(retry)
            elif on_progress:
                on_progress(1)
    finally:
        for fut in inflight:
            fut.cancel()
