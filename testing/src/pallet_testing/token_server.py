"""A Bearer token server for distribution's token auth (docs/spec/auth/token.md), on 127.0.0.1.

``TokenServer.start(directory, users=...)`` makes an RSA key and a
self-signed certificate with the openssl command, and answers:

- ``GET /token?service=S&scope=...&account=U`` with optional Basic
  credentials (the classic token flow);
- ``POST /token`` with ``grant_type=refresh_token`` (the OAuth2 flow of
  identity tokens, see ``refresh_tokens``).

It issues RS256 JWTs whose header carries the certificate in ``x5c``; the
registry trusts them when its ``auth.token.rootcertbundle`` is ``cert_path``
and its ``issuer``/``service`` match (``registry_auth_config()`` gives the
whole ``auth`` section). Claims: iss, sub, aud, exp, nbf, iat, jti, access.

Policy: known users get every action they ask for; anonymous requests get
``pull`` on repositories under ``public/`` and nothing else; wrong
credentials get 401. Every request is recorded in ``requests`` so tests can
count token fetches. Signing uses ``openssl dgst -sha256 -sign``: no Python
crypto dependency. Nothing here talks to any address but 127.0.0.1.
"""

from __future__ import annotations

import base64
import json
import secrets
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

ANONYMOUS_PREFIX = "public/"


@dataclass(frozen=True)
class TokenRequest:
    """One request the server answered: who asked, for what, and whether it issued a token."""

    method: str
    account: str
    user: str | None  # the authenticated user, None for anonymous
    service: str
    scopes: tuple[str, ...]
    granted: bool


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _openssl(*args: str, cwd: Path, data: bytes | None = None) -> bytes:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("openssl is not installed (Debian package: openssl)")
    result = subprocess.run([openssl, *args], cwd=cwd, input=data, capture_output=True)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout


@dataclass
class TokenServer:
    """A running token server; ``realm`` is what the registry's challenge names."""

    directory: Path
    users: dict[str, str]
    service: str = "pallet-test-registry"
    issuer: str = "pallet-test-token-issuer"
    expires_in: int = 300
    refresh_tokens: dict[str, str] = field(default_factory=dict)  # identity token -> user
    requests: list[TokenRequest] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def start(cls, directory: Path, users: dict[str, str], **options: object) -> TokenServer:
        directory.mkdir(parents=True, exist_ok=True)
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=Pallet token issuer",
                 "-keyout", "token.key", "-out", "token.crt", cwd=directory)
        server = cls(directory, dict(users), **options)  # type: ignore[arg-type]
        server._server = _QuietServer(("127.0.0.1", 0), _handler_for(server))
        threading.Thread(target=server._server.serve_forever, args=(0.05,), name="token-server", daemon=True).start()
        return server

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    @property
    def cert_path(self) -> Path:
        return self.directory / "token.crt"

    def registry_auth_config(self) -> dict[str, object]:
        """The ``auth`` section of a distribution 2.8 config.yml trusting this server."""
        return {"token": {"realm": self.realm, "service": self.service, "issuer": self.issuer,
                          "rootcertbundle": str(self.cert_path)}}

    def token_requests(self) -> list[TokenRequest]:
        with self._lock:
            return list(self.requests)

    # --- issuing --------------------------------------------------------------------------

    def grant(self, user: str | None, scopes: list[str]) -> list[dict[str, object]]:
        """The access claim for ``user`` (None: anonymous) asking for ``scopes``."""
        access: list[dict[str, object]] = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            if not kind or not name:
                continue
            wanted = [action for action in actions.split(",") if action]
            if user is None:
                wanted = [a for a in wanted if a == "pull"] if name.startswith(ANONYMOUS_PREFIX) else []
            if wanted:
                access.append({"type": kind, "name": name, "actions": wanted})
        return access

    def issue(self, user: str | None, scopes: list[str]) -> str:
        """A signed JWT for ``user`` granting what ``grant`` allows."""
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self._certificate_der_base64()]}
        claims = {"iss": self.issuer, "sub": user or "", "aud": self.service, "exp": now + self.expires_in,
                  "nbf": now - 5, "iat": now, "jti": secrets.token_hex(16), "access": self.grant(user, scopes)}
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        signature = _openssl("dgst", "-sha256", "-sign", "token.key", cwd=self.directory, data=signing_input.encode())
        return f"{signing_input}.{_b64url(signature)}"

    def _certificate_der_base64(self) -> str:
        lines = self.cert_path.read_text().splitlines()
        return "".join(line for line in lines if line and not line.startswith("-----"))

    def record(self, entry: TokenRequest) -> None:
        with self._lock:
            self.requests.append(entry)


class _QuietServer(ThreadingHTTPServer):
    """Clients that drop connections (a TLS probe of this plain server) are expected: no tracebacks."""

    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass


def _handler_for(server: TokenServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - silence the default logging
            pass

        def do_GET(self) -> None:  # noqa: N802
            query = parse_qs(urlsplit(self.path).query)
            user, ok = self._basic_user()
            self._answer("GET", query, user, ok)

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            form = parse_qs(self.rfile.read(length).decode())
            refresh = (form.get("refresh_token") or [""])[0]
            user = server.refresh_tokens.get(refresh)
            ok = (form.get("grant_type") or [""])[0] == "refresh_token" and user is not None
            self._answer("POST", form, user, ok)

        def _basic_user(self) -> tuple[str | None, bool]:
            header = self.headers.get("Authorization", "")
            if not header.startswith("Basic "):
                return None, True
            try:
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                return None, False
            return user, server.users.get(user) == password

        def _answer(self, method: str, query: dict[str, list[str]], user: str | None, ok: bool) -> None:
            scopes = [scope for value in query.get("scope", []) for scope in value.split()]
            service = (query.get("service") or [""])[0]
            account = (query.get("account") or [""])[0]
            server.record(TokenRequest(method, account, user if ok else None, service, tuple(scopes), ok))
            if not ok:
                self._send(401, {"errors": [{"code": "UNAUTHORIZED", "message": "invalid credentials"}]})
                return
            token = server.issue(user, scopes)
            issued = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            self._send(200, {"token": token, "access_token": token, "expires_in": server.expires_in,
                             "issued_at": issued})

        def _send(self, status: int, document: dict[str, object]) -> None:
            body = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler
