"""`clipsearch ui`: serve the web search page (Streamlit) for this store.

Binding anything but a loopback address puts the page (and every indexed photo) on the network,
so it needs a password unless --insecure-no-auth says otherwise. The server always refuses
requests whose Host header is not one of this machine's names (DNS rebinding), and keeps
Streamlit's XSRF and CORS protections on whatever a config.toml says.
"""

from __future__ import annotations

import contextlib
import importlib.util
import ipaddress
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Optional

import typer

from clipsearch.cli.common import cli_command
from clipsearch.errors import ConfigError

PASSWORD_ENV = "CLIPSEARCH_UI_PASSWORD"  # read by clipsearch.ui.gate in the server process
ALLOWED_HOSTS_ENV = "CLIPSEARCH_UI_ALLOWED_HOSTS"
MIN_PASSWORD_LENGTH = 8
WILDCARDS = ("", "0.0.0.0", "::")
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def server_file() -> Path:
    """The installed server script (found through the package, so any working directory works)."""
    spec = importlib.util.find_spec("clipsearch.ui.server")
    if spec is None or not spec.origin or not Path(spec.origin).is_file():
        raise ConfigError("the web UI is not installed (clipsearch.ui.server is missing); reinstall clipsearch")
    return Path(spec.origin)


def streamlit_command(host: str, port: int, allowed_hosts: list[str]) -> list[str]:
    flags = {
        "server.address": host,
        "server.port": str(port),
        "server.headless": "true",
        "browser.gatherUsageStats": "false",
        "client.toolbarMode": "viewer",  # no "Deploy" button: this page is the product
        # The page is served, not developed: no reloads when files change on disk.
        "server.fileWatcherType": "none",
        "server.runOnSave": "false",
        # On whatever a config.toml says: command-line flags win over config files.
        "server.enableXsrfProtection": "true",
        "server.enableCORS": "true",
    }
    command = [sys.executable, "-m", "streamlit", "run", str(server_file())]
    for name, value in flags.items():
        command += [f"--{name}", value]
    for name in allowed_hosts:  # Streamlit's own check of the websocket's Host, beside the gate's
        command += ["--server.allowedHosts", name]
    return command


def is_loopback(host: str) -> bool:
    if host in WILDCARDS:
        return False
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(addresses) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)


def machine_addresses() -> list[str]:
    """This machine's non-loopback IP addresses, the one with the default route first."""
    found: list[str] = []
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))  # TEST-NET address: picks a route, sends nothing
        found.append(probe.getsockname()[0])
    with contextlib.suppress(OSError):
        found += [info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None)]
    out = []
    for address in found:
        ip = ipaddress.ip_address(address.split("%")[0])
        if not (ip.is_loopback or ip.is_unspecified or ip.is_link_local) and str(ip) not in out:
            out.append(str(ip))
    return out


def _url_host(name: str) -> str:
    return f"[{name}]" if ":" in name else name


def page_urls(host: str, port: int) -> list[str]:
    """Where people reach the page: the addresses of this machine for a wildcard bind."""
    names = (machine_addresses() or [socket.gethostname()]) if host in WILDCARDS else [host]
    return [f"http://{_url_host(name)}:{port}" for name in names]


def allowed_hosts(host: str, extra: list[str]) -> list[str]:
    """Host names the server answers to: loopback, the bound address, this machine's names and addresses."""
    names = [*LOOPBACK_NAMES]
    if host not in WILDCARDS:
        names.append(host.strip("[]"))
    elif not is_loopback(host):
        names += [socket.gethostname(), socket.getfqdn(), *machine_addresses()]
    names += extra
    return list(dict.fromkeys(n.lower() for n in names if n))


def read_password(password_file: Path | None) -> str | None:
    if password_file is not None:
        try:
            lines = password_file.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ConfigError(f"--password-file {password_file}: cannot read it ({exc.strerror or exc})") from exc
        password = lines[0].strip() if lines else ""
    else:
        password = os.environ.get(PASSWORD_ENV, "")
    if password and len(password) < MIN_PASSWORD_LENGTH:
        raise ConfigError(f"the UI password must be at least {MIN_PASSWORD_LENGTH} characters long")
    return password or None


@cli_command
def ui_command(
    ctx: typer.Context,
    port: int = typer.Option(8501, "--port", min=1, max=65535, help="Port to serve on."),
    host: str = typer.Option(
        "127.0.0.1",
        "--host",
        help="Address to bind; 0.0.0.0 makes the page reachable from other machines (then a password is required).",
    ),
    password_file: Optional[Path] = typer.Option(
        None,
        "--password-file",
        help=f"File whose first line is the page's password (or set {PASSWORD_ENV}).",
    ),
    insecure_no_auth: bool = typer.Option(
        False, "--insecure-no-auth", help="Serve a non-loopback address without a password (anyone on the network)."
    ),
    allowed_host: list[str] = typer.Option(
        [],
        "--allowed-host",
        help="Another host name people use to reach the page (a DNS name, a proxy's name); '*' accepts any.",
    ),
) -> None:
    """Open the web search page for this store (Ctrl-C stops it)."""
    settings = ctx.obj.settings
    password = read_password(password_file)
    exposed = not is_loopback(host)
    if exposed and password is None and not insecure_no_auth:
        raise ConfigError(
            f"--host {host or '(all)'} makes the page and every indexed photo reachable from other machines: "
            f"set a password with {PASSWORD_ENV} or --password-file FILE, or pass --insecure-no-auth"
        )
    if importlib.util.find_spec("streamlit") is None:  # looked up, not imported: the server imports it
        raise ConfigError("the web UI needs streamlit: pip install 'clipsearch[ui]'")
    hosts = allowed_hosts(host, allowed_host)
    env = {**os.environ, "CLIPSEARCH_HOME": str(settings.home), ALLOWED_HOSTS_ENV: ",".join(hosts)}
    env.pop(PASSWORD_ENV, None)
    if password:
        env[PASSWORD_ENV] = password  # through the environment: never on a command line others can read
    urls = page_urls(host, port)
    typer.echo(f"clipsearch ui: serving {settings.home} at {' and '.join(urls)} (Ctrl-C to stop)")
    if exposed:
        login = (
            "a password is required"
            if password
            else "NO PASSWORD: anyone who can reach it can see and download your photos"
        )
        typer.echo(
            f"warning: the page is reachable from other machines; {login}. Plain HTTP: use it on a network you trust, "
            "or behind an HTTPS reverse proxy.",
            err=True,
        )
    code = _serve(streamlit_command(host, port, hosts), env)
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
