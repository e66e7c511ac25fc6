"""policy.json: scopes, requirements, loading, and the engine stopping before any blob."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pallet.oci.copy.policy import Policy, load_policy, policy_scopes
from pallet.oci.errors import InvalidPolicy, PolicyRejected
from pallet.oci.reference import Reference, parse_normalized
from pallet.oci.transports.base import ImageReference, ImageTransport, SystemContext

ACCEPT = [{"type": "insecureAcceptAnything"}]
REJECT = [{"type": "reject"}]


class _FakeTransport(ImageTransport):
    def __init__(self, name: str) -> None:
        self.name = name

    def parse_reference(self, text: str) -> ImageReference:
        raise NotImplementedError


class _Ref(ImageReference):
    """A reference of transport ``name`` with a registry name (docker-like) or a path identity."""

    def __init__(self, transport: str, text: str, *, registry: bool) -> None:
        self._transport = _FakeTransport(transport)
        self._text = text
        self._registry = registry

    @property
    def transport(self) -> ImageTransport:
        return self._transport

    def string_within_transport(self) -> str:
        return self._text

    def docker_reference(self) -> Reference | None:
        return parse_normalized(self._text) if self._registry else None

    def policy_configuration_identity(self) -> str:
        named = self.docker_reference()
        return str(named) if named is not None else self._text

    def new_source(self, context):  # pragma: no cover - not used
        raise NotImplementedError

    def new_destination(self, context):  # pragma: no cover - not used
        raise NotImplementedError


def docker(text: str) -> _Ref:
    return _Ref("docker", text, registry=True)


def policy(**transports: dict[str, list[dict[str, str]]]) -> Policy:
    return Policy.from_json(json.dumps({"default": REJECT, "transports": transports}))


def test_registry_scopes_most_specific_first():
    assert policy_scopes(docker("my.registry.example.com:5000/ns/app:v1")) == [
        "my.registry.example.com:5000/ns/app:v1",
        "my.registry.example.com:5000/ns/app",
        "my.registry.example.com:5000/ns",
        "my.registry.example.com:5000",
        "*.registry.example.com:5000",
        "*.example.com:5000",
        "*.com:5000",
    ]


def test_path_scopes():
    assert policy_scopes(_Ref("oci", "/srv/images/app:v1", registry=False)) == [
        "/srv/images/app:v1",
        "/srv/images/app",
        "/srv/images",
        "/srv",
    ]
    assert policy_scopes(_Ref("dir", "/srv/images/app", registry=False)) == ["/srv/images/app", "/srv/images", "/srv"]


@pytest.mark.parametrize(
    ("scopes", "accepted"),
    [
        ({"docker.io/library/busybox:latest": ACCEPT}, True),
        ({"docker.io/library/busybox": ACCEPT}, True),
        ({"docker.io/library": ACCEPT}, True),
        ({"docker.io": ACCEPT}, True),
        ({"*.io": ACCEPT}, True),
        ({"": ACCEPT}, True),
        ({"docker.io/library/alpine": ACCEPT}, False),
        ({"docker.io": ACCEPT, "docker.io/library/busybox": REJECT}, False),
        ({"docker.io": REJECT, "docker.io/library/busybox:latest": ACCEPT}, True),
        ({"": REJECT, "docker.io/library": ACCEPT}, True),
    ],
)
def test_the_most_specific_scope_decides(scopes, accepted):
    check = policy(docker=scopes).check
    if accepted:
        check(docker("busybox:latest"))
    else:
        with pytest.raises(PolicyRejected, match="rejected by policy"):
            check(docker("busybox:latest"))


def test_scopes_of_other_transports_do_not_apply():
    with pytest.raises(PolicyRejected):
        policy(oci={"": ACCEPT}).check(docker("busybox:latest"))
    policy(oci={"/srv/images": ACCEPT}).check(_Ref("oci", "/srv/images/app:v1", registry=False))


@pytest.mark.parametrize("kind", ["signedBy", "sigstoreSigned"])
def test_signature_requirements_refuse_rather_than_accept_unverified(kind):
    requirement = {"type": kind, "keyType": "GPGKeys", "keyPath": "/k.gpg"}
    with pytest.raises(PolicyRejected, match="signature verification is not implemented"):
        policy(docker={"": [requirement]}).check(docker("busybox:latest"))


def test_every_requirement_must_accept():
    with pytest.raises(PolicyRejected):
        policy(docker={"": [*ACCEPT, *REJECT]}).check(docker("busybox:latest"))


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("{", "not JSON"),
        ("[]", "JSON object"),
        ('{"transports": {}}', "default policy is missing"),
        ('{"default": []}', "non-empty list"),
        ('{"default": [{"type": "maybe"}]}', "unknown requirement type"),
        ('{"default": [{"type": "reject"}], "transports": {"docker": []}}', "must be an object"),
    ],
)
def test_invalid_policies_are_refused(text, why):
    with pytest.raises(InvalidPolicy, match=why) as caught:
        Policy.from_json(text)
    assert isinstance(caught.value, PolicyRejected)


def test_load_policy_prefers_the_users_file(tmp_path: Path):
    user = tmp_path / ".config/containers/policy.json"
    user.parent.mkdir(parents=True)
    user.write_text(json.dumps({"default": ACCEPT}))
    loaded = load_policy(context=SystemContext(home=tmp_path))
    assert loaded.default[0].type == "insecureAcceptAnything"
    explicit = tmp_path / "other.json"
    explicit.write_text(json.dumps({"default": REJECT}))
    assert load_policy(explicit).default[0].type == "reject"
    with pytest.raises(InvalidPolicy, match="no policy file"):
        load_policy(tmp_path / "missing.json")
    with pytest.raises(InvalidPolicy, match="cannot read the policy"):
        load_policy(tmp_path)  # a directory: unreadable as a file


def test_a_rejecting_policy_stops_the_copy_before_any_blob(test_images, memory, run_copy):
    source, dest = memory(), memory()
    source.add_image("src", test_images.single_layer)
    rejecting = Policy.from_json(json.dumps({"default": ACCEPT, "transports": {"memory": {"src": REJECT}}}))
    with pytest.raises(PolicyRejected, match="memory:src") as caught:
        run_copy(source, dest, policy=rejecting)
    assert not isinstance(caught.value, InvalidPolicy)
    assert not source.get_blob_calls
    assert dest.events == []
    run_copy(source, dest, "src", "dst")  # accept anything
    assert "dst" in dest.images
