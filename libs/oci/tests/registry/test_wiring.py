"""How the client is put together: cheap imports, Docker Hub's API host, options from a SystemContext,
and interoperation with the real skopeo."""

from __future__ import annotations

import io
import json
import secrets
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from pallet.oci.digest import Digest
from pallet.oci.errors import ManifestTypeRejected
from pallet.oci.reference import parse_normalized
from pallet.oci.registry import Credentials, RegistryClient, RegistryOptions
from pallet.oci.transports.base import SystemContext
from pallet_testing.push import push_image


def test_httpx_is_loaded_only_when_the_client_is_used() -> None:
    probe = (
        "import sys, pallet.oci, pallet.oci.registry;"
        "from pallet.oci.registry import Credentials, RegistryOptions, lookup_credentials, set_credentials;"
        "import pallet.oci.registry.endpoints;"
        "print('httpx' in sys.modules);"
        "from pallet.oci.registry import RegistryClient; print('httpx' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.stdout.split() == ["False", "True"], result.stderr


def test_docker_io_is_served_by_registry_1_with_docker_io_credentials(tmp_path: Path) -> None:
    seen: list[str] = []
    hub_auth = httpx.BasicAuth("hub", "pw")._auth_header

    def handler(request: httpx.Request) -> httpx.Response:  # in memory: nothing leaves the process
        seen.append(f"{request.url.host} {request.url.path} {request.headers.get('authorization', '-')}")
        if request.headers.get("authorization") != hub_auth:
            return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="hub"'})
        return httpx.Response(200, json={"name": "library/busybox", "tags": ["latest"]})

    auth_file = tmp_path / "auth.json"
    auth_file.write_text(json.dumps({"auths": {"docker.io": {"auth": "aHViOnB3"}}}))  # hub:pw
    options = RegistryOptions(auth_file=auth_file, env={"HOME": str(tmp_path)}, home=tmp_path)
    ref = parse_normalized("busybox")
    assert ref.domain == "docker.io"
    with RegistryClient(ref.domain, options, credentials_name=ref.name, transport=httpx.MockTransport(handler)) as client:
        assert client.list_tags(ref.path) == ["latest"]
    assert seen == ["registry-1.docker.io /v2/ -", f"registry-1.docker.io /v2/library/busybox/tags/list {hub_auth}"]


def test_options_from_a_system_context(tmp_path: Path) -> None:
    conf = tmp_path / "registries.conf"
    conf.write_text('[[registry]]\nlocation = "blocked.example"\nblocked = true\n')
    context = SystemContext(tls_verify=False, cert_dir=tmp_path, credentials=("u", "p"), registries_conf=conf,
                            retry_times=3, user_agent="test-agent", home=tmp_path, environ=(("HOME", str(tmp_path)),))
    options = RegistryOptions.from_system_context(context)
    assert (options.tls_verify, options.cert_dir, options.credentials) == (False, tmp_path, Credentials("u", "p"))
    assert (options.retry_times, options.user_agent, options.env) == (3, "test-agent", {"HOME": str(tmp_path)})
    assert options.registries_conf is not None and options.registries_conf.find_registry("blocked.example/x")


def test_deleting_under_token_auth(token_registry, isolated_env) -> None:
    options = RegistryOptions(tls_verify=False, env=isolated_env,
                              credentials=Credentials(token_registry.username, token_registry.password))
    name = f"private/{secrets.token_hex(4)}"
    config = b"{}"
    with RegistryClient(token_registry.host, options) as client:
        client.push_blob(name, io.BytesIO(config), digest=Digest.from_bytes(config))
        manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                               "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                          "digest": str(Digest.from_bytes(config)), "size": 2},
                               "layers": []}).encode()
        digest = client.put_manifest(name, "v1", manifest, "application/vnd.oci.image.manifest.v1+json")
        assert client.delete_manifest(name, "v1") == digest
        assert client.head_blob(name, Digest.from_bytes(config)) == 2


def test_a_manifest_the_registry_finds_invalid_is_rejected_for_another_try(registry, plain_options) -> None:
    with RegistryClient(registry.host, plain_options) as client:
        with pytest.raises(ManifestTypeRejected) as caught:
            client.put_manifest("wiring/rejected", "v1", b'{"schemaVersion": 2, "layers": "no"}',
                                "application/vnd.oci.image.manifest.v1+json")
    assert caught.value.media_type == "application/vnd.oci.image.manifest.v1+json"
    assert "MANIFEST_INVALID" in repr(caught.value.__cause__.codes)  # type: ignore[union-attr]


@pytest.mark.interop
def test_skopeo_and_the_client_read_each_others_pushes(registry, plain_options, skopeo, test_images, tmp_path) -> None:
    image = test_images.multi_layer
    name = f"interop/{secrets.token_hex(4)}"
    with RegistryClient(registry.host, plain_options) as client:
        for blob in image.blobs():
            client.push_blob(name, io.BytesIO(blob.data), digest=Digest.parse(blob.digest), size=blob.size,
                             chunk_size=64 * 1024)
        client.put_manifest(name, "ours", image.manifest.data, image.manifest.media_type)
    inspected = subprocess.run([skopeo, "inspect", "--tls-verify=false", f"docker://{registry.host}/{name}:ours"],
                               capture_output=True, text=True, timeout=120)
    assert inspected.returncode == 0, inspected.stderr
    assert json.loads(inspected.stdout)["Digest"] == image.digest

    source = f"interop/{secrets.token_hex(4)}"
    push_image(registry, source, test_images.docker_schema2, "v1")
    copied = subprocess.run([skopeo, "copy", "--src-tls-verify=false", "--dest-tls-verify=false",
                             f"docker://{registry.host}/{source}:v1", f"docker://{registry.host}/{name}:theirs"],
                            capture_output=True, text=True, timeout=120)
    assert copied.returncode == 0, copied.stderr
    with RegistryClient(registry.host, plain_options) as client:
        fetched = client.get_manifest(name, "theirs")
        assert str(fetched.digest) == test_images.docker_schema2.digest
        layer = test_images.docker_schema2.layers[0]
        with client.get_blob(name, Digest.parse(layer.digest)) as stream:
            assert stream.read() == layer.data


def test_a_client_for_a_reference_uses_its_registry(registry, plain_options) -> None:
    ref = parse_normalized(f"{registry.host}/wiring/by-ref:v1")
    with RegistryClient.for_reference(ref, plain_options) as client:
        client.ping()
        assert client.host == registry.host
    with pytest.raises(ValueError, match="names no registry"):
        from pallet.oci.reference import parse

        RegistryClient.for_reference(parse("busybox"), plain_options)
