"""`clipsearch tag` and `clipsearch tags`: zero-shot labels for every image, and their counts."""

from __future__ import annotations

import json
from typing import Optional

import typer

from clipsearch.cli.common import cli_command, open_store, warn_if_random


@cli_command
def tag_command(
    ctx: typer.Context,
    labels: str = typer.Option(..., "--labels", help="Comma-separated labels, e.g. 'beach,snow,city,food'."),
    prompts: list[str] = typer.Option(
        [], "--prompt", help="A prompt with {} for the label, e.g. 'a photo of {}' (repeatable: averaged)."
    ),
    threshold: Optional[float] = typer.Option(
        None, "--threshold", help="Tag an image with a label whose probability is at least this (default 0.5)."
    ),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model spec; default: the store's model."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    as_json: bool = typer.Option(False, "--json", help="Print the counts as JSON."),
) -> None:
    """Tag every image with the labels it matches (CLIP zero-shot classification); new images are
    tagged by the next `clipsearch index`."""
    from tqdm import tqdm

    from clipsearch.search.tagging import LabelSet, tag_all

    store = open_store(ctx)
    store.require_model()
    encoder = store.load_encoder(model, device)
    warn_if_random(encoder)
    label_set = LabelSet.build(encoder, labels.split(","), prompts or None, threshold)
    total = store.catalog.facts.stats().images
    with tqdm(total=total, unit="img", desc="tagging", dynamic_ncols=True, disable=None) as bar:
        counts = tag_all(store.catalog, label_set, progress=bar.update)
    _show(label_set, counts, total, as_json)


@cli_command
def tags_command(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """List the labels of the last `clipsearch tag` with how many images have each."""
    from clipsearch.search.tagging import stored_label_set

    store = open_store(ctx)
    label_set = stored_label_set(store.catalog)
    if label_set is None:
        if as_json:
            typer.echo(json.dumps({"labels": [], "counts": {}}))
        else:
            typer.echo("no tags yet: run `clipsearch tag --labels beach,snow,city` first")
        return
    _show(label_set, store.catalog.tags.counts(), store.catalog.facts.stats().images, as_json)


def _show(label_set, counts: dict[str, int], total: int, as_json: bool) -> None:
    ordered = {label: counts.get(label, 0) for label in sorted(label_set.labels, key=lambda x: -counts.get(x, 0))}
    if as_json:
        info = {
            "labels": list(label_set.labels),
            "prompts": list(label_set.prompts),
            "threshold": label_set.threshold,
            "images": total,
            "counts": ordered,
        }
        typer.echo(json.dumps(info, indent=2))
        return
    prompts = ", ".join(repr(p) for p in label_set.prompts)
    typer.echo(f"{total} images, {len(label_set.labels)} labels (threshold {label_set.threshold:g}; prompts {prompts})")
    width = max(len(label) for label in ordered)
    for label, n in ordered.items():
        typer.echo(f"  {label:<{width}}  {n}")
