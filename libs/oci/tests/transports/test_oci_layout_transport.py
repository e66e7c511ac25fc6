"""The ``oci:`` transport: layouts written and read through the protocol, beside the real skopeo.

index.json is read back with json, blobs with hashlib: the tests check the
files, not only our own round trip.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pallet.oci.digest import Digest
from pallet.oci.errors import (
    AmbiguousImage,
    DigestMismatch,
    ImageNotFound,
    InvalidImageName,
    InvalidLayout,
    ManifestTypeRejected,
    RefUnknown,
    TransportError,
)
from pallet.oci.transports import default_transports
from pallet.oci.transports.base import BlobInfo, ImageReference, SystemContext
from pallet.oci.transports.oci_layout import OciLayoutReference
from pallet_testing.images import write_oci_layout

CTX = SystemContext()
REF_NAME = "org.opencontainers.image.ref.name"


def oci(text: str) -> ImageReference:
    return default_transports(plugins=False).parse_image_name(f"oci:{text}")


def index_entries(root: Path) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = json.loads((root / "index.json").read_text())["manifests"]
    return entries


def blob_path(root: Path, digest: str) -> Path:
    return root / "blobs" / "sha256" / digest.split(":", 1)[1]


# --- parsing -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "path", "ref"),
    [
        ("/tmp/l", "/tmp/l", ""),
        ("/tmp/l:v1", "/tmp/l", "v1"),
        ("rel/dir:latest", "rel/dir", "latest"),
        ("/tmp/l:example.com/app:v1.2", "/tmp/l", "example.com/app:v1.2"),
    ],
)
def test_parse_splits_at_the_first_colon_like_containers_image(text: str, path: str, ref: str) -> None:
    reference = oci(text)
    assert isinstance(reference, OciLayoutReference)
    assert (reference.path, reference.ref) == (path, ref)
    assert oci(reference.string_within_transport()) == reference
    assert str(reference) == f"oci:{path}:{ref}"


@pytest.mark.parametrize("text", ["", ":v1", "/tmp/l:bad ref", "/tmp/l:-v1", "/tmp/l:v1/"])
def test_bad_names_are_invalid_image_names(text: str) -> None:
    with pytest.raises(InvalidImageName):
        oci(text)


def test_policy_identity_is_the_resolved_directory(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert oci(f"{tmp_path}/link:v1").policy_configuration_identity() == str(tmp_path / "real")


# --- round trips -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["single_layer", "single_layer_zstd", "multi_layer", "two_platform_index"])
def test_round_trip(
    name: str, test_images: Any, put: Callable[..., None], check: Callable[..., None], tmp_path: Path
) -> None:
    image = getattr(test_images, name)
    reference = oci(f"{tmp_path}/layout:v1")
    with reference.new_destination(CTX) as dest:
        put(dest, image)
    entries = index_entries(tmp_path / "layout")
    assert [(e["digest"], e["annotations"][REF_NAME]) for e in entries] == [(image.digest, "v1")]
    assert entries[0]["mediaType"] == image.manifest.media_type
    with reference.new_source(CTX) as src:
        check(src, image)


def test_without_ref_writes_an_unnamed_entry_and_reads_the_only_image(
    test_images: Any, put: Callable[..., None], check: Callable[..., None], tmp_path: Path
) -> None:
    with oci(str(tmp_path)).new_destination(CTX) as dest:
        put(dest, test_images.single_layer)
    assert [("annotations" in e, e["digest"]) for e in index_entries(tmp_path)] == [
        (False, test_images.single_layer.digest)
    ]
    with oci(str(tmp_path)).new_source(CTX) as src:
        check(src, test_images.single_layer)


def test_a_second_image_under_the_same_ref_replaces_the_name(
    test_images: Any, put: Callable[..., None], tmp_path: Path
) -> None:
    for image in (test_images.single_layer, test_images.multi_layer):
        with oci(f"{tmp_path}:v1").new_destination(CTX) as dest:
            put(dest, image)
    named = [e["digest"] for e in index_entries(tmp_path) if e.get("annotations", {}).get(REF_NAME) == "v1"]
    assert named == [test_images.multi_layer.digest]


def test_docker_manifests_are_rejected_for_the_copy_engine_to_convert(test_images: Any, tmp_path: Path) -> None:
    image = test_images.docker_schema2
    with oci(f"{tmp_path}:v1").new_destination(CTX) as dest:
        assert dest.supported_manifest_types() == (
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.index.v1+json",
        )
        with pytest.raises(ManifestTypeRejected):
            dest.put_manifest(image.manifest.data, image.manifest.media_type)


def test_docker_images_written_by_others_are_read(test_images: Any, check: Callable[..., None], tmp_path: Path) -> None:
    write_oci_layout(tmp_path, {"docker": test_images.docker_schema2, "index": test_images.two_platform_index})
    with oci(f"{tmp_path}:docker").new_source(CTX) as src:
        check(src, test_images.docker_schema2)
    with oci(f"{tmp_path}:index").new_source(CTX) as src:
        check(src, test_images.two_platform_index)


# --- not found, ambiguous --------------------------------------------------------------


def test_missing_layout_ref_and_empty_layout_are_image_not_found(test_images: Any, tmp_path: Path) -> None:
    with pytest.raises(ImageNotFound, match="does not exist"):
        oci(f"{tmp_path}/nothing:v1").new_source(CTX)
    write_oci_layout(tmp_path / "l", {"v1": test_images.single_layer})
    with pytest.raises(RefUnknown, match="'v2' not found"):
        oci(f"{tmp_path}/l:v2").new_source(CTX)
    (tmp_path / "empty").mkdir()
    write_oci_layout(tmp_path / "empty", {})
    with pytest.raises(ImageNotFound, match="lists no image"):
        oci(f"{tmp_path}/empty").new_source(CTX)


def test_without_ref_several_images_are_ambiguous(test_images: Any, tmp_path: Path) -> None:
    write_oci_layout(tmp_path, {"a": test_images.single_layer, "b": test_images.multi_layer})
    with pytest.raises(AmbiguousImage, match="refs: a, b"):
        oci(str(tmp_path)).new_source(CTX)


def test_a_directory_that_is_not_a_layout_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(InvalidLayout):
        oci(f"{tmp_path}:v1").new_source(CTX)
    with pytest.raises(InvalidLayout):
        oci(f"{tmp_path}:v1").new_destination(CTX)


# --- verification and atomicity ----------------------------------------------------------


def test_close_without_commit_leaves_no_image(test_images: Any, tmp_path: Path) -> None:
    image = test_images.single_layer
    with oci(f"{tmp_path}:v1").new_destination(CTX) as dest:
        for blob in image.blobs():
            dest.put_blob(io.BytesIO(blob.data), BlobInfo(Digest.parse(blob.digest), blob.size))
        dest.put_manifest(image.manifest.data, image.manifest.media_type)
    assert index_entries(tmp_path) == []
    with pytest.raises(ImageNotFound):
        oci(f"{tmp_path}:v1").new_source(CTX)


def test_commit_refuses_an_incomplete_image(test_images: Any, tmp_path: Path) -> None:
    image = test_images.single_layer
    with oci(f"{tmp_path}:v1").new_destination(CTX) as dest:
        dest.put_manifest(image.manifest.data, image.manifest.media_type)
        with pytest.raises(Exception, match="not found"):
            dest.commit()
    assert index_entries(tmp_path) == []


def test_commit_without_manifest_is_an_error(tmp_path: Path) -> None:
    with oci(f"{tmp_path}:v1").new_destination(CTX) as dest, pytest.raises(TransportError):
        dest.commit()


def test_put_blob_verifies_and_keeps_nothing_of_a_bad_blob(tmp_path: Path) -> None:
    data = b"layer bytes"
    wrong = Digest.from_bytes(b"other bytes")
    with oci(f"{tmp_path}:v1").new_destination(CTX) as dest:
        with pytest.raises(DigestMismatch):
            dest.put_blob(io.BytesIO(data), BlobInfo(wrong, len(data)))
        assert not blob_path(tmp_path, str(wrong)).exists()
        stored = dest.put_blob(io.BytesIO(data), BlobInfo(None))
    assert (str(stored.digest), stored.size) == ("sha256:" + hashlib.sha256(data).hexdigest(), len(data))
    assert blob_path(tmp_path, str(stored.digest)).read_bytes() == data
    assert [p.name for p in (tmp_path / "blobs" / "sha256").iterdir()] == [stored.digest.encoded]


def test_child_manifest_must_match_its_instance_digest(test_images: Any, tmp_path: Path) -> None:
    child = test_images.two_platform_index.images[0]
    with oci(f"{tmp_path}:v1").new_destination(CTX) as dest, pytest.raises(DigestMismatch):
        dest.put_manifest(child.manifest.data, child.manifest.media_type, Digest.from_bytes(b"x"))


def test_sources_verify_manifests(test_images: Any, tmp_path: Path) -> None:
    index = test_images.two_platform_index
    write_oci_layout(tmp_path, {"v1": index})
    child = index.images[1]
    blob_path(tmp_path, child.digest).write_bytes(child.manifest.data + b" ")
    with oci(f"{tmp_path}:v1").new_source(CTX) as src, pytest.raises(DigestMismatch):
        src.get_manifest(Digest.parse(child.digest))
    blob_path(tmp_path, index.digest).write_bytes(index.manifest.data.replace(b"amd64", b"AMD64"))
    with oci(f"{tmp_path}:v1").new_source(CTX) as src, pytest.raises(DigestMismatch):
        src.get_manifest()


def test_try_reusing_blob_returns_what_is_stored(test_images: Any, tmp_path: Path) -> None:
    layer = test_images.single_layer.layers[0]
    info = BlobInfo(Digest.parse(layer.digest), -1, layer.media_type)
    with oci(f"{tmp_path}:v1").new_destination(CTX) as dest:
        assert dest.try_reusing_blob(info) is None
        dest.put_blob(io.BytesIO(layer.data), info)
        assert dest.try_reusing_blob(info) == BlobInfo(info.digest, layer.size, layer.media_type)
        assert dest.try_reusing_blob(BlobInfo(info.digest, layer.size + 1)) is None


def test_put_blob_from_threads(tmp_path: Path) -> None:
    blobs = [bytes([n]) * (100_000 + n) for n in range(8)]
    errors: list[BaseException] = []
    with oci(f"{tmp_path}:v1").new_destination(CTX) as dest:
        assert dest.has_threadsafe_put_blob()

        def put_one(data: bytes) -> None:
            try:
                dest.put_blob(io.BytesIO(data), BlobInfo(Digest.from_bytes(data), len(data)))
            except BaseException as error:  # noqa: BLE001 - reported below
                errors.append(error)

        threads = [threading.Thread(target=put_one, args=(data,)) for data in blobs * 2]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    for data in blobs:
        assert blob_path(tmp_path, str(Digest.from_bytes(data))).read_bytes() == data


# --- delete --------------------------------------------------------------------------


def test_delete_removes_the_ref_and_the_blobs_only_it_used(
    test_images: Any, put: Callable[..., None], tmp_path: Path
) -> None:
    single, multi = test_images.single_layer, test_images.multi_layer
    for ref, image in (("a", single), ("b", multi)):
        with oci(f"{tmp_path}:{ref}").new_destination(CTX) as dest:
            put(dest, image)
    oci(f"{tmp_path}:b").delete(CTX)
    assert [e["annotations"][REF_NAME] for e in index_entries(tmp_path)] == ["a"]
    assert not blob_path(tmp_path, multi.digest).exists()
    assert not blob_path(tmp_path, multi.layers[2].digest).exists()
    assert blob_path(tmp_path, single.layers[0].digest).exists()  # shared with a: kept
    with pytest.raises(RefUnknown):
        oci(f"{tmp_path}:b").delete(CTX)
    oci(str(tmp_path)).delete(CTX)  # the only image
    assert index_entries(tmp_path) == []
    assert list((tmp_path / "blobs" / "sha256").iterdir()) == []


# --- interop with skopeo ------------------------------------------------------------------


@pytest.mark.interop
@pytest.mark.parametrize("name", ["multi_layer", "two_platform_index"])
def test_skopeo_reads_and_copies_what_we_write(
    name: str, test_images: Any, put: Callable[..., None], run_skopeo: Callable[..., str], tmp_path: Path
) -> None:
    image = test_images.two_platform_index if name == "two_platform_index" else test_images.multi_layer
    with oci(f"{tmp_path}/ours:v1").new_destination(CTX) as dest:
        put(dest, image)
    raw = run_skopeo("inspect", "--raw", f"oci:{tmp_path}/ours:v1")
    assert hashlib.sha256(raw.encode()).hexdigest() == image.digest.split(":")[1]
    if name == "multi_layer":
        inspected = json.loads(run_skopeo("inspect", f"oci:{tmp_path}/ours:v1"))
        assert inspected["Layers"] == [layer.digest for layer in image.layers]
    run_skopeo("copy", "--all", "--preserve-digests", f"oci:{tmp_path}/ours:v1", f"oci:{tmp_path}/theirs:v2")
    assert [e["digest"] for e in index_entries(tmp_path / "theirs")] == [image.digest]


@pytest.mark.interop
def test_we_read_what_skopeo_writes(
    test_images: Any, check: Callable[..., None], run_skopeo: Callable[..., str], tmp_path: Path
) -> None:
    index = test_images.two_platform_index
    write_oci_layout(tmp_path / "src", {"v1": index})
    run_skopeo("copy", "--all", f"oci:{tmp_path}/src:v1", f"oci:{tmp_path}/dst:copied")
    with oci(f"{tmp_path}/dst:copied").new_source(CTX) as src:
        check(src, index)
