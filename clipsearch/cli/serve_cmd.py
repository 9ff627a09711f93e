"""`clipsearch serve`: the HTTP API for this store (FastAPI under uvicorn), keeping the model warm."""

from __future__ import annotations

from typing import Optional

import typer

from clipsearch.cli.common import cli_command, err, open_store
from clipsearch.errors import ConfigError


@cli_command
def serve_command(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; any address but loopback needs a token."),
    port: int = typer.Option(8700, "--port", min=0, max=65535, help="Port to serve on (0: any free port)."),
    token: Optional[str] = typer.Option(
        None,
        "--token",
        envvar="CLIPSEARCH_API_TOKEN",
        show_envvar=True,
        help="Require 'Authorization: Bearer TOKEN' on every request "
        "(prefer the variable: other users can read a command line).",
    ),
    allow_host: list[str] = typer.Option(
        [],
        "--allow-host",
        help="A host name clients may address the server by (repeatable); IP addresses and localhost always work.",
    ),
    max_upload_mb: float = typer.Option(20.0, "--max-upload-mb", min=0.1, help="Largest upload accepted, in MiB."),
    max_upload_megapixels: float = typer.Option(
        40.0, "--max-upload-megapixels", min=0.1, help="Largest example image accepted, in megapixels."
    ),
    access_log: bool = typer.Option(False, "--access-log", help="Log every request (method, path, status)."),
) -> None:
    """Serve the HTTP API for this store until Ctrl-C (docs at /docs)."""
    try:
        from clipsearch.api.engine import Limits
        from clipsearch.api.server import ServeOptions, check_options, serve
    except ImportError as exc:
        raise ConfigError(
            f"the HTTP API needs its extra: pip install 'clipsearch[api]' ({exc.name} is missing)"
        ) from exc
    options = ServeOptions(
        host=host,
        port=port,
        token=token or None,
        allowed_hosts=tuple(allow_host),
        limits=Limits(int(max_upload_mb * 1024 * 1024), max_upload_megapixels),
        access_log=access_log,
    )
    check_options(options)  # before the store is opened (or created)
    serve(open_store(ctx), options, err)
