"""A loopback HTTP proxy in front of a fixture registry that misbehaves when told to.

``FaultyProxy.start(upstream)`` listens on a free 127.0.0.1 port and forwards
every request to ``upstream`` (a ``RegistryServer``, plain or TLS) with the
standard library only (``ThreadingHTTPServer`` + ``http.client``). The
``Host`` header is passed on as the client sent it, so the Locations of
upload sessions that the registry hands out point at the proxy, and uploads
go through it too. References use ``proxy.host`` where they would use the
registry's.

Faults are added per test; each applies to the requests it matches (method
and path), to the first ``times`` of them or to all (``times=None``), and
counts its ``hits`` so a test can check that it really fired:

- ``corrupt_blob``: a blob's body with one byte changed (same length)
- ``truncate_blob``: ``Content-Length`` as the registry sent it, fewer bytes,
  then the connection is closed (FIN)
- ``cut_blob``: part of the body, then the connection is reset (RST)
- ``mismatch_manifest``: a manifest GET answered with other bytes than the
  registry's (same ``Docker-Content-Digest`` header), whose digest is not
  the one asked for
- ``fail_upload``: the ``PATCH`` or the final ``PUT`` of a blob upload is
  answered with an error status (500 unless told), its body read and dropped
  and nothing forwarded

Requests the faults do not match are passed through unchanged. ``requests``
lists what went by (method, path, headers, status and fault), for assertions.
"""

from __future__ import annotations

import http.client
import re
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pallet_testing.registry import RegistryServer

PIECE = 64 * 1024
_HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
    "te", "trailer", "transfer-encoding", "upgrade", "expect",
})
_ANY_BLOB = r"sha256:[0-9a-f]{64}"
_MAX_BUFFERED = 16 * 1024 * 1024  # bodies without Content-Length, and replaced manifests, are read whole


@dataclass
class Fault:
    """One kind of misbehaviour on the requests matching ``method`` and ``path`` (a regex, whole path).

    ``kind`` is corrupt, truncate, cut, replace or status. ``at`` is where in a
    body to corrupt or stop: a fraction of it (below 1) or a byte offset.
    ``transform`` makes the replacement body of ``replace``; ``status`` is
    the status ``status`` answers. ``times`` None applies to every match.
    """

    kind: str
    method: str
    path: str
    times: int | None = None
    at: float = 0.5
    status: int = 500
    transform: Callable[[bytes], bytes] | None = None
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        return method == self.method and re.fullmatch(self.path, path.split("?", 1)[0]) is not None

    def position(self, length: int) -> int:
        """The byte offset of the fault within a body of ``length`` bytes (always inside it)."""
        offset = int(length * self.at) if self.at < 1 else int(self.at)
        return max(0, min(offset, length - 1))


@dataclass(frozen=True)
class Seen:
    """A request that went through: its method, path, headers (lower-case names) and what came of it."""

    method: str
    path: str
    headers: dict[str, str]
    outcome: str  # the upstream's status, and the fault applied if any


