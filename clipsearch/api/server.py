"""`clipsearch serve`: the API under uvicorn, with the server record kept in the store.

The listening socket is bound before the record is written, so a client that reads the record
can connect at once (connections queue until uvicorn accepts them); the record is removed on a
clean exit, and a killed server leaves a stale one that readers drop.
"""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass

import uvicorn

from clipsearch.api.app import create_app
from clipsearch.api.engine import ApiEngine, Limits
from clipsearch.api.record import ServerRecord, catalog_key, read_record, remove_record, write_record
from clipsearch.api.security import is_loopback
from clipsearch.errors import ConfigError, StoreError
from clipsearch.store import Store

MIN_TOKEN_LENGTH = 16


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8700
    token: str | None = None
    allowed_hosts: tuple[str, ...] = ()
    limits: Limits = Limits()
    access_log: bool = False


def check_options(options: ServeOptions) -> None:
    if options.token is not None and len(options.token) < MIN_TOKEN_LENGTH:
        raise ConfigError(
            f"the token is too short: use at least {MIN_TOKEN_LENGTH} characters "
            "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    if not is_loopback(options.host) and options.token is None:
        raise ConfigError(
            f"serving on {options.host} makes the API reachable from other machines, so it needs a token: "
            "set CLIPSEARCH_API_TOKEN (or pass --token); clients then send 'Authorization: Bearer TOKEN'"
        )


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named explicitly: asyncio turns Nagle off only on sockets whose proto says TCP, and a
    # socket made with proto 0 (the default) kept it on. uvicorn writes a response's head and body
    # separately, so every keep-alive response then waited for the client's delayed ACK (40 ms on Linux).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # accepted sockets inherit it
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; pick another --port or --host"
        ) from exc
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def local_url(host: str, port: int) -> str:
    """How a client on this machine reaches a server bound to host:port."""
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(store: Store, options: ServeOptions, say: Callable[[str], None]) -> None:
    """Load the store's model and index, listen, and serve until interrupted."""
    check_options(options)
    home = store.settings.home
    running = read_record(home)
    if running is not None and running.pid != os.getpid():
        raise StoreError(f"a server already runs for this store at {running.url} (pid {running.pid}); stop it first")
    engine = ApiEngine(store, options.limits)
    say(f"clipsearch serve: loading the model and index of {home}")
    waiting = engine.try_open()
    if waiting:
        say(f"note: {waiting}; searches answer 503 until then")
    sock = bind(options.host, options.port)
    port = sock.getsockname()[1]
    app = create_app(engine, options.token, options.allowed_hosts + ((options.host,) if options.host else ()))
    config = uvicorn.Config(
        app,
        log_level="info" if options.access_log else "warning",
        access_log=options.access_log,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=5,
    )
    url = local_url(options.host, port)
    key = catalog_key(store.settings.catalog_url)
    record = ServerRecord(url=url, pid=os.getpid(), token=options.token, catalog=key, host=socket.gethostname())
    write_record(home, record)
    say(f"clipsearch serve: serving {home} at {url} (API docs at {url}/docs; Ctrl-C to stop)")
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again: handled here, so the
    # process ends normally and the record is removed (the default handler would kill it first).
    previous = signal.signal(signal.SIGTERM, _exit_cleanly)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        signal.signal(signal.SIGTERM, previous)
        remove_record(home, os.getpid())
        sock.close()


def _exit_cleanly(_signum, _frame) -> None:
    raise SystemExit(0)
