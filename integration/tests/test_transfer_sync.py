"""pallet-transfer sync beside skopeo sync 1.9.3 (issue 3, point 1: sync).

The source is ``sync/busybox`` in the plain registry with three tags of
three different small images (v1 OCI one layer, v2 OCI two layers, v3 Docker
schema2), so a wrong tag-to-image pairing shows. Destinations are checked
with plain HTTP (tags and digests) or with skopeo (``dir:``), and for the
same input the result of our sync must equal skopeo sync's.

The tags of ``sync/busybox`` share no blob, so that a wrong pairing shows;
``sync/layered`` (below) has tags that share their base layer: pallet-transfer
sync copies images concurrently, and concurrent pushes of one blob into one
repository make distribution 2.8 lose the blob now and then, which the copies'
shared BlobGate prevents.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pallet_testing.images import DOCKER_LAYER_GZIP, Entry, TestImage, make_image, make_layer
from pallet_testing.push import push_image
from pallet_testing.registry import RegistryServer

pytestmark = pytest.mark.interop

def tag_image(tag: str, layers: int = 1, *, docker: bool = False) -> TestImage:
    """A small image of its own for ``tag``: no blob in common with any other tag."""
    made = tuple(
        make_layer([Entry("etc", "dir"), Entry(f"etc/release-{n}", data=f"{tag} layer {n}\n".encode())], "gzip",
                   media_type=DOCKER_LAYER_GZIP if docker else None)
        for n in range(layers)
    )
    return make_image(made, docker=docker, labels={"org.pallet.test": tag})


@pytest.fixture(scope="session")
def source_repo(registry: RegistryServer) -> dict[str, str]:
    """Push ``sync/busybox:v1..v3``; tag -> manifest digest."""
    digests = {}
    for tag, image in {"v1": tag_image("v1"), "v2": tag_image("v2", 2), "v3": tag_image("v3", docker=True)}.items():
        push_image(registry, "sync/busybox", image, tag)
        digests[tag] = image.digest
    return digests


def tags_and_digests(registry: RegistryServer, repository: str, registry_digest) -> dict[str, str]:
    """tag -> digest of ``repository``; empty when the registry does not know it."""
    status, _, body = registry.request("GET", f"/v2/{repository}/tags/list")
    if status == 404:
        return {}
    assert status == 200, (status, body)
    return {tag: registry_digest(registry, repository, tag) for tag in json.loads(body)["tags"] or []}


def image_dirs(root: Path) -> dict[str, dict[str, bytes]]:
    """Every image directory below ``root`` (relative path -> its files), as sync --dest dir writes them."""
    return {
        manifest.parent.relative_to(root).as_posix(): {
            f.name: (f.read_bytes() if f.name in ("manifest.json", "version") else b"") for f in manifest.parent.iterdir()
        }
        for manifest in root.rglob("manifest.json")
    }


def sync(tool, *args: str, check: bool = True):
    return tool("sync", *args, check=check)


# --- registry to registry ---------------------------------------------------------------------------

def test_sync_all_tags_registry_to_registry(source_repo, registry: RegistryServer, pallet_transfer, skopeo_cli,
                                            registry_digest) -> None:
    source = f"{registry.host}/sync/busybox"
    result = sync(pallet_transfer, "--src", "docker", "--dest", "docker", "--src-tls-verify=false",
                  "--dest-tls-verify=false", source, f"{registry.host}/all-pallet")
    assert result.err_lines[-1] == "Synced 3 images from 1 sources"
    ours = tags_and_digests(registry, "all-pallet/busybox", registry_digest)
    assert ours == source_repo

    sync(skopeo_cli, "--src", "docker", "--dest", "docker", "--src-tls-verify=false", "--dest-tls-verify=false",
         source, f"{registry.host}/all-skopeo")
    assert ours == tags_and_digests(registry, "all-skopeo/busybox", registry_digest)


def test_sync_a_single_tag(source_repo, registry: RegistryServer, pallet_transfer, skopeo_cli, registry_digest) -> None:
    source = f"{registry.host}/sync/busybox:v2"
    sync(pallet_transfer, "--src", "docker", "--dest", "docker", "--src-tls-verify=false", "--dest-tls-verify=false",
         source, f"{registry.host}/one-pallet")
    ours = tags_and_digests(registry, "one-pallet/busybox", registry_digest)
    assert ours == {"v2": source_repo["v2"]}
    sync(skopeo_cli, "--src", "docker", "--dest", "docker", "--src-tls-verify=false", "--dest-tls-verify=false",
         source, f"{registry.host}/one-skopeo")
    assert ours == tags_and_digests(registry, "one-skopeo/busybox", registry_digest)


def test_concurrent_sync_of_tags_sharing_a_base_layer_leaves_every_blob(registry: RegistryServer, pallet_transfer,
                                                                         registry_digest) -> None:
    base = make_layer([Entry("base", "dir"), Entry("base/os-release", data=b"ID=pallet\n" * 4096)], "gzip")
    tags = {}
    for n in range(6):
        own = make_layer([Entry(f"app-{n}", data=f"app {n}\n".encode())], "gzip")
        image = make_image((base, own), labels={"org.pallet.test": f"t{n}"})
        push_image(registry, "sync/layered", image, f"t{n}")
        tags[f"t{n}"] = image
    for attempt in range(3):  # the race it guards against shows in about one run of three without the gate
        destination = f"layered-{attempt}"
        result = sync(pallet_transfer, "--src", "docker", "--dest", "docker", "--src-tls-verify=false",
                      "--dest-tls-verify=false", "--parallel-images", "6", f"{registry.host}/sync/layered",
                      f"{registry.host}/{destination}")
        assert result.err_lines[-1] == "Synced 6 images from 1 sources"
        assert tags_and_digests(registry, f"{destination}/layered", registry_digest) == {
            tag: image.digest for tag, image in tags.items()}
        for tag, image in tags.items():  # every blob of every tag is served by the destination repository
            for blob in image.blobs():
                status, _, _ = registry.request("HEAD", f"/v2/{destination}/layered/blobs/{blob.digest}")
                assert status == 200, (attempt, tag, blob.digest, status)


# --- registry to dir and back -----------------------------------------------------------------------

def test_sync_registry_to_dir_as_skopeo_lays_it_out(source_repo, registry: RegistryServer, tmp_path: Path,
                                                    pallet_transfer, skopeo_cli) -> None:
    source = f"{registry.host}/sync/busybox"
    sync(pallet_transfer, "--src", "docker", "--dest", "dir", "--src-tls-verify=false", source, str(tmp_path / "ours"))
    ours = image_dirs(tmp_path / "ours")
    assert sorted(ours) == ["busybox:v1", "busybox:v2", "busybox:v3"]
    for tag, digest in source_repo.items():
        assert skopeo_cli.json("inspect", f"dir:{tmp_path / 'ours' / f'busybox:{tag}'}")["Digest"] == digest

    sync(skopeo_cli, "--src", "docker", "--dest", "dir", "--src-tls-verify=false", source, str(tmp_path / "theirs"))
    assert ours == image_dirs(tmp_path / "theirs")  # same names, same files, same manifest bytes


def test_sync_scoped_to_dir(source_repo, registry: RegistryServer, tmp_path: Path, pallet_transfer, skopeo_cli) -> None:
    source = f"{registry.host}/sync/busybox:v2"
    sync(pallet_transfer, "--scoped", "--src", "docker", "--dest", "dir", "--src-tls-verify=false", source,
         str(tmp_path / "ours"))
    ours = image_dirs(tmp_path / "ours")
    assert sorted(ours) == [f"{registry.host}/sync/busybox:v2"]
    scoped = tmp_path / "ours" / registry.host / "sync" / "busybox:v2"
    assert skopeo_cli.json("inspect", f"dir:{scoped}")["Digest"] == source_repo["v2"]

    sync(skopeo_cli, "--scoped", "--src", "docker", "--dest", "dir", "--src-tls-verify=false", source,
         str(tmp_path / "theirs"))
    assert ours == image_dirs(tmp_path / "theirs")


def test_sync_dir_back_to_a_registry(source_repo, registry: RegistryServer, tmp_path: Path, pallet_transfer,
                                     skopeo_cli, registry_digest) -> None:
    dirs = tmp_path / "dirs"
    sync(pallet_transfer, "--src", "docker", "--dest", "dir", "--src-tls-verify=false",
         f"{registry.host}/sync/busybox", str(dirs))
    sync(pallet_transfer, "--src", "dir", "--dest", "docker", "--dest-tls-verify=false", str(dirs),
         f"{registry.host}/from-dir-pallet")
    ours = tags_and_digests(registry, "from-dir-pallet/busybox", registry_digest)
    assert ours == source_repo

    sync(skopeo_cli, "--src", "dir", "--dest", "docker", "--dest-tls-verify=false", str(dirs),
         f"{registry.host}/from-dir-skopeo")
    assert ours == tags_and_digests(registry, "from-dir-skopeo/busybox", registry_digest)


# --- a YAML source --------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def tls_app(tls_registry: RegistryServer, test_images) -> dict[str, str]:
    push_image(tls_registry, "yaml/app", test_images.single_layer_zstd, "1.0")
    push_image(tls_registry, "yaml/app", test_images.multi_layer, "2.0")
    return {"1.0": test_images.single_layer_zstd.digest, "2.0": test_images.multi_layer.digest}


def write_yaml(path: Path, registry: RegistryServer, tls_registry: RegistryServer) -> Path:
    # JSON is YAML: flow style keeps the file exact without a YAML writer
    document = {
        registry.host: {
            "tls-verify": False,
            "images": {"sync/busybox": ["v1"]},
            "images-by-tag-regex": {"sync/busybox": "^v[23]$"},
        },
        tls_registry.host: {
            "cert-dir": str(tls_registry.cert_dir),
            "credentials": {"username": tls_registry.username, "password": tls_registry.password},
            "images": {"yaml/app": []},
        },
    }
    path.write_text(json.dumps(document, indent=2))
    return path


def test_sync_from_yaml(source_repo, tls_app, registry: RegistryServer, tls_registry: RegistryServer, tmp_path: Path,
                        pallet_transfer, skopeo_cli, registry_digest) -> None:
    config = write_yaml(tmp_path / "sync.yaml", registry, tls_registry)
    result = sync(pallet_transfer, "--src", "yaml", "--dest", "docker", "--dest-tls-verify=false", str(config),
                  f"{registry.host}/from-yaml-pallet")
    assert tls_registry.password not in result.out + result.err
    ours = {repo: tags_and_digests(registry, f"from-yaml-pallet/{repo}", registry_digest) for repo in ("busybox", "app")}
    assert ours == {"busybox": source_repo, "app": tls_app}

    sync(skopeo_cli, "--src", "yaml", "--dest", "docker", "--dest-tls-verify=false", str(config),
         f"{registry.host}/from-yaml-skopeo")
    theirs = {repo: tags_and_digests(registry, f"from-yaml-skopeo/{repo}", registry_digest) for repo in ("busybox", "app")}
    assert ours == theirs


# --- --dry-run and --keep-going ---------------------------------------------------------------------

def test_dry_run_copies_nothing(source_repo, registry: RegistryServer, tmp_path: Path, pallet_transfer,
                                registry_digest) -> None:
    source = f"{registry.host}/sync/busybox"
    to_registry = sync(pallet_transfer, "--dry-run", "--src", "docker", "--dest", "docker", "--src-tls-verify=false",
                       "--dest-tls-verify=false", source, f"{registry.host}/dry")
    assert [line for line in to_registry.err_lines if line.startswith("Would have copied image ref ")] == [
        f"Would have copied image ref {n}/3 from=docker://{source}:v{n} to=docker://{registry.host}/dry/busybox:v{n}"
        for n in (1, 2, 3)]
    assert to_registry.err_lines[-1] == "Would have synced 3 images from 1 sources"
    assert tags_and_digests(registry, "dry/busybox", registry_digest) == {}

    sync(pallet_transfer, "--dry-run", "--src", "docker", "--dest", "dir", "--src-tls-verify=false", source,
         str(tmp_path / "dirs"))
    assert not (tmp_path / "dirs").exists() or image_dirs(tmp_path / "dirs") == {}


def test_keep_going_copies_the_others_and_exits_1(source_repo, registry: RegistryServer, tmp_path: Path,
                                                  pallet_transfer, skopeo_cli, registry_digest) -> None:
    config = tmp_path / "sync.yaml"
    config.write_text(json.dumps({registry.host: {"tls-verify": False, "images": {"sync/busybox": ["v1", "missing", "v3"]}}}))
    result = sync(pallet_transfer, "--keep-going", "--src", "yaml", "--dest", "docker", "--dest-tls-verify=false",
                  str(config), f"{registry.host}/keep-going-pallet", check=False)
    assert result.returncode == 1, result.describe()
    assert result.err_lines[-1].startswith("Error: ")
    assert any("missing" in line and "manifest unknown" in line for line in result.err_lines)
    ours = tags_and_digests(registry, "keep-going-pallet/busybox", registry_digest)
    assert ours == {"v1": source_repo["v1"], "v3": source_repo["v3"]}

    theirs = sync(skopeo_cli, "--keep-going", "--src", "yaml", "--dest", "docker", "--dest-tls-verify=false",
                  str(config), f"{registry.host}/keep-going-skopeo", check=False)
    assert theirs.returncode == 1
    assert ours == tags_and_digests(registry, "keep-going-skopeo/busybox", registry_digest)


def test_without_keep_going_a_missing_image_fails_the_sync(source_repo, registry: RegistryServer, tmp_path: Path,
                                                           pallet_transfer) -> None:
    config = tmp_path / "sync.yaml"
    config.write_text(json.dumps({registry.host: {"tls-verify": False, "images": {"sync/busybox": ["missing"]}}}))
    result = sync(pallet_transfer, "--src", "yaml", "--dest", "docker", "--dest-tls-verify=false",
                  str(config), f"{registry.host}/no-keep-going", check=False)
    assert result.returncode != 0, result.describe()
    assert result.err_lines[-1].startswith("Error: ") and "manifest unknown" in result.err_lines[-1]
