"""The page's front door (ASGI middleware in front of Streamlit, installed by server.py).

- Host check: requests (HTTP and the websocket) whose Host header names another machine are
  refused, so a foreign web page cannot reach a server on this machine through DNS rebinding.
- Password: with CLIPSEARCH_UI_PASSWORD set, every request except the health check needs the
  session cookie that the login form hands out; the websocket, the page's media (thumbnails,
  originals) and Streamlit's own endpoints included.

Settings come from the environment `clipsearch ui` starts the server with:
CLIPSEARCH_UI_PASSWORD (optional) and CLIPSEARCH_UI_ALLOWED_HOSTS (comma-separated; empty or *: any).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import os
from urllib.parse import quote, urlparse

from starlette.requests import HTTPConnection, Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

LOGIN_PATH = "/_clipsearch/login"
COOKIE = "clipsearch_session"
PASSWORD_ENV = "CLIPSEARCH_UI_PASSWORD"
ALLOWED_HOSTS_ENV = "CLIPSEARCH_UI_ALLOWED_HOSTS"
OPEN_PATHS = frozenset({"/_stcore/health"})  # liveness only: says nothing about the store
WRONG_PASSWORD_DELAY_S = 1.0  # slows guessing down to one try per second per connection

LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>clipsearch: sign in</title>
<style>body{{font-family:system-ui,sans-serif;display:grid;place-items:center;min-height:90vh;margin:0}}
form{{display:grid;gap:.75rem;width:min(20rem,90vw)}}input,button{{font-size:1rem;padding:.5rem}}
p{{margin:0;color:#b00}}</style></head>
<body><form method="post" action="{action}"><h1>clipsearch</h1>{error}
<label for="password">Password</label>
<input id="password" type="password" name="password" autocomplete="current-password" autofocus required>
<button type="submit">Sign in</button></form></body></html>
"""


def host_name(host_header: str | None) -> str | None:
    """The name in a Host header (port dropped, lower case), or None when it is malformed."""
    if not host_header:
        return None
    try:
        parsed = urlparse(f"//{host_header}")
        _ = parsed.port  # validates the port
    except ValueError:
        return None
    if not parsed.hostname or parsed.username or parsed.password or parsed.path:
        return None
    return parsed.hostname.rstrip(".").lower()


def safe_next(target: str) -> str:
    """Only a path on this server (never //elsewhere, a full URL, or one a browser would turn into
    either by dropping whitespace or reading a backslash as a slash) is a place to return to."""
    plain = target.isprintable() and not any(c.isspace() or c == "\\" for c in target)
    return target if plain and target.startswith("/") and not target.startswith("//") else "/"


class Gate:
    def __init__(self, app: ASGIApp):
        self.app = app
        password = os.environ.get(PASSWORD_ENV, "")
        self.password = password.encode() if password else None
        # The cookie proves the password without holding it; changing the password logs everyone out.
        self.token = hmac.new(self.password, b"clipsearch ui session", hashlib.sha256).hexdigest() if password else ""
        hosts = os.environ.get(ALLOWED_HOSTS_ENV, "")
        self.allowed_hosts = {h.strip().lower().strip("[]") for h in hosts.split(",") if h.strip()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        conn = HTTPConnection(scope)
        if (
            self.allowed_hosts
            and "*" not in self.allowed_hosts
            and host_name(conn.headers.get("host")) not in self.allowed_hosts
        ):
            return await self._refuse(scope, receive, send, 403, "unknown host name")
        if self.password is None or scope["path"] in OPEN_PATHS or self._signed_in(conn):
            return await self.app(scope, receive, send)
        if scope["type"] == "http" and scope["path"] == LOGIN_PATH:
            return await self._login(scope, receive, send)
        if (
            scope["type"] == "http"
            and scope["method"] == "GET"
            and not scope["path"].startswith(("/_stcore", "/media"))
        ):
            back = scope["path"] + (f"?{scope['query_string'].decode('latin-1')}" if scope["query_string"] else "")
            return await RedirectResponse(f"{LOGIN_PATH}?next={quote(back)}", 303)(scope, receive, send)
        return await self._refuse(scope, receive, send, 401, "sign in first")

    def _signed_in(self, conn: HTTPConnection) -> bool:
        return hmac.compare_digest(conn.cookies.get(COOKIE, ""), self.token)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, status: int, reason: str) -> None:
        if scope["type"] == "websocket":
            # Closing before accepting makes the server answer the handshake with 403.
            await send({"type": "websocket.close", "code": 1008, "reason": reason})
            return
        await PlainTextResponse(reason, status)(scope, receive, send)

    async def _login(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        target = safe_next(request.query_params.get("next", "/"))
        error = ""
        if request.method == "POST":
            form = await request.form()
            given = str(form.get("password", "")).encode()
            if self.password is not None and hmac.compare_digest(given, self.password):
                response: Response = RedirectResponse(target, 303)
                response.set_cookie(COOKIE, self.token, httponly=True, samesite="strict")
                return await response(scope, receive, send)
            await asyncio.sleep(WRONG_PASSWORD_DELAY_S)
            error = "<p>Wrong password.</p>"
        action = html.escape(f"{LOGIN_PATH}?next={quote(target)}")
        page = LOGIN_PAGE.format(action=action, error=error)
        await HTMLResponse(page, 401 if error else 200)(scope, receive, send)