class FaultyProxy:
    """The proxy; see the module docstring. Stop it when done."""

    def __init__(self, upstream: RegistryServer) -> None:
        self.upstream = upstream
        self.faults: list[Fault] = []
        self.requests: list[Seen] = []
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.proxy = self
        self._thread = threading.Thread(target=self._server.serve_forever, name="faulty-proxy", daemon=True)

    @classmethod
    def start(cls, upstream: RegistryServer) -> FaultyProxy:
        proxy = cls(upstream)
        proxy._thread.start()
        return proxy

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def host(self) -> str:
        """What goes into references instead of the registry's host: ``127.0.0.1:PORT``."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    # --- faults -------------------------------------------------------------------------

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()

    def corrupt_blob(self, digest: str | None = None, *, times: int | None = None, at: float = 0.5) -> Fault:
        return self.add(Fault("corrupt", "GET", _blob_path(digest), times, at))

    def truncate_blob(self, digest: str | None = None, *, times: int | None = None, at: float = 0.5) -> Fault:
        return self.add(Fault("truncate", "GET", _blob_path(digest), times, at))

    def cut_blob(self, digest: str | None = None, *, times: int | None = None, at: float = 0.5) -> Fault:
        return self.add(Fault("cut", "GET", _blob_path(digest), times, at))

    def mismatch_manifest(
        self, reference: str | None = None, *, times: int | None = None,
        transform: Callable[[bytes], bytes] | None = None,
    ) -> Fault:
        """By default the registry's bytes with a newline added: still a valid manifest, another digest."""
        path = r"/v2/.+/manifests/" + (re.escape(reference) if reference else r"[^/]+")
        return self.add(Fault("replace", "GET", path, times, transform=transform or (lambda body: body + b"\n")))

    def fail_upload(self, step: str, *, times: int | None = None, status: int = 500) -> Fault:
        """``step`` PATCH (a chunk of an upload) or PUT (its final request, with or without data)."""
        if step not in ("PATCH", "PUT"):
            raise ValueError(f"step must be PATCH or PUT, not {step!r}")
        return self.add(Fault("status", step, r"/v2/.+/blobs/uploads/[^/]+", times, status=status))

    def _take(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.matches(method, path) and (fault.times is None or fault.hits < fault.times):
                    fault.hits += 1
                    return fault
        return None

    def _record(self, handler: BaseHTTPRequestHandler, outcome: str) -> None:
        headers = {name.lower(): value for name, value in handler.headers.items()}
        with self._lock:
            self.requests.append(Seen(handler.command, handler.path, headers, outcome))

    def _connect(self) -> http.client.HTTPConnection:
        upstream = self.upstream
        if upstream.tls:
            return http.client.HTTPSConnection("127.0.0.1", upstream.port, timeout=60, context=upstream.ssl_context())
        return http.client.HTTPConnection("127.0.0.1", upstream.port, timeout=60)


def _blob_path(digest: str | None) -> str:
    return r"/v2/.+/blobs/" + (re.escape(digest) if digest else _ANY_BLOB)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    proxy: FaultyProxy

    def handle_error(self, request: object, client_address: object) -> None:
        """Clients hanging up (and TLS hellos on this plain port) are expected here: no traceback."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's signature
        pass

    def do_GET(self) -> None:
        self._handle()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    # --- the request ------------------------------------------------------------------

    def _handle(self) -> None:
        proxy = self.server.proxy
        fault = proxy._take(self.command, self.path)
        if fault is not None and fault.kind == "status":
            for _ in self._request_body():
                pass
            proxy._record(self, f"fault {fault.kind} {fault.status}")
            body = b'{"errors":[{"code":"UNKNOWN","message":"unknown error","detail":"injected by the faulty proxy"}]}'
            self._send_head(fault.status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            self.wfile.write(body)
            return
        connection = proxy._connect()
        try:
            self._forward_request(connection)
            response = connection.getresponse()
            proxy._record(self, f"{response.status}" + (f" fault {fault.kind}" if fault else ""))
            self._forward_response(response, fault)
        finally:
            connection.close()

    def _request_body(self) -> Iterator[bytes]:
        """The request's body in pieces, whichever its framing (Content-Length or chunked)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return
                left = size
                while left:
                    piece = self.rfile.read(min(left, PIECE))
                    if not piece:
                        raise ConnectionError("the client closed the connection inside a chunk")
                    left -= len(piece)
                    yield piece
                self.rfile.readline()
        left = int(self.headers.get("Content-Length") or 0)
        while left:
            piece = self.rfile.read(min(left, PIECE))
            if not piece:
                raise ConnectionError("the client closed the connection inside the body")
            left -= len(piece)
            yield piece

    def _forward_request(self, connection: http.client.HTTPConnection) -> None:
        connection.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        for name, value in self.headers.items():
            if name.lower() not in _HOP_BY_HOP:
                connection.putheader(name, value)
        if chunked:
            connection.putheader("Transfer-Encoding", "chunked")
        connection.endheaders()
        for piece in self._request_body():
            connection.send(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
        if chunked:
            connection.send(b"0\r\n\r\n")

    # --- the response -----------------------------------------------------------------

    def _forward_response(self, response: http.client.HTTPResponse, fault: Fault | None) -> None:
        headers = [(name, self._rewrite(name, value)) for name, value in response.getheaders()
                   if name.lower() not in _HOP_BY_HOP]
        declared = response.getheader("Content-Length")
        if self.command == "HEAD" or response.status in (204, 304) or response.status < 200:
            self._send_head(response.status, headers)
            return
        if declared is None or (fault is not None and fault.kind == "replace"):
            body = response.read(_MAX_BUFFERED + 1)
            if len(body) > _MAX_BUFFERED:
                raise RuntimeError("the faulty proxy buffers at most 16 MiB")
            if fault is not None and fault.kind == "replace":
                assert fault.transform is not None
                body = fault.transform(body)
            headers = [(name, value) for name, value in headers if name.lower() != "content-length"]
            self._send_head(response.status, [*headers, ("Content-Length", str(len(body)))])
            self.wfile.write(body)
            return
        self._send_head(response.status, headers)
        self._stream(response, int(declared), fault)

    def _stream(self, response: http.client.HTTPResponse, length: int, fault: Fault | None) -> None:
        stop = fault.position(length) if fault is not None and fault.kind in ("truncate", "cut") else length
        flip = fault.position(length) if fault is not None and fault.kind == "corrupt" else -1
        sent = 0
        while sent < stop:
            piece = response.read(min(PIECE, stop - sent))
            if not piece:
                break
            if sent <= flip < sent + len(piece):
                index = flip - sent
                piece = piece[:index] + bytes([piece[index] ^ 0xFF]) + piece[index + 1:]
            self.wfile.write(piece)
            sent += len(piece)
        if fault is not None and fault.kind in ("truncate", "cut"):
            self._hang_up(reset=fault.kind == "cut")

    def _hang_up(self, *, reset: bool) -> None:
        """End the connection mid-body: a FIN after what was sent, or a RST (SO_LINGER 0)."""
        self.wfile.flush()
        self.close_connection = True
        if reset:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            self.connection.shutdown(socket.SHUT_WR)

    def _send_head(self, status: int, headers: list[tuple[str, str]]) -> None:
        self.send_response_only(status)
        for name, value in headers:
            if name.lower() not in ("date", "server"):
                self.send_header(name, value)
        self.send_header("Date", self.date_time_string())
        self.end_headers()

    def _rewrite(self, name: str, value: str) -> str:
        """Absolute Locations to the upstream point at the proxy instead."""
        if name.lower() != "location":
            return value
        upstream = self.server.proxy.upstream
        for prefix in (f"{upstream.url}/", f"https://{self.server.proxy.host}/"):
            if value.startswith(prefix):
                return f"{self.server.proxy.url}/{value[len(prefix):]}"
        return value
