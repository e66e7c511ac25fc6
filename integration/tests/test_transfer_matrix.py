"""pallet-transfer copy between every pair of transports, checked by the real skopeo (issue 3, point 1).

The transports are docker (the plain registry), oci, oci-archive, dir and
docker-archive. Each source is made by pallet-transfer itself from the
registry image (the ~1 MB single-layer busybox), once per session and
worker. Every copy is checked twice: by skopeo (config digest, layer list,
diff_ids; a registry destination is also copied back out to ``oci:`` by
skopeo) and by ``pallet-transfer inspect``, whose Digest and Layers must be
skopeo's. Then the other way round: what skopeo writes, pallet-transfer
reads and pushes. Plus ``--all`` of an index, gzip to zstd, Docker schema2 to
OCI, ``--preserve-digests`` refusing a change, and the TLS registry with
basic auth on either side.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pallet_testing.images import TestImage
from pallet_testing.push import push_image
from pallet_testing.registry import RegistryServer

pytestmark = pytest.mark.interop

TRANSPORTS = ("docker", "oci", "oci-archive", "dir", "docker-archive")
LOCAL = TRANSPORTS[1:]
GZIP_TYPES = ("application/vnd.oci.image.layer.v1.tar+gzip", "application/vnd.docker.image.rootfs.diff.tar.gzip")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


# --- references and flags ---------------------------------------------------------------------

def local_reference(kind: str, base: Path, name: str) -> str:
    if kind == "oci":
        return f"oci:{base / name}:v1"
    if kind == "oci-archive":
        return f"oci-archive:{base / name}.oci.tar:v1"
    if kind == "dir":
        return f"dir:{base / name}"
    if kind == "docker-archive":
        return f"docker-archive:{base / name}.docker.tar:transfer/busybox:v1"
    raise ValueError(kind)


def tls_off(kind: str, side: str) -> list[str]:
    """``--src-tls-verify=false`` (or dest) when that side is the plain-HTTP registry."""
    return [f"--{side}-tls-verify=false"] if kind == "docker" else []


def inspect_flags(reference: str) -> list[str]:
    return ["--tls-verify=false"] if reference.startswith("docker://") else []


@dataclass(frozen=True)
class SkopeoView:
    """What skopeo sees of one image: ``inspect``, ``inspect --raw`` and ``inspect --config``."""

    inspect: dict[str, Any]
    manifest: dict[str, Any]
    config: dict[str, Any]

    @property
    def digest(self) -> str:
        return str(self.inspect["Digest"])

    @property
    def layers(self) -> list[str]:
        return list(self.inspect["Layers"])

    @property
    def layer_media_types(self) -> list[str]:
        return [layer["mediaType"] for layer in self.manifest["layers"]]

    @property
    def config_digest(self) -> str:
        return str(self.manifest["config"]["digest"])

    @property
    def diff_ids(self) -> list[str]:
        return list(self.config["rootfs"]["diff_ids"])


def skopeo_view(skopeo_cli, reference: str, *extra: str) -> SkopeoView:
    flags = [*extra, *inspect_flags(reference)]
    return SkopeoView(
        skopeo_cli.json("inspect", *flags, reference),
        skopeo_cli.json("inspect", "--raw", *flags, reference),
        skopeo_cli.json("inspect", "--config", *flags, reference),
    )


def pallet_agrees_with_skopeo(pallet_transfer, reference: str, seen: SkopeoView) -> None:
    ours = pallet_transfer.json("inspect", *inspect_flags(reference), reference)
    assert ours["Layers"] == seen.layers
    assert ours["Digest"] == seen.digest, f"Digest of {reference}: pallet-transfer {ours['Digest']} != skopeo {seen.digest}"


# --- prepared sources (once per session and worker) ---------------------------------------------

@dataclass(frozen=True)
class Sources:
    image: TestImage
    references: dict[str, str]  # transport -> reference


@pytest.fixture(scope="session")
def registry_image(registry: RegistryServer, test_images) -> str:
    push_image(registry, "matrix/busybox", test_images.single_layer, "v1")
    return f"docker://{registry.host}/matrix/busybox:v1"


@pytest.fixture(scope="session")
def pallet_sources(registry_image: str, tmp_path_factory, pallet_transfer, test_images) -> Sources:
    """The registry image copied by pallet-transfer into every local transport."""
    base = tmp_path_factory.mktemp("pallet-sources")
    references = {"docker": registry_image}
    for kind in LOCAL:
        references[kind] = local_reference(kind, base, f"src-{kind}")
        pallet_transfer("copy", "--quiet", "--src-tls-verify=false", registry_image, references[kind])
    return Sources(test_images.single_layer, references)


@pytest.fixture(scope="session")
def skopeo_sources(registry_image: str, tmp_path_factory, skopeo_cli, test_images) -> Sources:
    """The registry image copied by skopeo into every local transport."""
    base = tmp_path_factory.mktemp("skopeo-sources")
    references = {}
    for kind in LOCAL:
        references[kind] = local_reference(kind, base, f"skopeo-{kind}")
        skopeo_cli("copy", "--quiet", "--src-tls-verify=false", registry_image, references[kind])
    return Sources(test_images.single_layer, references)


# --- the 20 ordered pairs -------------------------------------------------------------------------

PAIRS = [pytest.param(s, d, id=f"{s}-to-{d}") for s in TRANSPORTS for d in TRANSPORTS if s != d]


def check_layers(source: str, destination: str, seen: SkopeoView, image: TestImage) -> None:
    """The layers skopeo 1.9.3 would leave at ``destination`` for an image from ``source``."""
    compressed = [layer.digest for layer in image.layers]
    uncompressed = [layer.diff_id for layer in image.layers]
    if destination == "docker-archive":  # docker save holds uncompressed layers
        assert seen.layers == uncompressed
    elif source == "docker-archive" and destination == "dir":  # dir: keeps what comes
        assert seen.layers == uncompressed
    elif source == "docker-archive":  # oci, oci-archive and registries get the archive's layers compressed
        assert all(media_type in GZIP_TYPES for media_type in seen.layer_media_types), seen.layer_media_types
        assert len(seen.layers) == len(uncompressed) and not set(seen.layers) & set(uncompressed), seen.layers
    else:  # the registry's gzip layer, byte for byte
        assert seen.layers == compressed


@pytest.mark.parametrize(("source", "destination"), PAIRS)
def test_copy_between_transports(source: str, destination: str, pallet_sources: Sources, registry: RegistryServer,
                                 tmp_path: Path, pallet_transfer, skopeo_cli) -> None:
    image = pallet_sources.image
    if destination == "docker":
        target = f"docker://{registry.host}/matrix/from-{source}:v1"
    else:
        target = local_reference(destination, tmp_path, "copy")
    pallet_transfer("copy", "--quiet", *tls_off(source, "src"), *tls_off(destination, "dest"),
                    pallet_sources.references[source], target)

    seen = skopeo_view(skopeo_cli, target)
    assert seen.config_digest == image.config.digest  # the config travels byte for byte
    assert seen.diff_ids == [layer.diff_id for layer in image.layers]
    assert (seen.inspect["Architecture"], seen.inspect["Os"], seen.inspect["Labels"]) == ("amd64", "linux", {"org.pallet.test": "yes"})
    check_layers(source, destination, seen, image)
    if destination == "docker":  # skopeo copies it back out and finds the same image
        back = f"oci:{tmp_path / 'back'}:v1"
        skopeo_cli("copy", "--quiet", "--src-tls-verify=false", target, back)
        out = skopeo_view(skopeo_cli, back)
        assert out.layers == seen.layers
        assert out.diff_ids == seen.diff_ids
        if seen.manifest["mediaType"] == OCI_MANIFEST:  # not converted on the way out: the same manifest
            assert out.digest == seen.digest
            assert out.config_digest == seen.config_digest
    pallet_agrees_with_skopeo(pallet_transfer, target, seen)


# --- what skopeo writes, pallet-transfer reads and pushes -----------------------------------------

@pytest.mark.parametrize("kind", LOCAL)
def test_pallet_reads_and_pushes_what_skopeo_wrote(kind: str, skopeo_sources: Sources, registry: RegistryServer,
                                                    pallet_transfer, skopeo_cli) -> None:
    image = skopeo_sources.image
    reference = skopeo_sources.references[kind]
    target = f"docker://{registry.host}/matrix/from-skopeo-{kind}:v1"
    pallet_transfer("copy", "--quiet", "--dest-tls-verify=false", reference, target)

    seen = skopeo_view(skopeo_cli, target)
    assert seen.config_digest == image.config.digest
    assert seen.diff_ids == [layer.diff_id for layer in image.layers]
    check_layers(kind, "docker", seen, image)
    pallet_agrees_with_skopeo(pallet_transfer, reference, skopeo_view(skopeo_cli, reference))


# --- an index with --all --------------------------------------------------------------------------

@pytest.fixture(scope="session")
def index_in_registry(registry: RegistryServer, test_images) -> str:
    push_image(registry, "matrix/index", test_images.two_platform_index, "v1")
    return f"docker://{registry.host}/matrix/index:v1"


def test_copy_all_of_an_index_registry_to_registry(index_in_registry: str, registry: RegistryServer, test_images,
                                                  pallet_transfer, skopeo_cli, registry_digest) -> None:
    index = test_images.two_platform_index
    target = f"docker://{registry.host}/matrix/index-copy:v1"
    pallet_transfer("copy", "--all", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false",
                    index_in_registry, target)
    assert skopeo_cli("inspect", "--raw", "--tls-verify=false", target).raw == index.index.data
    for child in index.images:
        by_digest = f"docker://{registry.host}/matrix/index-copy@{child.digest}"
        assert skopeo_cli("inspect", "--raw", "--tls-verify=false", by_digest).raw == child.manifest.data
        arch = child.platform["architecture"]
        theirs = skopeo_cli.json("--override-arch", arch, "inspect", "--tls-verify=false", target)
        assert theirs["Layers"] == [layer.digest for layer in child.layers]
        ours = pallet_transfer.json("--override-arch", arch, "inspect", "--tls-verify=false", target)
        assert ours == theirs
        for blob in child.blobs():
            status, _, _ = registry.request("HEAD", f"/v2/matrix/index-copy/blobs/{blob.digest}")
            assert status == 200, blob
    assert registry_digest(registry, "matrix/index-copy", "v1") == index.digest


def test_copy_all_of_an_index_registry_to_oci(index_in_registry: str, tmp_path: Path, test_images,
                                             pallet_transfer, skopeo_cli) -> None:
    index = test_images.two_platform_index
    layout = tmp_path / "layout"
    pallet_transfer("copy", "--all", "--quiet", "--src-tls-verify=false", index_in_registry, f"oci:{layout}:v1")
    top = json.loads((layout / "index.json").read_text())
    assert [(m["digest"], m["annotations"]["org.opencontainers.image.ref.name"]) for m in top["manifests"]] == [
        (index.digest, "v1")]
    assert skopeo_cli("inspect", "--raw", f"oci:{layout}:v1").raw == index.index.data
    blobs = layout / "blobs" / "sha256"
    for child in index.images:
        assert (blobs / child.digest.split(":")[1]).read_bytes() == child.manifest.data
        for blob in child.blobs():
            assert (blobs / blob.digest.split(":")[1]).read_bytes() == blob.data
        arch = child.platform["architecture"]
        theirs = skopeo_cli.json("--override-arch", arch, "inspect", f"oci:{layout}:v1")
        assert theirs["Layers"] == [layer.digest for layer in child.layers]
        assert pallet_transfer.json("--override-arch", arch, "inspect", f"oci:{layout}:v1") == theirs


def test_copy_all_prints_skopeos_lines(index_in_registry: str, tmp_path: Path, pallet_transfer, skopeo_cli) -> None:
    """Without --quiet: skopeo's progress lines (instances may be copied in parallel: compared as a multiset)."""
    ours = pallet_transfer("copy", "--all", "--src-tls-verify=false", index_in_registry, f"oci:{tmp_path / 'ours'}:v1")
    theirs = skopeo_cli("copy", "--all", "--src-tls-verify=false", index_in_registry, f"oci:{tmp_path / 'theirs'}:v1")
    assert sorted(ours.out.splitlines()) == sorted(theirs.out.splitlines())
    assert ours.out.splitlines()[-2:] == ["Writing manifest list to image destination", "Storing list signatures"]


