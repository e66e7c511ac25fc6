"""One registry host over one ``httpx.Client``: endpoint detection, auth, errors, retries.

``RegistrySession`` is the plumbing under ``RegistryClient``:

- the API host: ``docker.io`` (and ``index.docker.io``) is served by
  ``registry-1.docker.io``; certs.d, registries.conf and auth files still use
  the name as written;
- TLS: verified unless ``tls_verify=False`` or registries.conf marks the host
  insecure; the ssl context trusts the system CAs plus the cert directory's;
- the scheme is found once, on first use, as containers/image does: ``GET
  /v2/`` over https, and over http only when TLS verification is off; the
  ping's WWW-Authenticate challenge primes the auth flow, so that even
  requests whose streamed bodies cannot be sent twice carry credentials;
- every failure leaves as a pallet.oci error (``errors_map``); idempotent
  requests (GET, HEAD) are retried on temporary errors when
  ``retry_times`` asks for it.

Thread safety: the session may be used from several threads at once
(httpx.Client is thread-safe; detection and the token cache take locks).
"""

from __future__ import annotations

import os
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import httpx

from pallet.oci.errors import OciError, RegistryError, RegistryUnreachable
from pallet.oci.registry.auth import RegistryAuth
from pallet.oci.registry.credentials import Credentials, lookup_credentials
from pallet.oci.registry.endpoints import check_host_allowed
from pallet.oci.registry.errors_map import error_from_response, transport_errors, with_action
from pallet.oci.registry.options import RegistryOptions
from pallet.oci.registry.proxy import proxy_for
from pallet.oci.registry.retry import with_retries
from pallet.oci.registry.tlsconfig import cert_dir_for_host, make_ssl_context

DOCKER_HUB_NAMES = ("docker.io", "index.docker.io")
DOCKER_HUB_API_HOST = "registry-1.docker.io"
#: The most of an ordinary JSON answer (tag list, catalog, referrers) that is read.
MAX_JSON_ANSWER = 4 * 1024 * 1024

T = TypeVar("T")


@dataclass(frozen=True)
class Answer:
    """A registry's complete, successful answer: status, headers, body (read, capped) and URL."""

    status: int
    headers: httpx.Headers
    body: bytes
    url: httpx.URL


