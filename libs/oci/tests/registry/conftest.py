"""Helpers for the registry client's tests: options for the fixture registries, and small
loopback HTTP servers for what a real registry cannot be made to do (cut a download in
the middle, redirect to a storage host). Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import hashlib
import random
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pallet.oci.registry import RegistryOptions


@pytest.fixture
def isolated_env(tmp_path: Path) -> dict[str, str]:
    """An environment with an empty home: no auth file, certs.d or registries.conf of the host leaks in."""
    home = tmp_path / "home"
    home.mkdir()
    return {"HOME": str(home), "PATH": "/usr/bin:/bin"}


@pytest.fixture
def plain_options(isolated_env: dict[str, str], tmp_path: Path) -> RegistryOptions:
    """Options for the plain-HTTP fixture registry: TLS verification off (so http is allowed), no auth files."""
    return RegistryOptions(tls_verify=False, no_creds=True, env=isolated_env, home=tmp_path / "home",
                           resume_delay=0.0)


class PseudoRandomStream:
    """``size`` deterministic pseudo-random bytes, made as they are read (never held whole).

    Reads are short (at most 256 KiB), as from a pipe or a socket.
    """

    def __init__(self, size: int, seed: int = 1) -> None:
        self.remaining = size
        self._random = random.Random(seed)

    def read(self, count: int = -1) -> bytes:
        count = min(self.remaining if count < 0 else count, self.remaining, 256 * 1024)
        self.remaining -= count
        return self._random.randbytes(count)


def digest_of_stream(size: int, seed: int = 1) -> str:
    stream = PseudoRandomStream(size, seed)
    hasher = hashlib.sha256()
    while chunk := stream.read(1 << 20):
        hasher.update(chunk)
    return "sha256:" + hasher.hexdigest()


@dataclass
class Seen:
    """A request a loopback server received."""

    method: str
    path: str
    headers: dict[str, str]


class _QuietServer(ThreadingHTTPServer):
    """Clients that drop connections (TLS probes, cut downloads) are expected: no tracebacks."""

    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass


@dataclass
class LoopbackServer:
    """A threaded HTTP/1.1 server on 127.0.0.1 whose answers come from ``handle(handler, seen)``."""

    handle: Callable[[BaseHTTPRequestHandler, Seen], None]
    seen: list[Seen] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    def start(self) -> LoopbackServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

            def _any(self) -> None:
                entry = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()})
                owner.seen.append(entry)
                owner.handle(self, entry)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _any  # noqa: N815

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True).start()
        return self

    @property
    def host(self) -> str:
        assert self._server is not None
        return f"127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def send(handler: BaseHTTPRequestHandler, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
    handler.send_response(status)
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(body)


def send_cut(handler: BaseHTTPRequestHandler, body: bytes, sent: int) -> None:
    """Promise the whole ``body`` but send only ``sent`` bytes, then drop the connection."""
    handler.send_response(200)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body[:sent])
    handler.wfile.flush()
    handler.close_connection = True
    handler.connection.shutdown(socket.SHUT_RDWR)


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


@pytest.fixture
def loopback() -> Iterator[Callable[[Callable[[BaseHTTPRequestHandler, Seen], None]], LoopbackServer]]:
    """Start loopback servers; they stop at the end of the test."""
    started: list[LoopbackServer] = []

    def start(handle: Callable[[BaseHTTPRequestHandler, Seen], None]) -> LoopbackServer:
        server = LoopbackServer(handle).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@dataclass(frozen=True)
class Helpers:
    """The helpers above, for test modules (which cannot import conftest under --import-mode=importlib)."""

    PseudoRandomStream: type[PseudoRandomStream] = PseudoRandomStream
    digest_of_stream: Callable[..., str] = staticmethod(digest_of_stream)  # type: ignore[assignment]
    send: Callable[..., None] = staticmethod(send)  # type: ignore[assignment]
    send_cut: Callable[..., None] = staticmethod(send_cut)  # type: ignore[assignment]
    basic: Callable[[str, str], str] = staticmethod(basic)  # type: ignore[assignment]


@pytest.fixture
def helpers() -> Helpers:
    return Helpers()
