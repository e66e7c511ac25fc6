"""The challenge flow itself, driven by httpx with an in-memory transport (no sockets), and retries."""

from __future__ import annotations

import httpx
import pytest

from pallet.oci.errors import RegistryUnreachable, ServerError, Unauthorized
from pallet.oci.registry import Credentials, with_retries
from pallet.oci.registry.auth import Challenge, RegistryAuth, parse_challenges, scopes_for_request

REGISTRY = "https://registry.test"


def test_challenges_are_parsed_as_rfc_7235_writes_them() -> None:
    header = 'Bearer realm="https://auth.test/token",service="registry.test",scope="repository:a/b:pull,push"'
    assert parse_challenges([header]) == [Challenge("bearer", {
        "realm": "https://auth.test/token", "service": "registry.test", "scope": "repository:a/b:pull,push"})]
    several = parse_challenges(['Basic realm="x, y", BEARER realm=https://t.test/tok , error="insufficient_scope"'])
    assert [(c.scheme, dict(c.params)) for c in several] == [
        ("basic", {"realm": "x, y"}), ("bearer", {"realm": "https://t.test/tok", "error": "insufficient_scope"})]
    assert parse_challenges(['Bearer realm="with \\"quotes\\""'])[0].realm == 'with "quotes"'
    assert parse_challenges(["", "  ,  "]) == []


