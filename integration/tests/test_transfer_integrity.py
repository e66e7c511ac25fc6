"""pallet-transfer copy against a registry that misbehaves: nothing wrong is ever stored.

The real CLI copies through ``pallet_testing.faulty_proxy`` in front of the
fixture registries: in front of the source (corrupt, truncated or cut blobs,
manifests that are not what was asked for) and in front of the destination
for pushes from an ``oci:`` layout (uploads answered 500 on their PATCH or
final PUT). Each lasting fault must end the command with exit status 1 and
one ``Error:`` line naming the problem; a fault that happens once must be
overcome by ``--retry-times 2`` (or by resuming the download). Whatever
failed, the destination shows no image under the target tag, and no
manifest it holds points at a blob it lacks; ``oci:`` and ``dir:``
destinations keep no reference, no ``manifest.json`` and no partial blob.

Destination registries are fresh for each test, so an upload is never
skipped because an earlier test left the blob there.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from pallet_testing import images
from pallet_testing.faulty_proxy import Fault, FaultyProxy
from pallet_testing.images import TestImage, TestIndex
from pallet_testing.push import push_image
from pallet_testing.registry import RegistryServer

PALLET_TRANSFER = Path(sys.executable).parent / "pallet-transfer"
SOURCE_REPOSITORY = "integrity/app"
INDEX_REPOSITORY = "integrity/multi"
ANY_MANIFEST = ", ".join([images.OCI_MANIFEST, images.OCI_INDEX, images.DOCKER_MANIFEST, images.DOCKER_LIST])


@pytest.fixture(scope="module")
def image(test_images) -> TestImage:
    """busybox, and 3 MiB of noise in a second layer: big enough for a download to resume (1 MiB)."""
    noise = images.make_layer([images.Entry("noise.bin", data=random.Random(3).randbytes(3 << 20))])
    return images.make_image((test_images.single_layer.layers[0], noise))


@pytest.fixture(scope="module")
def source(registry: RegistryServer, image: TestImage, test_images) -> RegistryServer:
    """The session registry, holding ``image`` as integrity/app:v1 and the two-platform index as integrity/multi:v1."""
    push_image(registry, SOURCE_REPOSITORY, image, "v1")
    push_image(registry, INDEX_REPOSITORY, test_images.two_platform_index, "v1")
    return registry


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An empty home: no auth file or registries.conf of the host is read."""
    path = tmp_path / "home"
    path.mkdir()
    return path


