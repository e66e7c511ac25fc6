"""Registry authentication as an ``httpx.Auth`` flow: the WWW-Authenticate challenge dance.

The flow (``RegistryAuth.auth_flow``) is a generator that performs no I/O of
its own: it yields requests (the registry request, token requests) and
receives their responses from httpx.

1. A request to the registry's own host gets an Authorization header made
   for the challenge already known (from the ping, or from an earlier 401):
   Basic with the credentials, or Bearer with a token for the request's scopes
   (from the cache, or fetched now from the challenge's realm).
2. If the registry still answers 401 and the request body can be sent again,
   the new challenge is learnt, a token for the scopes it names (plus the
   request's own) is fetched, and the request is sent once more.
3. Requests to any other host (a blob storage redirect, an upload Location
   elsewhere) are sent without Authorization: credentials stay with the registry.

Scopes come from the request: ``repository:NAME:pull`` for GET/HEAD,
``pull,push`` for POST/PUT/PATCH, ``delete`` for DELETE,
``repository:FROM:pull`` as well for a cross-repository mount, and
``registry:catalog:*`` for the catalog. Tokens are cached per realm, service
and scopes until ``expires_in`` (at least 60s, as containers/image) runs out;
a cached token serves any request whose scopes it covers, and a push that
needs a wider scope gets a new token.

Thread safety: one RegistryAuth serves every thread of a client; its
challenge and token cache are behind a lock. Credentials never appear in
messages or reprs.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass, field

import httpx

from pallet.oci.errors import RegistryError
from pallet.oci.registry.credentials import Credentials
from pallet.oci.registry.errors_map import error_from_response
from pallet.oci.registry.options import MAX_TOKEN_RESPONSE_SIZE

MINIMUM_TOKEN_LIFETIME_SECONDS = 60
OAUTH2_CLIENT_ID = "pallet"

#: resource ("repository:library/busybox", "registry:catalog") -> actions ("pull", "push", "*")
Scopes = Mapping[str, frozenset[str]]

_TOKEN_CHARS = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_UNQUOTED_VALUE = re.compile(r"[^,\s]*")
_REPOSITORY_PATH = re.compile(r"^/v2/(?P<name>.+)/(?:manifests|blobs|tags|referrers)/")
_TOKEN_REQUEST = "pallet.token_request"  # marks the requests the flow makes itself


@dataclass(frozen=True)
class Challenge:
    """One WWW-Authenticate challenge: ``scheme`` lower-cased, ``params`` with lower-cased names."""

    scheme: str
    params: Mapping[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")

    @property
    def service(self) -> str:
        return self.params.get("service", "")


def parse_challenges(values: Iterable[str]) -> list[Challenge]:
    """Every challenge of the WWW-Authenticate header values, in order (RFC 7235 syntax)."""
    found: list[Challenge] = []
    for value in values:
        current: dict[str, str] | None = None
        position = 0
        while position < len(value):
            position = _skip(value, position, " \t,")
            match = _TOKEN_CHARS.match(value, position)
            if match is None:
                break  # malformed: keep what was understood
            name, position = match.group(), _skip(value, match.end(), " \t")
            if current is not None and value.startswith("=", position):
                text, position = _param_value(value, _skip(value, position + 1, " \t"))
                current[name.lower()] = text
            else:
                current = {}
                found.append(Challenge(name.lower(), current))
    return found


def _skip(text: str, position: int, characters: str) -> int:
    while position < len(text) and text[position] in characters:
        position += 1
    return position


def _param_value(text: str, position: int) -> tuple[str, int]:
    if not text.startswith('"', position):  # a token; leniently, anything up to "," or a space
        match = _UNQUOTED_VALUE.match(text, position)
        return (match.group(), match.end()) if match else ("", position)
    chars: list[str] = []
    position += 1
    while position < len(text) and text[position] != '"':
        if text[position] == "\\" and position + 1 < len(text):
            position += 1
        chars.append(text[position])
        position += 1
    return "".join(chars), position + 1


def parse_scope(text: str) -> dict[str, frozenset[str]]:
    """``repository:foo:pull,push repository:bar:pull`` -> {resource: actions}."""
    scopes: dict[str, frozenset[str]] = {}
    for item in text.split():
        resource, colon, actions = item.rpartition(":")
        if colon and resource:
            scopes[resource] = scopes.get(resource, frozenset()) | frozenset(filter(None, actions.split(",")))
    return scopes


def scopes_for_request(request: httpx.Request) -> dict[str, frozenset[str]]:
    """The scopes a registry request needs (see the module docstring)."""
    path = request.url.path
    if path == "/v2/_catalog":
        return {"registry:catalog": frozenset({"*"})}
    match = _REPOSITORY_PATH.match(path)
    if match is None:
        return {}
    method = request.method.upper()
    if method in ("GET", "HEAD"):
        actions = frozenset({"pull"})
    elif method == "DELETE":
        actions = frozenset({"delete"})
    else:
        actions = frozenset({"pull", "push"})
    scopes = {f"repository:{match['name']}": actions}
    source = request.url.params.get("from")
    if request.url.params.get("mount") and source:
        scopes[f"repository:{source}"] = scopes.get(f"repository:{source}", frozenset()) | {"pull"}
    return scopes


def scope_strings(scopes: Scopes) -> list[str]:
    """The scope parameters of a token request, sorted: ``repository:foo:pull,push``."""
    return [f"{resource}:{','.join(sorted(actions))}" for resource, actions in sorted(scopes.items()) if actions]


def _covers(granted: Scopes, needed: Scopes) -> bool:
    return all(
        "*" in granted.get(resource, frozenset()) or actions <= granted.get(resource, frozenset())
        for resource, actions in needed.items()
    )


def _merge(first: Scopes, second: Scopes) -> dict[str, frozenset[str]]:
    merged = dict(first)
    for resource, actions in second.items():
        merged[resource] = merged.get(resource, frozenset()) | actions
    return merged


@dataclass(frozen=True)
class _CachedToken:
    realm: str
    service: str
    scopes: Scopes
    value: str = field(repr=False)
    expires_at: float


class RegistryAuth(httpx.Auth):
    """The auth flow of one registry host (see the module docstring). Safe for concurrent use."""

    requires_request_body = False
    requires_response_body = False

    def __init__(
        self,
        origin: httpx.URL,
        credentials: Credentials | None = None,
        *,
        registry_token: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._origin = _origin_of(origin)
        self._credentials = credentials if credentials else None
        self._registry_token = registry_token
        self._clock = clock
        self._lock = threading.Lock()
        self._challenge: Challenge | None = None
        self._tokens: list[_CachedToken] = []

    def __repr__(self) -> str:
        who = self._credentials.username if self._credentials else "anonymous"
        return f"RegistryAuth({self._origin[0]}:{self._origin[1]}, {who})"

    @property
    def credentials_sent(self) -> bool:
        """True when requests carry the user's credentials (a 401 then means they are wrong)."""
        return self._credentials is not None

    def learn(self, response: httpx.Response) -> None:
        """Remember the first supported challenge of ``response`` (the ping's answer)."""
        challenge = _supported(parse_challenges(response.headers.get_list("www-authenticate")))
        if challenge is not None:
            with self._lock:
                self._challenge = challenge

    # --- the flow -----------------------------------------------------------------------

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """httpx's driver: as the default, but reads the bodies of token responses (capped)."""
        flow = self.auth_flow(request)
        outgoing = next(flow)
        while True:
            response = yield outgoing
            if outgoing.extensions.get(_TOKEN_REQUEST):
                _read_token_response(response)
            try:
                outgoing = flow.send(response)
            except StopIteration:
                return

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if _origin_of(request.url) != self._origin:
            request.headers.pop("Authorization", None)
            yield request
            return
        needed = scopes_for_request(request)
        with self._lock:
            challenge = self._challenge
        if challenge is not None:
            header = yield from self._authorization(challenge, needed)
            if header is not None:
                request.headers["Authorization"] = header
        response = yield request
        if response.status_code != 401 or not isinstance(request.stream, httpx.ByteStream):
            return
        retry = yield from self._answer_401(request, response, needed)
        if retry:
            yield request

    def _answer_401(
        self, request: httpx.Request, response: httpx.Response, needed: Scopes
    ) -> Generator[httpx.Request, httpx.Response, bool]:
        challenge = _supported(parse_challenges(response.headers.get_list("www-authenticate")))
        if challenge is None:
            return False
        rejected = request.headers.get("Authorization")
        with self._lock:
            self._challenge = challenge
            self._tokens = [token for token in self._tokens if f"Bearer {token.value}" != rejected]
        needed = _merge(needed, parse_scope(challenge.params.get("scope", "")))
        header = yield from self._authorization(challenge, needed)
        if header is None or header == rejected:
            return False
        request.headers["Authorization"] = header
        return True

    def _authorization(
        self, challenge: Challenge, needed: Scopes
    ) -> Generator[httpx.Request, httpx.Response, str | None]:
        if challenge.scheme == "basic":
            creds = self._credentials
            if creds is None or not creds.has_password:
                return None
            return "Basic " + base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode("ascii")
        if challenge.scheme != "bearer":
            return None
        if self._registry_token:
            return f"Bearer {self._registry_token}"
        cached = self._cached(challenge, needed)
        if cached is None:
            response = yield self._token_request(challenge, needed)
            cached = self._store(challenge, needed, response)
        return f"Bearer {cached.value}"

    # --- tokens ---------------------------------------------------------------------------

    def _cached(self, challenge: Challenge, needed: Scopes) -> _CachedToken | None:
        now = self._clock()
        with self._lock:
            self._tokens = [token for token in self._tokens if token.expires_at > now]
            for token in self._tokens:
                if token.realm == challenge.realm and token.service == challenge.service:
                    if _covers(token.scopes, needed):
                        return token
        return None

    def _token_request(self, challenge: Challenge, needed: Scopes) -> httpx.Request:
        realm = challenge.realm
        if not realm.startswith(("https://", "http://")):
            raise RegistryError(f"the registry's bearer challenge has no usable realm ({realm!r})")
        params: list[tuple[str, str | int | float | bool | None]] = []
        if challenge.service:
            params.append(("service", challenge.service))
        params += [("scope", scope) for scope in scope_strings(needed)]
        creds = self._credentials
        extensions = {_TOKEN_REQUEST: True}
        if creds is not None and creds.identity_token:
            form = [(key, str(value)) for key, value in params]
            form += [("grant_type", "refresh_token"), ("refresh_token", creds.identity_token),
                     ("client_id", OAUTH2_CLIENT_ID)]
            return httpx.Request("POST", realm, data=dict(_multi(form)), extensions=extensions)
        if creds is not None and creds.username:
            params.insert(0, ("account", creds.username))
        url = httpx.URL(realm)
        url = url.copy_with(params=url.params.merge(httpx.QueryParams(params)))
        headers = {}
        if creds is not None and creds.has_password:
            secret = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode("ascii")
            headers["Authorization"] = f"Basic {secret}"
        return httpx.Request("GET", url, headers=headers, extensions=extensions)

    def _store(self, challenge: Challenge, needed: Scopes, response: httpx.Response) -> _CachedToken:
        where = f"requesting bearer token from {challenge.realm}"
        if response.status_code != 200:
            raise error_from_response(response, where, credentials_sent=self._credentials is not None)
        value, lifetime = _token_from_body(response.content, where)
        token = _CachedToken(challenge.realm, challenge.service, dict(needed), value, self._clock() + lifetime)
        with self._lock:
            self._tokens.append(token)
        return token


