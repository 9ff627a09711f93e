"""The checks every request passes before any route sees it (plain ASGI middleware).

- Host header: an IP literal, `localhost`, or a name allowed with --allow-host. DNS rebinding
  needs a host *name* that resolves to this machine, so a page on another site cannot reach a
  loopback server from a visitor's browser.
- Bearer token: when the server has one (always on a non-loopback address), every request
  without `Authorization: Bearer TOKEN` is refused with 401, /healthz and /docs included.
- Body size: a request body over the cap is refused with 413 before it is read into memory,
  whether it announces its length or streams it chunked.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Iterable

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


class BodyTooLarge(Exception):
    pass


def host_name(header: str) -> str:
    """The host part of a Host header: `[::1]:8700` -> `::1`, `Example.org:80` -> `example.org`."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Guard:
    """ASGI middleware: Host check, bearer token, body size cap."""

    def __init__(self, app, token: str | None, allowed_hosts: Iterable[str] = (), max_body: int = 20 * 1024 * 1024):
        self.app = app
        self.token = token.encode() if token else None
        self.allowed = LOOPBACK_NAMES | {h.strip().lower() for h in allowed_hosts if h}
        self.max_body = max_body

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        host = host_name(headers.get(b"host", b"").decode("latin-1"))
        if not host or not (_is_ip(host) or host in self.allowed):
            return await _refuse(
                send,
                400,
                "this server does not answer for that Host header; "
                "start it with --allow-host NAME to serve requests addressed to NAME",
            )
        if self.token is not None and not self._authorised(headers.get(b"authorization", b"")):
            return await _refuse(
                send,
                401,
                "missing or wrong token: send the header 'Authorization: Bearer TOKEN'",
                [(b"www-authenticate", b'Bearer realm="clipsearch"')],
            )
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            return await _refuse(send, 413, f"the request body is over the {self.max_body:,}-byte limit")
        return await self._capped(scope, receive, send)

    def _authorised(self, header: bytes) -> bool:
        scheme, _, value = header.partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(value.strip(), self.token)

    async def _capped(self, scope, receive, send):
        seen = 0
        started = False

        async def counting_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise BodyTooLarge()
            return message

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if started:
                raise
            await _refuse(send, 413, f"the request body is over the {self.max_body:,}-byte limit")


async def _refuse(send, status: int, message: str, extra: list[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
