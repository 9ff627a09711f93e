"""A real `clipsearch serve` in a subprocess, on a free port, for the API tests."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from conftest import MODEL, make_photos, ok, run_cli

START_TIMEOUT_S = 90


@dataclass
class Server:
    proc: subprocess.Popen
    home: Path
    url: str
    token: str | None
    log: Path

    def client(self, token: str | None = "auto", **kwargs) -> httpx.Client:
        token = self.token if token == "auto" else token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        headers.update(kwargs.pop("headers", {}))
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, **kwargs)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def indexed_home(root: Path, photos: int) -> Path:
    """A SQLite store under root/home holding `photos` generated pictures, indexed by the real CLI."""
    make_photos(root / "photos", photos)
    home = root / "home"
    ok(run_cli("index", root / "photos", "--model", MODEL, "--json", env={"CLIPSEARCH_HOME": str(home)}))
    return home


def start(home: Path, *args: str, env: dict | None = None, expect_record: bool = True) -> Server:
    """Start `clipsearch serve --port 0 ARGS` (the OS picks a free port) and wait until it answers."""
    log = home.parent / f"serve-{time.monotonic_ns()}.log"
    command = [sys.executable, "-m", "clipsearch", "--home", str(home), "serve", "--port", "0", *args]
    with open(log, "wb") as out:
        # Unbuffered: a test reads the access log while the server runs.
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    record = home / "server.json"
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"clipsearch serve exited with {proc.returncode}:\n{log.read_text()}")
        try:
            data = json.loads(record.read_text())
        except (OSError, ValueError):
            time.sleep(0.05)
            continue
        if data.get("pid") == proc.pid:
            return Server(proc, home, data["url"], data.get("token"), log)
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"clipsearch serve did not start in {START_TIMEOUT_S} s:\n{log.read_text()}")


def run_serve(home: Path, *args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """`clipsearch serve ARGS` expected to exit by itself (refused options)."""
    command = [sys.executable, "-m", "clipsearch", "--home", str(home), "serve", "--port", "0", *args]
    return subprocess.run(command, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout)


def raw_get(url: str, path: str, headers: dict | None = None) -> tuple[int, bytes]:
    """A GET with the path and headers exactly as given (no client-side normalisation)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
        for name, value in {"Host": parts.netloc, **(headers or {})}.items():
            conn.putheader(name, value)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()
