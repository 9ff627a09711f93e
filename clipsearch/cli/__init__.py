"""The `clipsearch` command line: one module per command group, registered here, errors translated once."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from clipsearch.cli import (
    db_cmd,
    demo_cmd,
    duplicates_cmd,
    index_cmd,
    models_cmd,
    query_cmd,
    reembed_cmd,
    serve_cmd,
    status_cmd,
    tag_cmd,
    train_cmd,
    ui_cmd,
)
from clipsearch.cli.common import CliContext, err, interrupt_reported, interrupted, translated_errors
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
    with translated_errors(debug):  # a bad environment variable is a one-line error too
        ctx.obj = CliContext(settings=Settings.from_env(home), debug=debug)


# Command modules import their heavy dependencies inside the command functions, so
# registering every command here costs only the CLI's own imports.
app.command("index")(index_cmd.index_command)
app.command("query")(query_cmd.query_command)
app.command("reembed")(reembed_cmd.reembed_command)
app.command("status")(status_cmd.status_command)
app.command("tag")(tag_cmd.tag_command)
app.command("tags")(tag_cmd.tags_command)
app.command("duplicates")(duplicates_cmd.duplicates_command)
app.command("models")(models_cmd.models_command)
app.command("ui")(ui_cmd.ui_command)
app.command("serve")(serve_cmd.serve_command)
app.command("demo")(demo_cmd.demo_command)
app.command("demo-data")(train_cmd.demo_data_command)
app.command("train")(train_cmd.train_command)
app.add_typer(db_cmd.db_app, name="db")


def run(args: list[str] | None = None) -> int:
    """Run the command line; return its exit status. Ctrl-C anywhere prints "interrupted": 130."""
    try:
        # Not standalone mode, so that the status comes back here instead of through sys.exit.
        result = app(args=args, prog_name="clipsearch", standalone_mode=False)
    except typer.Abort:
        return interrupted()
    except typer.TyperException as exc:  # a usage error (typer's own click: the click package's classes differ)
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        else:
            err(f"error: {exc.format_message()}")
        return exc.exit_code
    code = result if isinstance(result, int) else 0
    if code == 130 and not interrupt_reported():  # typer's silent exit for a Ctrl-C outside a command
        return interrupted()
    return code


def main() -> None:
    sys.exit(run())
