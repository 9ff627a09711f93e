"""Starting, finishing and dropping vector generations: the steps around `embed_pending`."""

from __future__ import annotations

from collections.abc import Callable

from clipsearch.catalog.generations import ACTIVE, BUILDING, GenerationInfo
from clipsearch.errors import ConfigError, StoreError
from clipsearch.faults import point
from clipsearch.indexer.reembed import ReembedSummary, embed_pending
from clipsearch.indexer.runner import IndexOptions
from clipsearch.lock import whole_store_lock
from clipsearch.models import Encoder
from clipsearch.store import Store
from clipsearch.vectors.generation_index import build_generation_index


def start_generation(store: Store, encoder: Encoder) -> GenerationInfo:
    """The building generation for `encoder`'s model: resumed if one is under way, else new."""
    building = store.catalog.generations.building()
    if building is not None and building.model_id != encoder.model_id:
        raise StoreError(
            f"a reembed to {building.model_id} is under way ({building.embedded} of {building.total} images); "
            f"resume it with `clipsearch reembed --model {building.spec}`, or drop it with "
            f"`clipsearch reembed --drop {building.model_id}`"
        )
    if building is not None:
        return building
    retired = store.catalog.generations.find(encoder.model_id)
    if retired is not None:  # moving back to a model the store had: its old vectors are made again
        store.retired_index_path(retired.id).unlink(missing_ok=True)
    return store.catalog.generations.start(encoder.model_id, encoder.spec, encoder.dim)


def finish(
    store: Store,
    gen: GenerationInfo,
    encoder: Encoder,
    options: IndexOptions,
    summary: ReembedSummary,
    on_wait: Callable[[], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Catch up under the whole-store lock, build the new index, switch; how many images were re-tagged."""
    catalog, settings = store.catalog, store.settings
    if on_wait:
        on_wait()
    with whole_store_lock(catalog.engine, settings.lock_path):
        # What index runs added or changed while the bulk of the work ran.
        embed_pending(catalog, gen, encoder, settings, options, summary, on_progress=progress)
        gen = _current(store, gen.id)
        watermark = catalog.facts.current_seq() + 1  # the number the switch gives every vector
        index = build_generation_index(catalog, gen, watermark, settings.flat_max)
        index.save(store.next_index_path)
        point("reembed-index-saved")
        seq = catalog.generations.switch(gen.id)
        if seq != watermark:  # cannot happen while the lock is held; never install a stale index
            store.next_index_path.unlink(missing_ok=True)
        point("reembed-switched")
        store.settle_index_files()
    return _retag(store, encoder)


def _current(store: Store, gen_id: int) -> GenerationInfo:
    for g in store.catalog.generations.all():
        if g.id == gen_id and g.state == BUILDING:
            return g
    raise StoreError("the reembed's generation was dropped meanwhile; run `clipsearch reembed --model ...` again")


def _retag(store: Store, encoder: Encoder) -> int:
    """The zero-shot labels embedded again by the new model, and every image tagged with them."""
    from clipsearch.search.tagging import LabelSet, stored_label_set, tag_all

    old = stored_label_set(store.catalog)
    if old is None:
        return 0
    label_set = LabelSet.build(encoder, list(old.labels), list(old.prompts), old.threshold)
    tag_all(store.catalog, label_set)
    return store.catalog.facts.stats().images


def retag_if_stale(store: Store, load: Callable[[], Encoder]) -> int:
    """Tags again when their labels were embedded by a model the store no longer uses (a run
    killed between its switch and its re-tagging); `load` gives the store's model."""
    from clipsearch.search.tagging import stored_label_set

    labels = stored_label_set(store.catalog)
    if labels is None or store.model is None or labels.model_id == store.model.model_id:
        return 0
    return _retag(store, load())


def drop(store: Store, model: str) -> GenerationInfo:
    """Delete a generation that is not active (by model id or spec), its vectors and its index file."""
    gens = store.catalog.generations.all()
    found = next((g for g in gens if model in (g.model_id, g.spec)), None)
    if found is None:
        from clipsearch.models import model_id_for

        model_id = model_id_for(model)
        found = next((g for g in gens if g.model_id == model_id), None)
    if found is None:
        known = ", ".join(f"{g.model_id} ({g.state})" for g in gens) or "none"
        raise ConfigError(f"this store has no generation of {model}; it has: {known}")
    if found.state == ACTIVE:
        raise ConfigError(
            f"{found.model_id} is the store's active model; reembed to another model first, then drop this one"
        )
    store.catalog.generations.drop(found.id)
    store.retired_index_path(found.id).unlink(missing_ok=True)
    return found