# --- conversions ----------------------------------------------------------------------------------

def test_gzip_to_zstd(registry_image: str, registry: RegistryServer, test_images, pallet_transfer, skopeo_cli) -> None:
    image = test_images.single_layer
    target = f"docker://{registry.host}/matrix/zstd:v1"
    pallet_transfer("copy", "--quiet", "--dest-compress-format", "zstd", "--src-tls-verify=false",
                    "--dest-tls-verify=false", registry_image, target)
    seen = skopeo_view(skopeo_cli, target)
    assert seen.layer_media_types == ["application/vnd.oci.image.layer.v1.tar+zstd"]
    assert seen.diff_ids == [layer.diff_id for layer in image.layers]  # the content is unchanged
    assert seen.config_digest == image.config.digest
    status, _, blob = registry.request("GET", f"/v2/matrix/zstd/blobs/{seen.layers[0]}")
    assert status == 200 and blob[:4] == b"\x28\xb5\x2f\xfd"  # the zstd frame magic
    pallet_agrees_with_skopeo(pallet_transfer, target, seen)


def test_docker_schema2_to_oci(registry: RegistryServer, test_images, pallet_transfer, skopeo_cli) -> None:
    image = test_images.docker_schema2
    push_image(registry, "matrix/schema2", image, "v1")
    target = f"docker://{registry.host}/matrix/schema2-as-oci:v1"
    pallet_transfer("copy", "--quiet", "--format", "oci", "--src-tls-verify=false", "--dest-tls-verify=false",
                    f"docker://{registry.host}/matrix/schema2:v1", target)
    seen = skopeo_view(skopeo_cli, target)
    assert seen.manifest["mediaType"] == OCI_MANIFEST
    assert seen.manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    assert seen.layer_media_types == ["application/vnd.oci.image.layer.v1.tar+gzip"]
    assert seen.layers == [layer.digest for layer in image.layers]  # the gzip blobs are reused
    assert seen.diff_ids == [layer.diff_id for layer in image.layers]
    status, headers, _ = registry.request("HEAD", "/v2/matrix/schema2-as-oci/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert status == 200 and headers["content-type"] == OCI_MANIFEST
    pallet_agrees_with_skopeo(pallet_transfer, target, seen)


@pytest.mark.parametrize(("flags", "image_name"), [
    pytest.param(("--format", "oci"), "docker_schema2", id="schema2-to-oci"),
    pytest.param(("--dest-compress-format", "zstd"), "single_layer", id="gzip-to-zstd"),
])
def test_preserve_digests_refuses_a_change(flags: tuple[str, ...], image_name: str, registry: RegistryServer,
                                           test_images, pallet_transfer, registry_digest) -> None:
    repository = f"matrix/preserve-{image_name}"
    push_image(registry, repository, getattr(test_images, image_name), "v1")
    result = pallet_transfer("copy", "--quiet", "--preserve-digests", *flags, "--src-tls-verify=false",
                             "--dest-tls-verify=false", f"docker://{registry.host}/{repository}:v1",
                             f"docker://{registry.host}/{repository}-copy:v1", check=False)
    assert result.returncode != 0, result.describe()
    assert len(result.err_lines) == 1 and result.err_lines[0].startswith("Error: "), result.err
    assert "digest" in result.err
    assert registry_digest(registry, f"{repository}-copy", "v1") is None


# --- the TLS registry with basic auth -------------------------------------------------------------

@pytest.fixture(scope="session")
def tls_image(tls_registry: RegistryServer, test_images) -> str:
    push_image(tls_registry, "matrix/busybox", test_images.single_layer, "v1")
    return f"docker://{tls_registry.host}/matrix/busybox:v1"


def test_tls_registry_with_auth_as_source(tls_image: str, tls_registry: RegistryServer, tmp_path: Path, test_images,
                                         pallet_transfer, skopeo_cli) -> None:
    target = f"oci:{tmp_path / 'layout'}:v1"
    pallet_transfer("copy", "--quiet", "--src-cert-dir", str(tls_registry.cert_dir), "--src-creds", tls_registry.creds,
                    tls_image, target)
    seen = skopeo_cli.json("inspect", target)
    assert seen["Digest"] == test_images.single_layer.digest
    assert seen["Layers"] == [layer.digest for layer in test_images.single_layer.layers]


def test_tls_registry_with_auth_as_destination(registry_image: str, tls_registry: RegistryServer, test_images,
                                              pallet_transfer, skopeo_cli) -> None:
    target = f"docker://{tls_registry.host}/matrix/pushed:v1"
    pallet_transfer("copy", "--quiet", "--src-tls-verify=false", "--dest-cert-dir", str(tls_registry.cert_dir),
                    "--dest-creds", tls_registry.creds, registry_image, target)
    seen = skopeo_cli.json("inspect", "--cert-dir", str(tls_registry.cert_dir), "--creds", tls_registry.creds, target)
    assert seen["Digest"] == test_images.single_layer.digest
    ours = pallet_transfer.json("inspect", "--cert-dir", str(tls_registry.cert_dir), "--creds", tls_registry.creds, target)
    assert ours == seen


@pytest.mark.parametrize("side", ["src", "dest"])
def test_tls_registry_without_the_ca_is_a_certificate_error(side: str, tls_image: str, registry_image: str,
                                                           tls_registry: RegistryServer, tmp_path: Path,
                                                           pallet_transfer, registry_digest) -> None:
    if side == "src":
        args = ["--src-creds", tls_registry.creds, tls_image, f"oci:{tmp_path / 'layout'}:v1"]
    else:
        args = ["--src-tls-verify=false", "--dest-creds", tls_registry.creds, registry_image,
                f"docker://{tls_registry.host}/matrix/no-ca:v1"]
    result = pallet_transfer("copy", "--quiet", *args, check=False)
    assert result.returncode == 1, result.describe()
    assert len(result.err_lines) == 1 and result.err_lines[0].startswith("Error: "), result.err
    assert "certificate" in result.err
    assert not (tmp_path / "layout" / "index.json").exists()
    assert registry_digest(tls_registry, "matrix/no-ca", "v1") is None
