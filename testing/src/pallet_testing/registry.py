"""The real registry (Debian's docker-registry, CNCF distribution 2.8) for tests.

``RegistryServer.start`` runs it on a free 127.0.0.1 port with its own
temporary storage and deletes enabled, optionally with TLS and htpasswd basic
auth, and ``stop`` ends it. Nothing here talks to any other address.
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from pallet_testing.tls import ServerCertificate, make_server_certificate

REGISTRY_BINARY = "docker-registry"
START_TIMEOUT_SECONDS = 20.0


class RegistryUnavailable(RuntimeError):
    pass


def registry_binary() -> str | None:
    return shutil.which(REGISTRY_BINARY) or (REGISTRY_BINARY if Path("/usr/bin/docker-registry").exists() else None)


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _htpasswd_line(username: str, password: str) -> str:
    htpasswd = shutil.which("htpasswd")
    if htpasswd is None:
        raise RegistryUnavailable("htpasswd is not installed (Debian package: apache2-utils)")
    # distribution 2.8 accepts only bcrypt entries
    out = subprocess.run([htpasswd, "-Bbn", username, password], check=True, capture_output=True, text=True)
    return out.stdout.strip() + "\n"


@dataclass
class RegistryServer:
    """A running registry. ``host`` is what goes into references: ``127.0.0.1:PORT``."""

    root: Path
    port: int
    certificate: ServerCertificate | None = None
    username: str | None = None
    password: str | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    auth_config: dict[str, object] | None = None  # a whole config.yml "auth" section (e.g. token auth)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def tls(self) -> bool:
        return self.certificate is not None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    @property
    def cert_dir(self) -> Path | None:
        return self.certificate.cert_dir if self.certificate else None

    @property
    def creds(self) -> str | None:
        """``user:password`` as skopeo's ``--creds`` takes it."""
        return f"{self.username}:{self.password}" if self.username else None

    @property
    def log_path(self) -> Path:
        return self.root / "registry.log"

    @classmethod
    def start(
        cls, root: Path, *, tls: bool = False, username: str | None = None, password: str | None = None,
        auth_config: dict[str, object] | None = None,
    ) -> RegistryServer:
        binary = registry_binary()
        if binary is None:
            raise RegistryUnavailable("docker-registry is not installed (Debian package: docker-registry)")
        root.mkdir(parents=True, exist_ok=True)
        root.chmod(0o755)
        certificate = make_server_certificate(root / "tls") if tls else None
        last_error = ""
        for _ in range(5):  # a port found free can be taken before the registry binds it
            server = cls(root, free_loopback_port(), certificate, username, password, auth_config=auth_config)
            server._write_config()
            log = server.log_path.open("ab")
            server.process = subprocess.Popen(
                [binary, "serve", str(root / "config.yml")], stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
            log.close()
            try:
                server._wait_ready()
                return server
            except RegistryUnavailable as exc:
                last_error = str(exc)
                server.stop()
        raise RegistryUnavailable(last_error)

    def _write_config(self) -> None:
        storage = self.root / "storage"
        storage.mkdir(exist_ok=True)
        config: dict[str, object] = {
            "version": 0.1,
            "log": {"level": "info", "accesslog": {"disabled": False}},
            "storage": {"filesystem": {"rootdirectory": str(storage)}, "delete": {"enabled": True},
                        "maintenance": {"uploadpurging": {"enabled": False}}},
            "http": {"addr": self.host, "secret": "pallet-test-secret", "headers": {"X-Content-Type-Options": ["nosniff"]}},
        }
        if self.certificate is not None:
            config["http"]["tls"] = {"certificate": str(self.certificate.cert), "key": str(self.certificate.key)}  # type: ignore[index]
        if self.username is not None and self.password is not None:
            htpasswd = self.root / "htpasswd"
            htpasswd.write_text(_htpasswd_line(self.username, self.password))
            config["auth"] = {"htpasswd": {"realm": "pallet-test", "path": str(htpasswd)}}
        if self.auth_config is not None:
            config["auth"] = self.auth_config
        # JSON is YAML: no YAML library needed
        (self.root / "config.yml").write_text(json.dumps(config, indent=2))

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RegistryUnavailable(f"docker-registry exited ({self.process.returncode}): {self.log_tail()}")
            try:
                status, _, _ = self.request("GET", "/v2/", auth=False)
            except (OSError, urllib.error.URLError):
                time.sleep(0.05)
                continue
            if status in (200, 401):
                return
        raise RegistryUnavailable(f"docker-registry did not answer on {self.url} in {START_TIMEOUT_SECONDS}s: {self.log_tail()}")

    def log_tail(self, lines: int = 10) -> str:
        try:
            return " | ".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    # -- a minimal HTTP client, independent of pallet.oci, for fixtures and assertions

    def ssl_context(self) -> ssl.SSLContext | None:
        if self.certificate is None:
            return None
        return ssl.create_default_context(cafile=str(self.certificate.ca_cert))

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None, *, auth: bool = True
    ) -> tuple[int, dict[str, str], bytes]:
        """One request to the registry; returns status, headers (lower-case names) and body."""
        url = path if path.startswith("http") else self.url + path
        request = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
        if auth and self.username is not None:
            token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=30, context=self.ssl_context()) as response:
                return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
        except urllib.error.HTTPError as error:
            return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()
