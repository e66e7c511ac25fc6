"""The one boundary where HTTP answers and httpx exceptions become pallet.oci errors.

- ``error_from_response(response, action)`` turns a registry's error answer
  into the typed ``RegistryError`` leaf, keeping the status, the spec's error
  codes (``{"errors": [{"code", "message", "detail"}]}``) and their details.
  At most ``MAX_ERROR_BODY`` bytes of the body are read.
- ``transport_errors(action)`` is a context manager mapping httpx's
  exceptions (refused, reset, timed out, TLS failures...) to
  ``RegistryUnreachable``; TLS verification failures are not temporary and say
  so in the x509 wording skopeo users know.
- ``with_action(error, action)`` prefixes an error raised deeper (a token
  request inside the auth flow) with what the caller was doing.

Messages start with what was being done: ``reading manifest latest in
127.0.0.1:5000/foo: manifest unknown``. They never hold credentials: actions
name hosts and repositories only, and request headers are never quoted.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from pallet.oci.errors import (
    Denied,
    ManifestUnknown,
    NameUnknown,
    OciError,
    RegistryError,
    RegistryUnreachable,
    RemoteBlobUnknown,
    ServerError,
    TooManyRequests,
    Unauthorized,
)

#: The most of an error body that is read (a hostile server cannot make us buffer more).
MAX_ERROR_BODY = 64 * 1024
_SHOWN_TEXT = 200  # characters of a non-JSON error body quoted in a message

_BY_CODE: dict[str, type[RegistryError]] = {
    "UNAUTHORIZED": Unauthorized,
    "DENIED": Denied,
    "MANIFEST_UNKNOWN": ManifestUnknown,
    "NAME_UNKNOWN": NameUnknown,
    "BLOB_UNKNOWN": RemoteBlobUnknown,
    "TOOMANYREQUESTS": TooManyRequests,
}
_BY_STATUS: dict[int, type[RegistryError]] = {401: Unauthorized, 403: Denied, 429: TooManyRequests}
_NOT_FOUND_TEXT: dict[type[RegistryError], str] = {
    ManifestUnknown: "manifest unknown",
    NameUnknown: "repository name not known to registry",
    RemoteBlobUnknown: "blob unknown to registry",
}
_STATUS_TEXT = {401: "authentication required", 403: "access denied", 404: "not found", 429: "too many requests"}


def read_capped(response: httpx.Response, limit: int) -> bytes:
    """Up to ``limit`` bytes of the body (what was read already, or read now; the rest is dropped)."""
    try:
        return response.content[:limit]
    except httpx.ResponseNotRead:
        pass
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_raw():
            chunks.append(chunk)
            size += len(chunk)
            if size >= limit:
                break
    except httpx.HTTPError:
        pass  # an error body cut short is still worth reporting
    finally:
        response.close()
    return b"".join(chunks)[:limit]


def parse_error_body(body: bytes) -> tuple[tuple[str, ...], list[str], str]:
    """``(codes, messages, detail)`` of a distribution-spec error body; empty when it is none."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return (), [], ""
    errors = document.get("errors") if isinstance(document, dict) else None
    if not isinstance(errors, list):
        return (), [], ""
    codes: list[str] = []
    messages: list[str] = []
    details: list[str] = []
    for entry in errors:
        if not isinstance(entry, dict):
            continue
        code = str(entry.get("code") or "UNKNOWN").upper()
        codes.append(code)
        messages.append(str(entry.get("message") or code.lower().replace("_", " ")))
        if entry.get("detail") not in (None, "", {}, []):
            details.append(_detail_text(entry["detail"]))
    return tuple(codes), messages, "; ".join(details)


def _detail_text(detail: Any) -> str:
    return detail if isinstance(detail, str) else json.dumps(detail, sort_keys=True)