class RegistrySession:
    """Requests to one registry host (see the module docstring). Close it when done."""

    def __init__(
        self,
        host: str,
        options: RegistryOptions | None = None,
        *,
        credentials_name: str | None = None,
        insecure: bool = False,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.options = options or RegistryOptions()
        self.host = host
        self.api_host = DOCKER_HUB_API_HOST if host in DOCKER_HUB_NAMES else host
        insecure = check_host_allowed(host, self.options.registries_conf) or insecure
        self.tls_verify = self.options.tls_verify if self.options.tls_verify is not None else not insecure
        self._credentials = self._find_credentials(credentials_name or host)
        cert_dir = self.options.cert_dir or cert_dir_for_host(host, env=self.options.env, home=self.options.home)
        timeout = httpx.Timeout(self.options.read_timeout, connect=self.options.connect_timeout)
        ssl_context = make_ssl_context(verify=self.tls_verify, cert_dir=cert_dir)
        self._client = httpx.Client(
            verify=ssl_context,
            mounts=None if transport is not None else _proxy_mounts(self.api_host, ssl_context, self.options.env),
            timeout=timeout,
            headers={
                "User-Agent": self.options.user_agent,
                "Docker-Distribution-API-Version": "registry/2.0",
                "Accept-Encoding": "identity",  # bytes as stored: blobs are hashed, bodies capped by their size
            },
            transport=transport,
            trust_env=False,
        )
        self._detect_lock = threading.Lock()
        self._base: httpx.URL | None = None
        self._auth: RegistryAuth | None = None

    def _find_credentials(self, name: str) -> Credentials | None:
        options = self.options
        if options.credentials is not None:
            return options.credentials
        if options.no_creds or options.registry_token:
            return None
        return lookup_credentials(name, auth_file=options.auth_file, env=options.env, home=options.home)

    def close(self) -> None:
        self._client.close()

    # --- the endpoint -----------------------------------------------------------------------

    def base_url(self) -> httpx.URL:
        """``scheme://api-host``, found by pinging on first use (errors are not cached)."""
        with self._detect_lock:
            if self._base is None:
                self._base = self._detect()
            return self._base

    @property
    def auth(self) -> RegistryAuth:
        self.base_url()
        assert self._auth is not None
        return self._auth

    def _detect(self) -> httpx.URL:
        action = f"pinging container registry {self.host}"
        schemes = ["https"] if self.tls_verify else ["https", "http"]
        first_error: OciError | None = None
        for scheme in schemes:
            base = httpx.URL(f"{scheme}://{self.api_host}")
            try:
                response = self._ping(base, action)
            except (RegistryError, RegistryUnreachable) as error:
                first_error = first_error or error
                continue
            auth = RegistryAuth(base, self._credentials, registry_token=self.options.registry_token)
            auth.learn(response)
            self._auth = auth
            return base
        assert first_error is not None
        raise first_error

    def _ping(self, base: httpx.URL, action: str) -> httpx.Response:
        with transport_errors(action):
            response = self._client.get(base.join("/v2/"), follow_redirects=True)
        if response.status_code not in (200, 401):
            raise error_from_response(response, action)
        return response

    # --- requests ---------------------------------------------------------------------------

    def open(
        self,
        method: str,
        target: str | httpx.URL,
        *,
        action: str,
        expected: tuple[int, ...] = (200,),
        not_found: type[RegistryError] = RegistryError,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        content: bytes | object | None = None,
    ) -> httpx.Response:
        """Send a request and return the open, unread response (the caller closes it).

        ``target`` is a path (``/v2/...``) or an absolute URL (a Location). A
        status outside ``expected`` raises the mapped RegistryError. GET and
        HEAD follow redirects (storage backends) and are retried on temporary
        errors when the options ask for retries.
        """
        def once() -> httpx.Response:
            return self._send(method, target, action, expected, not_found, headers, params, content)

        return self._retried_if_idempotent(method, once)

    def call(
        self,
        method: str,
        target: str | httpx.URL,
        *,
        action: str,
        limit: int = MAX_JSON_ANSWER,
        **arguments: object,
    ) -> Answer:
        """As ``open``, then read at most ``limit`` bytes of the body (more is an error)."""
        def once() -> Answer:
            response = self._send(method, target, action, **arguments)  # type: ignore[arg-type]
            body = b"" if method == "HEAD" else read_limited(response, limit, action)
            response.close()
            return Answer(response.status_code, response.headers, body, response.url)

        return self._retried_if_idempotent(method, once)

    def _retried_if_idempotent(self, method: str, once: Callable[[], T]) -> T:
        """GET and HEAD are retried on temporary errors when the options ask for retries."""
        if method in ("GET", "HEAD") and self.options.retry_times > 0:
            return with_retries(once, self.options.retry_times, self.options.retry_delay)
        return once()

    def _send(
        self,
        method: str,
        target: str | httpx.URL,
        action: str,
        expected: tuple[int, ...] = (200,),
        not_found: type[RegistryError] = RegistryError,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        content: bytes | object | None = None,
    ) -> httpx.Response:
        url = self.base_url().join(target) if isinstance(target, str) else target
        request = self._client.build_request(
            method, url, headers=dict(headers or {}), params=params, content=content  # type: ignore[arg-type]
        )
        try:
            with transport_errors(action):
                response = self._client.send(
                    request, auth=self.auth, stream=True, follow_redirects=method in ("GET", "HEAD")
                )
        except RegistryError as error:  # raised by the auth flow (a token request failed)
            raise with_action(error, action) from error
        if response.status_code not in expected:
            raise error_from_response(
                response, action, not_found=not_found, credentials_sent=self.auth.credentials_sent
            )
        return response


def read_limited(response: httpx.Response, limit: int, action: str) -> bytes:
    """The whole body, refusing (RegistryError) one longer than ``limit`` bytes."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        response.close()
        raise RegistryError(f"{action}: the answer is larger than the limit of {limit} bytes", status=response.status_code)
    chunks: list[bytes] = []
    size = 0
    try:
        with transport_errors(action):
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > limit:
                    raise RegistryError(
                        f"{action}: the answer is larger than the limit of {limit} bytes", status=response.status_code
                    )
                chunks.append(chunk)
    finally:
        response.close()
    return b"".join(chunks)


def close_quietly(response: httpx.Response) -> None:
    """Close a response whose body is not wanted."""
    try:
        response.close()
    except httpx.HTTPError:
        pass


def _proxy_mounts(
    host: str, ssl_context: ssl.SSLContext, env: Mapping[str, str] | None
) -> dict[str, httpx.BaseTransport | None] | None:
    """Transports through the environment's proxies for ``host`` (Go's rules), or None for none."""
    environment = os.environ if env is None else env
    mounts: dict[str, httpx.BaseTransport | None] = {}
    for scheme in ("https", "http"):
        proxy = proxy_for(scheme, host, environment)
        if proxy is not None:
            mounts[f"{scheme}://"] = httpx.HTTPTransport(proxy=proxy, verify=ssl_context)
    return mounts or None
