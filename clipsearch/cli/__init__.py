"""The `clipsearch` command line: one module per command group, registered here, errors translated once."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Optional

import typer

from clipsearch.cli.common import CliContext, err, interrupt_reported, interrupted, translated_errors
from clipsearch.settings import Settings

# name -> (module under clipsearch.cli, attribute): a command function, or a Typer app for a group.
# A process imports and builds only the command it runs; the full list is built for help and for
# names it does not know (typer suggests the closest ones).
COMMANDS = {
    "index": ("index_cmd", "index_command"),
    "query": ("query_cmd", "query_command"),
    "reembed": ("reembed_cmd", "reembed_command"),
    "status": ("status_cmd", "status_command"),
    "tag": ("tag_cmd", "tag_command"),
    "tags": ("tag_cmd", "tags_command"),
    "duplicates": ("duplicates_cmd", "duplicates_command"),
    "models": ("models_cmd", "models_command"),
    "ui": ("ui_cmd", "ui_command"),
    "serve": ("serve_cmd", "serve_command"),
    "demo": ("demo_cmd", "demo_command"),
    "demo-data": ("train_cmd", "demo_data_command"),
    "train": ("train_cmd", "train_command"),
    "db": ("db_cmd", "db_app"),
}


def _global_options(
    ctx: typer.Context,
    home: Optional[Path] = typer.Option(
        None, "--home", envvar="CLIPSEARCH_HOME", help="Folder holding the catalog, index and caches."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
) -> None:
    with translated_errors(debug):  # a bad environment variable is a one-line error too
        ctx.obj = CliContext(settings=Settings.from_env(home), debug=debug)


def build_app(names: Iterable[str] = COMMANDS) -> typer.Typer:
    """The command line with the commands `names` (all of them by default), in COMMANDS order."""
    app = typer.Typer(
        name="clipsearch",
        help="Semantic image search: index photo folders, then find pictures by describing them.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    app.callback()(_global_options)
    wanted = set(names)
    for name, (module, attribute) in COMMANDS.items():
        if name not in wanted:
            continue
        # __import__, the import statement's own path, so that -X importtime shows the command's module.
        target = getattr(__import__(f"clipsearch.cli.{module}", fromlist=[attribute]), attribute)
        if isinstance(target, typer.Typer):
            app.add_typer(target, name=name)
        else:
            app.command(name)(target)
    return app


def invoked_command(args: Sequence[str]) -> str | None:
    """The command `args` run, when it is a known one given after nothing but the global options."""
    values = iter(args)
    for arg in values:
        if arg == "--home":
            next(values, None)
        elif arg == "--debug" or arg.startswith("--home="):
            continue
        else:
            return arg if arg in COMMANDS else None
    return None


def __getattr__(name: str) -> typer.Typer:
    # `clipsearch.cli.app`: the whole command line, for tests and tools that inspect it.
    if name == "app":
        return build_app()
    raise AttributeError(name)


def run(args: list[str] | None = None) -> int:
    """Run the command line; return its exit status. Ctrl-C anywhere prints "interrupted": 130."""
    try:
        # Not standalone mode, so that the status comes back here instead of through sys.exit.
        argv = sys.argv[1:] if args is None else args
        command = invoked_command(argv)
        app = build_app([command] if command else COMMANDS)
        result = app(args=argv, prog_name="clipsearch", standalone_mode=False)
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
