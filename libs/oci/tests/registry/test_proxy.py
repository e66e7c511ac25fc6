"""Proxies from the environment, with Go's rules, and a registry reached through one."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from pallet.oci.registry.proxy import proxy_for
from pallet_testing.push import push_image
from pallet_testing.registry import RegistryServer

ENV = {"HTTPS_PROXY": "proxy.example:3128", "http_proxy": "http://plain.example:8080",
       "NO_PROXY": "internal.example,.corp.example,10.0.0.0/8,registry.test:5000"}


@pytest.mark.parametrize(("scheme", "host", "expected"), [
    ("https", "quay.io", "http://proxy.example:3128"),
    ("http", "quay.io", "http://plain.example:8080"),
    ("https", "localhost:5000", None),
    ("https", "127.0.0.1:5000", None),
    ("https", "[::1]:5000", None),
    ("https", "internal.example", None),
    ("https", "a.internal.example", None),
    ("https", "x.corp.example:443", None),
    ("https", "corp.example", None),
    ("https", "10.1.2.3:5000", None),
    ("https", "registry.test:5000", None),
    ("https", "registry.test:6000", "http://proxy.example:3128"),
])
def test_go_rules(scheme: str, host: str, expected: str | None) -> None:
    assert proxy_for(scheme, host, ENV) == expected


def test_no_proxy_star_and_no_variables() -> None:
    assert proxy_for("https", "quay.io", {**ENV, "NO_PROXY": "*"}) is None
    assert proxy_for("https", "quay.io", {}) is None


class _Proxy(BaseHTTPRequestHandler):
    """A forward proxy for tests: absolute-form requests and CONNECT, to 127.0.0.1 whatever the name."""

    seen: list[str]

    def log_message(self, *args: object) -> None:
        pass

    def do_CONNECT(self) -> None:  # noqa: N802
        self.seen.append(f"CONNECT {self.path}")
        port = int(self.path.rsplit(":", 1)[1])
        upstream = socket.create_connection(("127.0.0.1", port))
        self.send_response(200)
        self.end_headers()
        threading.Thread(target=_pipe, args=(upstream, self.connection), daemon=True).start()
        _pipe(self.connection, upstream)

    def _forward(self) -> None:
        url = urlsplit(self.path)
        self.seen.append(f"{self.command} {url.hostname}{url.path}")
        connection = http.client.HTTPConnection("127.0.0.1", url.port, timeout=30)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("proxy-connection", "connection")}
        connection.request(self.command, url.path + (f"?{url.query}" if url.query else ""), body, headers)
        answer = connection.getresponse()
        data = answer.read()
        self.send_response(answer.status)
        for key, value in answer.getheaders():
            if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _forward  # noqa: N815


def _pipe(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        for end in (source, target):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@pytest.fixture
def proxy() -> Iterator[tuple[str, list[str]]]:
    seen: list[str] = []
    handler = type("Handler", (_Proxy,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()


def test_inspect_through_the_environments_proxy(registry: RegistryServer, test_images, proxy, tmp_path: Path) -> None:
    push_image(registry, "proxied/busybox", test_images.single_layer, "v1")
    proxy_url, seen = proxy
    name = f"registry.test:{registry.port}"  # resolved by the proxy only: the client never looks it up
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "HTTP_PROXY": proxy_url, "HTTPS_PROXY": proxy_url}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "pallet-transfer"), "inspect", "--tls-verify=false", f"docker://{name}/proxied/busybox:v1"],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["Digest"] == test_images.single_layer.digest
    assert "GET registry.test/v2/proxied/busybox/manifests/v1" in seen