@pytest.mark.parametrize(("method", "url", "scopes"), [
    ("GET", "/v2/", {}),
    ("GET", "/v2/a/b/manifests/latest", {"repository:a/b": {"pull"}}),
    ("HEAD", "/v2/a/blobs/x/blobs/sha256:00", {"repository:a/blobs/x": {"pull"}}),
    ("PUT", "/v2/a/b/manifests/v1", {"repository:a/b": {"pull", "push"}}),
    ("PATCH", "/v2/a/b/blobs/uploads/uuid", {"repository:a/b": {"pull", "push"}}),
    ("DELETE", "/v2/a/b/manifests/sha256:00", {"repository:a/b": {"delete"}}),
    ("POST", "/v2/to/blobs/uploads/?mount=sha256:00&from=from/repo",
     {"repository:to": {"pull", "push"}, "repository:from/repo": {"pull"}}),
    ("GET", "/v2/_catalog?n=10", {"registry:catalog": {"*"}}),
    ("GET", "/v2/a/tags/list", {"repository:a": {"pull"}}),
])
def test_scopes_follow_from_the_request(method: str, url: str, scopes: dict[str, set[str]]) -> None:
    assert scopes_for_request(httpx.Request(method, REGISTRY + url)) == scopes


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TokenRegistry:
    """A registry and token endpoint in one in-memory transport; tokens are numbered."""

    def __init__(self, *, expires_in: int | None = 120, field: str = "token") -> None:
        self.issued: dict[str, str] = {}  # token -> scope
        self.log: list[str] = []
        self.expires_in = expires_in
        self.field = field

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.test":
            return self.token(request)
        self.log.append(f"{request.method} {request.url.path} {request.headers.get('authorization', '-')}")
        scope = ",".join(sorted(scopes_for_request(request).get("repository:team/app", set())))
        granted = self.issued.get(request.headers.get("authorization", "").removeprefix("Bearer "), "")
        if not scope or set(scope.split(",")) <= set(granted.split(",")):
            return httpx.Response(200, json={})
        challenge = f'Bearer realm="https://auth.test/token",service="registry.test",scope="repository:team/app:{scope}"'
        return httpx.Response(401, headers={"WWW-Authenticate": challenge}, json={"errors": [{"code": "UNAUTHORIZED"}]})

    def token(self, request: httpx.Request) -> httpx.Response:
        if request.headers.get("authorization") != httpx.BasicAuth("u", "p")._auth_header:
            return httpx.Response(401, json={"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]})
        token = f"token-{len(self.issued) + 1}"
        scopes = request.url.params.get_list("scope")
        self.issued[token] = ",".join(s.rsplit(":", 1)[1] for s in scopes) if scopes else ""
        self.log.append(f"token {' '.join(scopes)}")
        body: dict[str, object] = {self.field: token}
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        return httpx.Response(200, json=body)


def flow_client(registry: TokenRegistry, credentials: Credentials, clock: FakeClock) -> tuple[httpx.Client, RegistryAuth]:
    auth = RegistryAuth(httpx.URL(REGISTRY), credentials, clock=clock)
    return httpx.Client(transport=httpx.MockTransport(registry.handle), auth=auth), auth


def test_a_401_is_answered_with_a_token_then_tokens_are_reused_until_they_expire() -> None:
    registry, clock = TokenRegistry(expires_in=120), FakeClock()
    client, _ = flow_client(registry, Credentials("u", "p"), clock)
    manifest = f"{REGISTRY}/v2/team/app/manifests/v1"
    assert client.get(manifest).status_code == 200
    assert registry.log == [
        "GET /v2/team/app/manifests/v1 -",
        "token repository:team/app:pull",
        "GET /v2/team/app/manifests/v1 Bearer token-1",
    ]
    registry.log.clear()
    clock.now += 100
    assert client.head(manifest).status_code == 200
    assert registry.log == ["HEAD /v2/team/app/manifests/v1 Bearer token-1"]
    registry.log.clear()
    clock.now += 30  # past expires_in: a new token is fetched before sending
    assert client.get(manifest).status_code == 200
    assert registry.log == ["token repository:team/app:pull", "GET /v2/team/app/manifests/v1 Bearer token-2"]


def test_a_push_gets_a_wider_token_which_then_serves_pulls_too() -> None:
    registry, clock = TokenRegistry(), FakeClock()
    client, _ = flow_client(registry, Credentials("u", "p"), clock)
    client.get(f"{REGISTRY}/v2/team/app/manifests/v1")
    registry.log.clear()
    assert client.put(f"{REGISTRY}/v2/team/app/manifests/v1", content=b"{}").status_code == 200
    assert registry.log == ["token repository:team/app:pull,push", "PUT /v2/team/app/manifests/v1 Bearer token-2"]
    registry.log.clear()
    client.get(f"{REGISTRY}/v2/team/app/manifests/v1")
    assert registry.log[0].endswith("Bearer token-1") or registry.log[0].endswith("Bearer token-2")
    assert len(registry.log) == 1


def test_access_token_and_the_default_lifetime_of_60_seconds() -> None:
    registry, clock = TokenRegistry(expires_in=None, field="access_token"), FakeClock()
    client, _ = flow_client(registry, Credentials("u", "p"), clock)
    url = f"{REGISTRY}/v2/team/app/manifests/v1"
    client.get(url)
    clock.now += 59
    client.get(url)
    clock.now += 2
    client.get(url)
    assert [line for line in registry.log if line.startswith("token")] == ["token repository:team/app:pull"] * 2


def test_a_refused_token_request_is_unauthorized_without_the_password() -> None:
    registry, clock = TokenRegistry(), FakeClock()
    client, _ = flow_client(registry, Credentials("u", "wrong-password"), clock)
    with pytest.raises(Unauthorized) as caught:
        client.get(f"{REGISTRY}/v2/team/app/manifests/v1")
    assert str(caught.value).startswith("requesting bearer token from https://auth.test/token: invalid username/password")
    assert "wrong-password" not in str(caught.value)


def test_other_hosts_never_receive_the_authorization() -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return httpx.Response(200)

    auth = RegistryAuth(httpx.URL(REGISTRY), Credentials("u", "p"))
    auth.learn(httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="r"'}))
    client = httpx.Client(transport=httpx.MockTransport(handler), auth=auth)
    client.get(f"{REGISTRY}/v2/")
    client.get("https://storage.test/blob", headers={"Authorization": "Basic smuggled"})
    client.get("https://registry.test:8443/v2/")  # another port is another origin
    assert seen == [httpx.BasicAuth("u", "p")._auth_header, None, None]


def test_with_retries_retries_only_temporary_errors_with_exponential_backoff() -> None:
    slept: list[float] = []
    outcomes: list[Exception | str] = [ServerError("busy", status=503), RegistryUnreachable("reset"), "done"]

    def flaky() -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert with_retries(flaky, 3, 0.5, sleep=slept.append) == "done"
    assert slept == [0.5, 1.0]

    def denied() -> str:
        raise Unauthorized("no", status=401)

    with pytest.raises(Unauthorized):
        with_retries(denied, 5, sleep=slept.append)
    assert slept == [0.5, 1.0]

    def always_down() -> str:
        raise RegistryUnreachable("down")

    with pytest.raises(RegistryUnreachable):
        with_retries(always_down, 2, 1.0, sleep=slept.append)
    assert slept == [0.5, 1.0, 1.0, 2.0]