def error_from_response(
    response: httpx.Response,
    action: str,
    *,
    not_found: type[RegistryError] = RegistryError,
    credentials_sent: bool = False,
) -> RegistryError:
    """The typed error for a registry's failed answer to ``action`` (the response is closed).

    ``not_found`` is the class for a 404 whose body names no code (HEAD has no
    body: the caller knows whether a manifest, blob or repository was asked).
    ``credentials_sent`` words a 401 as "invalid username/password".
    """
    status = response.status_code
    body = b"" if response.request.method == "HEAD" else read_capped(response, MAX_ERROR_BODY)
    response.close()
    codes, messages, detail = parse_error_body(body)
    kind = _error_class(status, codes, not_found)
    why = "; ".join(messages) if messages else _status_text(status, kind, body)
    if kind is ServerError and messages:  # a spec error list from a failing server: say it was the server
        why = f"server error (HTTP {status}): {why}"
    if kind is Unauthorized and credentials_sent:
        why = f"invalid username/password: {why}"
    error = kind(f"{action}: {why}", status=status, codes=codes, detail=detail)
    error.retry_after = _retry_after(response.headers.get("retry-after"))
    return error


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (delay-seconds form; an HTTP date is read as 'soon')."""
    if not value:
        return None
    try:
        return max(float(value.strip()), 0.0)
    except ValueError:
        return None


def _error_class(status: int, codes: tuple[str, ...], not_found: type[RegistryError]) -> type[RegistryError]:
    if status >= 500:
        return ServerError
    if status == 429:
        return TooManyRequests
    for code in codes:
        if code in _BY_CODE:
            return _BY_CODE[code]
    if status == 404:
        return not_found
    return _BY_STATUS.get(status, RegistryError)


def _status_text(status: int, kind: type[RegistryError], body: bytes) -> str:
    if status == 404 and kind in _NOT_FOUND_TEXT:
        return _NOT_FOUND_TEXT[kind]
    text = _STATUS_TEXT.get(status) or (f"server error (HTTP {status})" if status >= 500 else f"HTTP {status}")
    shown = body[:_SHOWN_TEXT].decode("utf-8", "replace").strip()
    if shown and kind is not Unauthorized and shown.isprintable():
        text += f": {shown}"
    return text


def with_action(error: OciError, action: str) -> OciError:
    """A copy of a registry error (same class and fields) whose message starts with ``action``."""
    message = f"{action}: {error}"
    if isinstance(error, RegistryError):
        return type(error)(message, status=error.status, codes=error.codes, detail=error.detail)
    if isinstance(error, RegistryUnreachable):
        return RegistryUnreachable(message, temporary=error.temporary)
    return error  # other errors (credentials, verification) already say what they are about


@contextmanager
def transport_errors(action: str) -> Iterator[None]:
    """Map httpx's exceptions raised inside the block to ``RegistryUnreachable`` (cause chained)."""
    try:
        yield
    except (httpx.HTTPError, httpx.InvalidURL) as error:
        raise transport_error(error, action) from error


def transport_error(error: httpx.HTTPError | httpx.InvalidURL, action: str) -> RegistryUnreachable:
    """The ``RegistryUnreachable`` for an httpx exception met while doing ``action``."""
    if isinstance(error, httpx.TimeoutException):
        return RegistryUnreachable(f"{action}: timed out ({type(error).__name__})", temporary=True)
    if isinstance(error, (httpx.ConnectError, httpx.ReadError, httpx.WriteError)):
        return _network_error(error, action)
    if isinstance(error, httpx.RemoteProtocolError):
        return RegistryUnreachable(f"{action}: connection broken: {error}", temporary=True)
    if isinstance(error, httpx.TooManyRedirects):
        return RegistryUnreachable(f"{action}: too many redirects", temporary=False)
    if isinstance(error, httpx.InvalidURL):
        return RegistryUnreachable(f"{action}: invalid URL: {error}", temporary=False)
    return RegistryUnreachable(f"{action}: {type(error).__name__}: {error}", temporary=False)


def _network_error(error: httpx.HTTPError, action: str) -> RegistryUnreachable:
    verification = _find_cause(error, ssl.SSLCertVerificationError)
    if isinstance(verification, ssl.SSLCertVerificationError):
        return RegistryUnreachable(f"{action}: {_x509_text(verification)}", temporary=False)
    tls = _find_cause(error, ssl.SSLError)
    if tls is not None:
        return RegistryUnreachable(
            f"{action}: TLS handshake failed: {tls} (is it an HTTP-only registry? then turn TLS verification off "
            "or mark it insecure in registries.conf)",
            temporary=False,
        )
    return RegistryUnreachable(f"{action}: {_connection_text(error)}", temporary=True)


def _find_cause(error: BaseException, kind: type[BaseException]) -> BaseException | None:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


# OpenSSL verify codes, grouped as Go's x509 errors word them.
_UNKNOWN_AUTHORITY = {2, 18, 19, 20, 21}
_EXPIRED = {9, 10}


def _x509_text(error: ssl.SSLCertVerificationError) -> str:
    code = error.verify_code
    reason = error.verify_message or str(error)
    if code in _UNKNOWN_AUTHORITY:
        head = "x509: certificate signed by unknown authority"
    elif code in _EXPIRED:
        head = "x509: certificate has expired or is not yet valid"
    elif code == 62:
        head = "x509: certificate is not valid for this host"
    else:
        head = "x509: certificate verification failed"
    return (
        f"{head} ({reason}); trust the registry's CA by putting it in the cert directory "
        "(certs.d/HOST/ca.crt or --cert-dir), or turn TLS verification off"
    )


def _connection_text(error: httpx.HTTPError) -> str:
    cause = _find_cause(error, OSError)
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused"
    if isinstance(cause, ConnectionResetError):
        return "connection reset by peer"
    return str(error) or type(error).__name__