def transfer(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"}
    return subprocess.run([str(PALLET_TRANSFER), *args], capture_output=True, text=True, env=env, timeout=120)


def copy(home: Path, source: str, destination: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return transfer(home, "--insecure-policy", "copy", "--src-tls-verify=false", "--dest-tls-verify=false",
                    *extra, source, destination)


# --- what the user sees ------------------------------------------------------------------

def assert_failed(result: subprocess.CompletedProcess[str], problem: str, proxy: FaultyProxy | None = None) -> str:
    """Exit status 1 and exactly one ``Error:`` line on stderr, matching ``problem``; returns that line."""
    seen = "" if proxy is None else "\nrequests: " + "\n".join(f"{r.method} {r.path} {r.outcome}" for r in proxy.requests)
    assert result.returncode == 1, f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}{seen}"
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert re.search(problem, errors[0], re.IGNORECASE), f"{errors[0]!r} does not name {problem!r}"
    return errors[0]


def assert_succeeded(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, f"exit {result.returncode}\nstderr: {result.stderr}"
    assert "Error" not in result.stderr, result.stderr


def assert_fired(fault: Fault, at_least: int = 1) -> None:
    assert fault.hits >= at_least, f"the fault {fault.kind} on {fault.method} {fault.path} never fired"


# --- what the destination holds ----------------------------------------------------------

def tag_status(registry: RegistryServer, repository: str, tag: str) -> int:
    status, _, _ = registry.request("HEAD", f"/v2/{repository}/manifests/{tag}", headers={"Accept": ANY_MANIFEST})
    return status


def stored_manifests(registry: RegistryServer) -> list[tuple[str, str]]:
    """Every (repository, digest) whose manifest the registry's storage holds, tagged or not.

    The distribution API cannot list untagged manifests, so this walks the
    registry's filesystem storage (``repositories/<name>/_manifests/revisions``).
    """
    repositories = registry.root / "storage" / "docker" / "registry" / "v2" / "repositories"
    found = []
    for revisions in sorted(repositories.rglob("_manifests/revisions/sha256")):
        name = str(revisions.parent.parent.parent.relative_to(repositories))
        found += [(name, f"sha256:{entry.name}") for entry in sorted(revisions.iterdir()) if (entry / "link").exists()]
    return found


def assert_no_dangling_manifest(registry: RegistryServer) -> int:
    """Each manifest the registry holds can be read, and so can everything it points at; returns their number."""
    manifests = stored_manifests(registry)
    for repository, digest in manifests:
        status, _, body = registry.request("GET", f"/v2/{repository}/manifests/{digest}", headers={"Accept": ANY_MANIFEST})
        assert status == 200, f"{repository}@{digest}: HTTP {status}"
        assert images.sha256(body) == digest
        document = json.loads(body)
        for child in document.get("manifests", []):
            status = registry.request("HEAD", f"/v2/{repository}/manifests/{child['digest']}",
                                      headers={"Accept": ANY_MANIFEST})[0]
            assert status == 200, f"{repository}@{digest} lists the manifest {child['digest']}, which is missing"
        for blob in [document["config"], *document["layers"]] if "config" in document else []:
            status, headers, _ = registry.request("HEAD", f"/v2/{repository}/blobs/{blob['digest']}")
            assert status == 200, f"{repository}@{digest} points at the blob {blob['digest']}, which is missing"
            assert int(headers["content-length"]) == blob["size"]
    return len(manifests)


def assert_holds(registry: RegistryServer, repository: str, tag: str, image: TestImage) -> None:
    """The destination has ``image`` under ``tag``, manifest and blobs byte for byte."""
    status, headers, body = registry.request("GET", f"/v2/{repository}/manifests/{tag}", headers={"Accept": ANY_MANIFEST})
    assert status == 200
    assert images.sha256(body) == image.digest
    for blob in image.blobs():
        status, _, data = registry.request("GET", f"/v2/{repository}/blobs/{blob.digest}")
        assert status == 200 and images.sha256(data) == blob.digest
    assert_no_dangling_manifest(registry)


def assert_no_image(registry: RegistryServer, repository: str, tag: str = "v1") -> None:
    assert tag_status(registry, repository, tag) == 404
    assert_no_dangling_manifest(registry)


# --- faults of the source: registry → registry ---------------------------------------

@pytest.fixture
def source_proxy(source: RegistryServer, faulty_proxy: Callable[[RegistryServer], FaultyProxy]) -> FaultyProxy:
    return faulty_proxy(source)


@pytest.fixture
def destination(registry_factory: Callable[..., RegistryServer]) -> RegistryServer:
    return registry_factory()


def source_ref(proxy: FaultyProxy, reference: str = ":v1", repository: str = SOURCE_REPOSITORY) -> str:
    return f"docker://{proxy.host}/{repository}{reference}"


@pytest.mark.parametrize("blob", ["layer", "config"])
def test_a_blob_served_with_wrong_bytes_fails_the_copy_and_nothing_is_tagged(
    home: Path, image: TestImage, source_proxy: FaultyProxy, destination: RegistryServer, blob: str
) -> None:
    wrong = image.layers[1] if blob == "layer" else image.config
    fault = source_proxy.corrupt_blob(wrong.digest)
    result = copy(home, source_ref(source_proxy), f"docker://{destination.host}/copied/app:v1", "--retry-times", "2")
    assert_failed(result, rf"digest mismatch.*{wrong.digest}|{wrong.digest}.*digest mismatch", source_proxy)
    assert_fired(fault)
    assert_no_image(destination, "copied/app")


def test_a_blob_cut_short_every_time_fails_the_copy(
    home: Path, image: TestImage, source_proxy: FaultyProxy, destination: RegistryServer
) -> None:
    fault = source_proxy.truncate_blob(image.layers[1].digest)
    result = copy(home, source_ref(source_proxy), f"docker://{destination.host}/copied/app:v1")
    assert_failed(result, r"size mismatch|connection broken|unexpected EOF|expected \d+ bytes", source_proxy)
    assert_fired(fault)
    assert_no_image(destination, "copied/app")


def test_a_blob_cut_short_once_is_resumed_where_it_stopped(
    home: Path, image: TestImage, source_proxy: FaultyProxy, destination: RegistryServer
) -> None:
    layer = image.layers[1]
    fault = source_proxy.truncate_blob(layer.digest, times=1, at=0.8)
    result = copy(home, source_ref(source_proxy), f"docker://{destination.host}/copied/app:v1")
    assert_succeeded(result)
    assert_fired(fault)
    gets = [seen for seen in source_proxy.requests if seen.method == "GET" and seen.path.endswith(layer.digest)]
    assert [seen.headers.get("range") for seen in gets] == [None, f"bytes={int(layer.size * 0.8)}-"]
    assert_holds(destination, "copied/app", "v1", image)


@pytest.mark.parametrize("by", ["tag", "digest"])
def test_a_manifest_that_is_not_the_one_asked_for_is_refused(
    home: Path, image: TestImage, source_proxy: FaultyProxy, destination: RegistryServer, by: str
) -> None:
    fault = source_proxy.mismatch_manifest("v1" if by == "tag" else image.digest)
    reference = ":v1" if by == "tag" else f"@{image.digest}"
    result = copy(home, source_ref(source_proxy, reference), f"docker://{destination.host}/copied/app:v1",
                  "--retry-times", "2")
    assert_failed(result, r"digest mismatch", source_proxy)
    assert_fired(fault)
    assert_no_image(destination, "copied/app")


def test_a_connection_cut_every_time_fails_the_copy_despite_retries(
    home: Path, image: TestImage, source_proxy: FaultyProxy, destination: RegistryServer
) -> None:
    fault = source_proxy.cut_blob(image.layers[1].digest)
    result = copy(home, source_ref(source_proxy), f"docker://{destination.host}/copied/app:v1", "--retry-times", "2")
    assert_failed(result, r"connection (reset|broken|closed|aborted)", source_proxy)
    assert_fired(fault, at_least=3)  # the first try and two retries
    assert_no_image(destination, "copied/app")


def test_a_connection_cut_once_is_overcome_by_retrying(
    home: Path, image: TestImage, source_proxy: FaultyProxy, destination: RegistryServer
) -> None:
    fault = source_proxy.cut_blob(image.layers[1].digest, times=1, at=0.1)
    result = copy(home, source_ref(source_proxy), f"docker://{destination.host}/copied/app:v1", "--retry-times", "2")
    assert_succeeded(result)
    assert_fired(fault)
    assert_holds(destination, "copied/app", "v1", image)


def test_an_index_failing_in_its_second_image_leaves_no_tag_and_no_dangling_manifest(
    home: Path, test_images, source_proxy: FaultyProxy, destination: RegistryServer
) -> None:
    index: TestIndex = test_images.two_platform_index
    arm64 = index.images[1]
    fault = source_proxy.corrupt_blob(arm64.layers[0].digest)
    result = copy(home, source_ref(source_proxy, repository=INDEX_REPOSITORY),
                  f"docker://{destination.host}/copied/multi:v1", "--all")
    assert_failed(result, r"digest mismatch", source_proxy)
    assert_fired(fault)
    assert tag_status(destination, "copied/multi", "v1") == 404
    for repository, digest in stored_manifests(destination):
        assert digest != index.digest, "the index was stored although one of its images failed"
    assert_no_dangling_manifest(destination)


# --- faults of the destination: a push from an oci: layout -------------------------------

@pytest.fixture
def layout(tmp_path: Path, image: TestImage) -> Path:
    return images.write_oci_layout(tmp_path / "layout", {"v1": image})


@pytest.fixture
def destination_proxy(destination: RegistryServer, faulty_proxy: Callable[[RegistryServer], FaultyProxy]) -> FaultyProxy:
    return faulty_proxy(destination)


# PATCH and the final PUT without data are what an upload of a blob whose digest is only
# known at its end uses: a layer recompressed to zstd. An unchanged blob is one PUT with data.
UPLOADS = {
    "PUT-with-data": ("PUT", ()),
    "PATCH": ("PATCH", ("--dest-compress-format", "zstd")),
    "PUT-after-PATCH": ("PUT", ("--dest-compress-format", "zstd")),
}


@pytest.mark.parametrize("upload", list(UPLOADS))
def test_an_upload_answered_500_every_time_fails_the_push_and_nothing_is_tagged(
    home: Path, layout: Path, destination: RegistryServer, destination_proxy: FaultyProxy, upload: str
) -> None:
    step, extra = UPLOADS[upload]
    fault = destination_proxy.fail_upload(step)
    result = copy(home, f"oci:{layout}:v1", f"docker://{destination_proxy.host}/pushed/app:v1", *extra)
    assert_failed(result, r"uploading blob", destination_proxy)
    assert_fired(fault)
    assert_no_image(destination, "pushed/app")


def test_an_upload_answered_500_says_it_was_a_server_error(
    home: Path, layout: Path, destination_proxy: FaultyProxy
) -> None:
    fault = destination_proxy.fail_upload("PUT")
    result = copy(home, f"oci:{layout}:v1", f"docker://{destination_proxy.host}/pushed/app:v1")
    assert_fired(fault)
    assert_failed(result, r"\b500\b|server error", destination_proxy)


@pytest.mark.parametrize("upload", list(UPLOADS))
def test_an_upload_answered_500_once_is_overcome_by_retrying(
    home: Path, layout: Path, image: TestImage, destination: RegistryServer, destination_proxy: FaultyProxy, upload: str
) -> None:
    step, extra = UPLOADS[upload]
    fault = destination_proxy.fail_upload(step, times=1)
    result = copy(home, f"oci:{layout}:v1", f"docker://{destination_proxy.host}/pushed/app:v1", "--retry-times", "2",
                  *extra)
    assert_succeeded(result)
    assert_fired(fault)
    if not extra:
        assert_holds(destination, "pushed/app", "v1", image)
    else:  # recompressed: other layer digests, so only the tag and its completeness are checked
        assert tag_status(destination, "pushed/app", "v1") == 200
        assert assert_no_dangling_manifest(destination) == 1


# --- local destinations from a faulty source ---------------------------------------------

SOURCE_FAULTS: dict[str, tuple[Callable[[FaultyProxy, TestImage], Fault], str]] = {
    "corrupt-blob": (lambda proxy, image: proxy.corrupt_blob(image.layers[1].digest), r"digest mismatch"),
    "truncated-blob": (lambda proxy, image: proxy.truncate_blob(image.layers[1].digest),
                       r"size mismatch|connection broken|unexpected EOF|expected \d+ bytes"),
    "wrong-manifest": (lambda proxy, image: proxy.mismatch_manifest("v1"), r"digest mismatch"),
}


def assert_blobs_verify(root: Path) -> None:
    """Every file under ``blobs/`` hashes to its name: no partial or wrong blob was kept."""
    for path in (root / "blobs").rglob("*"):
        if path.is_file():
            assert path.parent.name == "sha256", f"unexpected file {path}"
            assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name, f"{path} does not match its name"


def assert_no_leftovers(root: Path) -> None:
    """Only the layout's own files, and its temp directory (``.pallet-tmp``) empty."""
    assert {path.name for path in root.iterdir()} <= {"blobs", "index.json", "oci-layout", ".pallet-tmp"}
    temp = root / ".pallet-tmp"
    assert not temp.exists() or list(temp.iterdir()) == [], f"left in {temp}: {list(temp.iterdir())}"


def layout_refs(root: Path) -> list[str]:
    index = json.loads((root / "index.json").read_text())
    return [entry.get("annotations", {}).get("org.opencontainers.image.ref.name", "") for entry in index["manifests"]]


@pytest.mark.parametrize("fault", list(SOURCE_FAULTS))
def test_a_faulty_source_leaves_no_reference_and_no_partial_blob_in_an_oci_layout(
    home: Path, tmp_path: Path, test_images, image: TestImage, source_proxy: FaultyProxy, fault: str
) -> None:
    setup, problem = SOURCE_FAULTS[fault]
    target = images.write_oci_layout(tmp_path / "target", {"kept": test_images.multi_layer})
    index_before = (target / "index.json").read_bytes()
    fired = setup(source_proxy, image)
    result = copy(home, source_ref(source_proxy), f"oci:{target}:v1")
    assert_failed(result, problem, source_proxy)
    assert_fired(fired)
    assert (target / "index.json").read_bytes() == index_before
    assert layout_refs(target) == ["kept"]
    assert_blobs_verify(target)
    assert_no_leftovers(target)


@pytest.mark.parametrize("fault", list(SOURCE_FAULTS))
def test_a_faulty_source_leaves_no_image_in_a_new_oci_layout(
    home: Path, tmp_path: Path, image: TestImage, source_proxy: FaultyProxy, fault: str
) -> None:
    setup, problem = SOURCE_FAULTS[fault]
    target = tmp_path / "target"
    fired = setup(source_proxy, image)
    assert_failed(copy(home, source_ref(source_proxy), f"oci:{target}:v1"), problem, source_proxy)
    assert_fired(fired)
    if (target / "index.json").exists():
        assert layout_refs(target) == []
    if target.exists():
        assert_blobs_verify(target)
        assert_no_leftovers(target)


@pytest.mark.parametrize("fault", list(SOURCE_FAULTS))
def test_a_faulty_source_leaves_no_manifest_in_a_dir_destination(
    home: Path, tmp_path: Path, image: TestImage, source_proxy: FaultyProxy, fault: str
) -> None:
    setup, problem = SOURCE_FAULTS[fault]
    target = tmp_path / "target"
    fired = setup(source_proxy, image)
    assert_failed(copy(home, source_ref(source_proxy), f"dir:{target}"), problem, source_proxy)
    assert_fired(fired)
    assert not target.exists() or list(target.iterdir()) == [], sorted(target.rglob("*"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]


@pytest.mark.parametrize("fault", list(SOURCE_FAULTS))
def test_a_faulty_source_leaves_the_previous_image_of_a_dir_destination_as_it_was(
    home: Path, tmp_path: Path, test_images, image: TestImage, source_proxy: FaultyProxy,
    fault: str,
) -> None:
    setup, problem = SOURCE_FAULTS[fault]
    previous = images.write_oci_layout(tmp_path / "previous", {"v1": test_images.single_layer})
    target = tmp_path / "target"
    assert_succeeded(copy(home, f"oci:{previous}:v1", f"dir:{target}"))
    before = {path.name: path.read_bytes() for path in target.iterdir()}
    fired = setup(source_proxy, image)
    assert_failed(copy(home, source_ref(source_proxy), f"dir:{target}"), problem, source_proxy)
    assert_fired(fired)
    assert {path.name: path.read_bytes() for path in target.iterdir()} == before
