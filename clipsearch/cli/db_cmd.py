"""`clipsearch db`: schema administration for the catalog (stores also upgrade on open)."""

from __future__ import annotations

import typer

from clipsearch.cli.common import cli_command

db_app = typer.Typer(help="Catalog schema: show or apply migrations.", no_args_is_help=True)


@db_app.command("current")
@cli_command
def db_current(ctx: typer.Context) -> None:
    """Print the catalog's schema revision and the newest one this version knows."""
    from clipsearch.catalog import migrate
    from clipsearch.catalog.engine import make_engine, safe_url

    url = ctx.obj.settings.catalog_url
    engine = make_engine(url)
    try:
        current = migrate.current_revision(engine)
    finally:
        engine.dispose()
    head = migrate.head_revision()
    state = "up to date" if current == head else "needs `clipsearch db upgrade`"
    typer.echo(f"{safe_url(url)}: revision {current or 'none'} (head {head}, {state})")


@db_app.command("upgrade")
@cli_command
def db_upgrade(
    ctx: typer.Context,
    revision: str = typer.Argument("head", help="Target revision."),
) -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    from clipsearch.catalog import migrate
    from clipsearch.catalog.engine import make_engine, safe_url

    url = ctx.obj.settings.catalog_url
    engine = make_engine(url)
    try:
        migrate.upgrade(engine, revision)
        current = migrate.current_revision(engine)
    finally:
        engine.dispose()
    typer.echo(f"{safe_url(url)}: now at revision {current}")
