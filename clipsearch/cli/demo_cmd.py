"""`clipsearch demo`: a generated collection, indexed with the bundled model and searched, offline."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from clipsearch.cli.common import cli_command, open_store, warn_if_random
from clipsearch.errors import ModelError

DEMO_QUERIES = (
    "a red circle",
    "a red star",  # a colour+shape pair the bundled model never saw in training
    "blue squares",
    "three small circles",
    "a pink triangle on a gray background",
    "a shape in the top left corner",
)
# Not a seed used for training or the tests, so the demo shows pictures the model never saw.
DEMO_SEED = 2026


@cli_command
def demo_command(
    ctx: typer.Context,
    folder: Optional[Path] = typer.Argument(None, help="Where to put the demo photos and store (default: HOME/demo)."),
    n: int = typer.Option(300, "--n", min=10, help="How many pictures to generate."),
    seed: int = typer.Option(DEMO_SEED, "--seed", help="Seed of the generated collection."),
    model: Optional[str] = typer.Option(
        None, "--model", "-m", help="Model to index with (default: the bundled model)."
    ),
    k: int = typer.Option(5, "-k", help="Results shown per example query."),
) -> None:
    """Generate a collection of shapes pictures, index it with the bundled model, run example queries."""
    from tqdm import tqdm

    from clipsearch.indexer import IndexOptions, run_index
    from clipsearch.search import SearchRequest, SearchService
    from clipsearch.synthetic.corpus import generate_corpus, read_labels

    settings = ctx.obj.settings
    folder = (folder or settings.home / "demo").expanduser().resolve()
    spec = model or _bundled_model()
    photos = folder / "photos"
    if not any(photos.glob("*.png")):
        with tqdm(total=n, unit="img", desc="generating") as bar:
            generate_corpus(photos, n, seed, split="heldout", progress=lambda done, _t: bar.update(done - bar.n))
    demo_settings = settings.with_(home=folder / "store", database_url=None)
    store = open_store(ctx, demo_settings)
    encoder = store.load_encoder(spec, "auto")
    warn_if_random(encoder)
    store.bind(encoder)
    with tqdm(total=0, unit="img", desc="indexing") as bar:
        summary = run_index(
            store.catalog,
            encoder,
            [photos],
            demo_settings,
            IndexOptions(),
            on_total=lambda t: setattr(bar, "total", t),
            on_progress=bar.update,
        )
    typer.echo(f"indexed: {summary.line()}")
    service = SearchService(store, encoder, store.vector_index()[0])
    labels = read_labels(photos)
    for query in DEMO_QUERIES:
        result = service.search(SearchRequest(text=query, k=k))
        typer.echo(f"\n{query!r}  ({result.timings['total_ms']:.0f} ms)")
        for hit in result.hits:
            typer.echo(
                f"{hit.rank:>4}  {hit.score:.3f}  {Path(hit.path).name}  [{_truth(labels.get(Path(hit.path).name))}]"
            )
    typer.echo(
        f'\nTry your own: clipsearch --home {demo_settings.home} query "a small pink triangle"\n'
        f"(the bundled model knows only this synthetic world of shapes; use the default open_clip "
        f"weights for real photos)"
    )


def _truth(scene: dict | None) -> str:
    """What the picture really shows, from the generator's labels, to judge the ranking by."""
    if not scene:
        return "?"
    texture = "" if scene.get("texture") in (None, "plain") else f"{scene['texture']} "
    where = f", {scene['position']}" if scene.get("position") else ""
    return (
        f"{scene['count']} {scene['size']} {scene['colour']} {scene['shape']} on {texture}{scene['background']}{where}"
    )


def _bundled_model() -> str:
    from clipsearch.models import bundled_models

    names = bundled_models()
    if not names:
        raise ModelError("no bundled model is installed in this copy of clipsearch; pass --model")
    return names[0]
