"""Bearer token auth against the real registry configured with ``auth: token`` (pallet_testing.token_server)."""

from __future__ import annotations

import io
import json
import secrets
from dataclasses import replace
from pathlib import Path

import pytest

from pallet.oci.digest import Digest
from pallet.oci.errors import Unauthorized
from pallet.oci.registry import Credentials, RegistryClient, RegistryOptions


@pytest.fixture
def token_options(token_registry, isolated_env: dict[str, str], tmp_path: Path) -> RegistryOptions:
    return RegistryOptions(tls_verify=False, env=isolated_env, home=tmp_path / "home",
                           credentials=Credentials(token_registry.username, token_registry.password))


def new_token_requests(token_registry, before: int):
    return token_registry.token_server.token_requests()[before:]


def push_small_image(client: RegistryClient, name: str, tag: str = "v1") -> Digest:
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    layer = secrets.token_bytes(2048)
    for blob in (config, layer):
        client.push_blob(name, io.BytesIO(blob), digest=Digest.from_bytes(blob), size=len(blob))
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": str(Digest.from_bytes(config)),
                   "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": str(Digest.from_bytes(layer)),
                    "size": len(layer)}],
    }).encode()
    return client.put_manifest(name, tag, manifest, "application/vnd.oci.image.manifest.v1+json")


def test_push_and_pull_with_tokens_reused_per_scope(token_registry, token_options) -> None:
    name = f"private/{secrets.token_hex(4)}"
    before = len(token_registry.token_server.token_requests())
    with RegistryClient(token_registry.host, token_options) as client:
        digest = push_small_image(client, name)
        fetched = client.get_manifest(name, "v1")
        assert fetched.digest == digest
        assert client.list_tags(name) == ["v1"]
    asked = new_token_requests(token_registry, before)
    assert all(request.granted and request.user == token_registry.username for request in asked)
    assert all(request.account == token_registry.username for request in asked)
    # one token for pull+push served the 2 blob uploads (HEAD-less), the manifest, and the later reads
    assert [request.scopes for request in asked] == [(f"repository:{name}:pull,push",)]


def test_a_push_after_a_pull_gets_a_wider_token(token_registry, token_options) -> None:
    name = f"private/{secrets.token_hex(4)}"
    with RegistryClient(token_registry.host, token_options) as writer:
        push_small_image(writer, name)
    before = len(token_registry.token_server.token_requests())
    with RegistryClient(token_registry.host, token_options) as client:
        client.get_manifest(name, "v1")
        client.get_manifest(name, "v1")
        data = b"pushed after a pull"
        client.push_blob(name, io.BytesIO(data), digest=Digest.from_bytes(data))
        assert client.head_blob(name, Digest.from_bytes(data)) == len(data)
    scopes = [request.scopes for request in new_token_requests(token_registry, before)]
    assert scopes == [(f"repository:{name}:pull",), (f"repository:{name}:pull,push",)]


def test_a_mount_asks_for_both_repositories(token_registry, token_options) -> None:
    source, target = f"private/{secrets.token_hex(4)}", f"private/{secrets.token_hex(4)}"
    data = secrets.token_bytes(1000)
    with RegistryClient(token_registry.host, token_options) as client:
        client.push_blob(source, io.BytesIO(data), digest=Digest.from_bytes(data))
        before = len(token_registry.token_server.token_requests())
        assert client.mount_blob(target, Digest.from_bytes(data), source) is True
    scopes = [set(request.scopes) for request in new_token_requests(token_registry, before)]
    assert scopes == [{f"repository:{source}:pull", f"repository:{target}:pull,push"}]


def test_catalog_needs_the_registry_scope(token_registry, token_options) -> None:
    with RegistryClient(token_registry.host, token_options) as client:
        push_small_image(client, f"private/{secrets.token_hex(4)}")
        assert client.catalog()
    assert ("registry:catalog:*",) in [request.scopes for request in token_registry.token_server.token_requests()]