def _multi(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for key, value in pairs:
        grouped.setdefault(key, []).append(value)
    return grouped


def _supported(challenges: list[Challenge]) -> Challenge | None:
    return next((c for c in challenges if c.scheme in ("bearer", "basic")), None)


def _origin_of(url: httpx.URL) -> tuple[str, int]:
    port = url.port or (443 if url.scheme == "https" else 80)
    return url.host.lower(), port


def _read_token_response(response: httpx.Response) -> None:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_TOKEN_RESPONSE_SIZE:
        response.close()
        raise RegistryError(f"the token server's answer is larger than {MAX_TOKEN_RESPONSE_SIZE} bytes")
    response.read()


def _token_from_body(body: bytes, where: str) -> tuple[str, float]:
    if len(body) > MAX_TOKEN_RESPONSE_SIZE:
        raise RegistryError(f"{where}: the answer is larger than {MAX_TOKEN_RESPONSE_SIZE} bytes")
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise RegistryError(f"{where}: the answer is not JSON") from None
    if not isinstance(document, dict):
        raise RegistryError(f"{where}: the answer is not a JSON object")
    value = document.get("token") or document.get("access_token")
    if not isinstance(value, str) or not value:
        raise RegistryError(f"{where}: the answer holds no token")
    expires_in = document.get("expires_in")
    lifetime = expires_in if isinstance(expires_in, int) and not isinstance(expires_in, bool) else 0
    return value, float(max(lifetime, MINIMUM_TOKEN_LIFETIME_SECONDS))
