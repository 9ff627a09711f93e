"""The `clipsearch` command line: one module per command group, registered here, errors translated once."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from clipsearch.cli import db_cmd, demo_cmd, index_cmd, query_cmd, serve_cmd, status_cmd, train_cmd, ui_cmd
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


# Command modules import their heavy dependencies inside the command functions, so
# registering every command here costs only the CLI's own imports.
app.command("index")(index_cmd.index_command)
app.command("query")(query_cmd.query_command)
app.command("status")(status_cmd.status_command)
app.command("ui")(ui_cmd.ui_command)
app.command("serve")(serve_cmd.serve_command)
app.command("demo")(demo_cmd.demo_command)
app.command("demo-data")(train_cmd.demo_data_command)
app.command("train")(train_cmd.train_command)
app.add_typer(db_cmd.db_app, name="db")


def main() -> None:
    app()