def test_anonymous_clients_pull_public_images_and_may_not_push(token_registry, token_options) -> None:
    name = f"public/{secrets.token_hex(4)}"
    with RegistryClient(token_registry.host, token_options) as writer:
        digest = push_small_image(writer, name)
    anonymous = replace(token_options, credentials=None, no_creds=True)
    with RegistryClient(token_registry.host, anonymous) as client:
        assert client.get_manifest(name, "v1").digest == digest
        with pytest.raises(Unauthorized) as caught:
            client.push_blob(name, io.BytesIO(b"nope"), digest=Digest.from_bytes(b"nope"))
        with pytest.raises(Unauthorized):
            client.get_manifest(f"private/{secrets.token_hex(4)}", "v1")
    assert str(caught.value).startswith(f"uploading blob {Digest.from_bytes(b'nope')} to {token_registry.host}/{name}: ")
    assert "invalid username/password" not in str(caught.value)


def test_a_wrong_password_is_refused_by_the_token_server_and_not_shown(token_registry, token_options) -> None:
    wrong = "wrong-" + secrets.token_hex(8)
    options = replace(token_options, credentials=Credentials(token_registry.username, wrong))
    with RegistryClient(token_registry.host, options) as client:
        with pytest.raises(Unauthorized) as caught:
            client.get_manifest("private/whatever", "v1")
    message = str(caught.value)
    assert message.startswith(f"reading manifest v1 in {token_registry.host}/private/whatever: requesting bearer token")
    assert "invalid username/password" in message and wrong not in message


def test_an_identity_token_from_auth_json_is_exchanged_with_oauth2(token_registry, token_options, tmp_path) -> None:
    refresh = next(iter(token_registry.token_server.refresh_tokens))
    auth_file = tmp_path / "auth.json"
    auth_file.write_text(json.dumps({"auths": {token_registry.host: {"identitytoken": refresh}}}))
    options = replace(token_options, credentials=None, auth_file=auth_file)
    before = len(token_registry.token_server.token_requests())
    with RegistryClient(token_registry.host, options) as client:
        push_small_image(client, f"private/{secrets.token_hex(4)}")
    asked = new_token_requests(token_registry, before)
    assert [request.method for request in asked] == ["POST"]
    assert asked[0].user == token_registry.username and asked[0].granted


def test_a_registry_token_is_sent_as_is(token_registry, token_options) -> None:
    name = f"private/{secrets.token_hex(4)}"
    with RegistryClient(token_registry.host, token_options) as writer:
        push_small_image(writer, name)
    granted = token_registry.token_server.issue(token_registry.username, [f"repository:{name}:pull"])
    before = len(token_registry.token_server.token_requests())
    options = replace(token_options, credentials=None, registry_token=granted)
    with RegistryClient(token_registry.host, options) as client:
        client.get_manifest(name, "v1")
    assert new_token_requests(token_registry, before) == []


def test_threads_share_one_client_and_its_token_cache(token_registry, token_options) -> None:
    from concurrent.futures import ThreadPoolExecutor

    name = f"private/{secrets.token_hex(4)}"
    blobs = [secrets.token_bytes(50_000 + n) for n in range(12)]
    before = len(token_registry.token_server.token_requests())
    with RegistryClient(token_registry.host, token_options) as client:
        def roundtrip(data: bytes) -> bool:
            client.push_blob(name, io.BytesIO(data), digest=Digest.from_bytes(data), size=len(data))
            with client.get_blob(name, Digest.from_bytes(data)) as stream:
                return stream.read() == data

        with ThreadPoolExecutor(6) as pool:
            assert all(pool.map(roundtrip, blobs))
    fetched = new_token_requests(token_registry, before)
    # threads that miss the cache together may each fetch one; never one per request
    assert 1 <= len(fetched) <= 6 + 1, [request.scopes for request in fetched]
