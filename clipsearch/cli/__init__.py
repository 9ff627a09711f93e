"""The `clipsearch` command line: one module per command group, errors translated once here."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from clipsearch.cli.common import CliContext
from clipsearch.settings import Settings

app = typer.Typer(
    name="clipsearch",
    help="Semantic image search: index photo folders, then find pictures by describing them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _global_options(
    ctx: typer.Context,
    home: Optional[Path] = typer.Option(
        None, "--home", envvar="CLIPSEARCH_HOME", help="Folder holding the catalog, index and caches."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
) -> None:
    ctx.obj = CliContext(settings=Settings.from_env(home), debug=debug)


def _register_commands() -> None:
    # Imported for their side effect of adding commands to `app`.
    from clipsearch.cli import (  # noqa: F401
        db_cmd,
        demo_cmd,
        index_cmd,
        query_cmd,
        status_cmd,
        train_cmd,
        ui_cmd,
    )


_register_commands()


def main() -> None:
    app()
