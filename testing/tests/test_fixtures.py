"""The shared test support works against the real registry and the real skopeo."""

from __future__ import annotations

import json
import subprocess
import tarfile
import io
import gzip

import pytest
import zstandard

from pallet_testing import images
from pallet_testing.push import push_image
from pallet_testing.registry import RegistryServer
from pallet_testing.users import RootlessUser


def test_plain_registry_answers_the_distribution_api(registry: RegistryServer) -> None:
    status, headers, _ = registry.request("GET", "/v2/")
    assert status == 200
    assert headers["docker-distribution-api-version"] == "registry/2.0"
    assert registry.host.startswith("127.0.0.1:")


def test_tls_registry_wants_basic_auth_and_verifies_with_its_ca(tls_registry: RegistryServer) -> None:
    assert tls_registry.url.startswith("https://")
    status, headers, _ = tls_registry.request("GET", "/v2/", auth=False)
    assert status == 401
    assert headers["www-authenticate"].startswith("Basic ")
    status, _, _ = tls_registry.request("GET", "/v2/")
    assert status == 200
    assert (tls_registry.cert_dir / "ca.crt").read_bytes() == tls_registry.certificate.ca_cert.read_bytes()


def test_images_are_deterministic() -> None:
    first, second = images.multi_layer(), images.multi_layer()
    assert first.manifest.data == second.manifest.data
    assert images.two_platform_index().digest == images.two_platform_index().digest


def test_layers_decompress_to_their_diff_ids(test_images) -> None:
    gz = test_images.single_layer.layers[0]
    zs = test_images.single_layer_zstd.layers[0]
    assert images.sha256(gzip.decompress(gz.data)) == gz.diff_id
    assert images.sha256(zstandard.ZstdDecompressor().decompressobj().decompress(zs.data)) == zs.diff_id
    assert gz.diff_id == zs.diff_id
    names = tarfile.open(fileobj=io.BytesIO(gzip.decompress(gz.data))).getnames()
    assert "bin/busybox" in names and "bin/sh" in names
    whiteouts = tarfile.open(fileobj=io.BytesIO(gzip.decompress(test_images.multi_layer.layers[2].data))).getnames()
    assert "srv/.wh.data" in whiteouts and "opt/app/.wh..wh..opq" in whiteouts


def test_pushed_images_read_back_byte_for_byte(registry: RegistryServer, test_images) -> None:
    for repo, image in [("fixtures/single", test_images.single_layer), ("fixtures/docker", test_images.docker_schema2),
                        ("fixtures/index", test_images.two_platform_index)]:
        push_image(registry, repo, image, "v1")
        status, headers, body = registry.request(
            "GET", f"/v2/{repo}/manifests/v1", headers={"Accept": image.manifest.media_type})
        assert status == 200
        assert body == image.manifest.data
        assert headers["docker-content-digest"] == image.digest


@pytest.mark.interop
def test_skopeo_reads_the_pushed_images(registry: RegistryServer, tls_registry: RegistryServer, skopeo: str, test_images) -> None:
    push_image(registry, "fixtures/zstd", test_images.single_layer_zstd, "v1")
    out = subprocess.run([skopeo, "inspect", "--tls-verify=false", f"docker://{registry.host}/fixtures/zstd:v1"],
                         capture_output=True, text=True, check=True)
    inspected = json.loads(out.stdout)
    assert inspected["Digest"] == test_images.single_layer_zstd.digest
    assert inspected["Layers"] == [layer.digest for layer in test_images.single_layer_zstd.layers]

    push_image(tls_registry, "fixtures/multi", test_images.multi_layer, "v1")
    out = subprocess.run([skopeo, "inspect", "--cert-dir", str(tls_registry.cert_dir), "--creds", tls_registry.creds,
                          f"docker://{tls_registry.host}/fixtures/multi:v1"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["Digest"] == test_images.multi_layer.digest
    # without the CA, TLS verification must fail
    out = subprocess.run([skopeo, "inspect", "--creds", tls_registry.creds, f"docker://{tls_registry.host}/fixtures/multi:v1"],
                         capture_output=True, text=True)
    assert out.returncode != 0
    assert "certificate" in out.stderr


@pytest.mark.rootless
def test_rootless_user_has_subordinate_ids_and_a_runtime_dir(rootless_user: RootlessUser) -> None:
    result = rootless_user.run(["sh", "-c", "id -u; echo $XDG_RUNTIME_DIR; test -O $XDG_RUNTIME_DIR && echo owned"])
    uid, runtime_dir, owned = result.stdout.decode().split()
    assert int(uid) == rootless_user.uid != 0
    assert runtime_dir == str(rootless_user.runtime_dir) and owned == "owned"
    for path in ("/etc/subuid", "/etc/subgid"):
        ranges = [line.split(":") for line in open(path).read().splitlines()]
        assert any(name == rootless_user.name and int(count) >= 65536 for name, _, count in ranges)
