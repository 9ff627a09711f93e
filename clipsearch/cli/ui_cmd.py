"""`clipsearch ui`: serve the web search page (Streamlit) for this store."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path

import typer

from clipsearch.cli.common import cli_command
from clipsearch.errors import ConfigError


def app_file() -> Path:
    """The installed page script (found through the package, so any working directory works)."""
    spec = importlib.util.find_spec("clipsearch.ui.app")
    if spec is None or not spec.origin or not Path(spec.origin).is_file():
        raise ConfigError("the web UI is not installed (clipsearch.ui.app is missing); reinstall clipsearch")
    return Path(spec.origin)


def streamlit_command(host: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app_file()),
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "viewer",  # no "Deploy" button: this page is the product
        # The page is served, not developed: no reloads when files change on disk.
        "--server.fileWatcherType",
        "none",
        "--server.runOnSave",
        "false",
    ]


def display_url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
    return f"http://{shown}:{port}"


@cli_command
def ui_command(
    ctx: typer.Context,
    port: int = typer.Option(8501, "--port", min=1, max=65535, help="Port to serve on."),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Address to bind; 0.0.0.0 makes the page reachable from other machines."
    ),
) -> None:
    """Open the web search page for this store (Ctrl-C stops it)."""
    settings = ctx.obj.settings
    env = {**os.environ, "CLIPSEARCH_HOME": str(settings.home)}
    try:
        import streamlit  # noqa: F401
    except ImportError:
        raise ConfigError("the web UI needs streamlit: pip install streamlit") from None
    typer.echo(f"clipsearch ui: serving {settings.home} at {display_url(host, port)} (Ctrl-C to stop)")
    code = _serve(streamlit_command(host, port), env)
    if code:
        raise typer.Exit(code)


def _serve(command: list[str], env: dict) -> int:
    """Run the server until it exits; a stop request to this process stops it too."""
    proc = subprocess.Popen(command, env=env)
    previous = signal.signal(signal.SIGTERM, lambda *_: proc.terminate())
    try:
        return proc.wait()
    except KeyboardInterrupt:
        # Ctrl-C in a terminal reaches streamlit as well; let it shut down cleanly.
        try:
            proc.wait(timeout=10)
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            proc.kill()
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
