"""The ``dir:`` transport: the files skopeo writes, written and read through the protocol."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pallet.oci.digest import Digest
from pallet.oci.errors import DigestMismatch, ImageNotFound, InvalidImageName, TransportError, UnsupportedOperation
from pallet.oci.transports import default_transports
from pallet.oci.transports.base import BlobInfo, ImageReference, SystemContext
from pallet_testing.images import write_oci_layout

CTX = SystemContext()
VERSION = "Directory Transport Version: 1.1\n"


def dir_ref(text: str) -> ImageReference:
    return default_transports(plugins=False).parse_image_name(f"dir:{text}")


def files_of(root: Path) -> set[str]:
    return {p.name for p in root.iterdir()}


def test_parse() -> None:
    reference = dir_ref("/tmp/with:colon")
    assert reference.string_within_transport() == "/tmp/with:colon"
    assert dir_ref(reference.string_within_transport()) == reference
    with pytest.raises(InvalidImageName):
        dir_ref("")


@pytest.mark.parametrize("name", ["single_layer", "multi_layer", "docker_schema2", "two_platform_index"])
def test_round_trip_and_the_files_written(
    name: str, test_images: Any, put: Callable[..., None], check: Callable[..., None], tmp_path: Path
) -> None:
    image = getattr(test_images, name)
    root = tmp_path / "image"
    with dir_ref(str(root)).new_destination(CTX) as dest:
        assert dest.supported_manifest_types() == ()
        put(dest, image)
    children = image.images if name == "two_platform_index" else ()
    blobs = {b.digest[7:] for member in (children or (image,)) for b in member.blobs()}
    expected = {"version", "manifest.json", *blobs, *(f"{c.digest[7:]}.manifest.json" for c in children)}
    assert files_of(root) == expected
    assert (root / "version").read_text() == VERSION
    assert (root / "manifest.json").read_bytes() == image.manifest.data
    for blob in blobs:
        assert hashlib.sha256((root / blob).read_bytes()).hexdigest() == blob
    with dir_ref(str(root)).new_source(CTX) as src:
        check(src, image)


def test_signatures_round_trip(test_images: Any, put: Callable[..., None], tmp_path: Path) -> None:
    image = test_images.single_layer
    with dir_ref(str(tmp_path / "d")).new_destination(CTX) as dest:
        assert dest.supports_signatures()
        dest.put_signatures([b"sig one", b"sig two"])
        put(dest, image)
    assert (tmp_path / "d" / "signature-2").read_bytes() == b"sig two"
    with dir_ref(str(tmp_path / "d")).new_source(CTX) as src:
        assert src.get_signatures() == [b"sig one", b"sig two"]
        assert src.get_signatures(Digest.parse(image.digest)) == []


def test_a_previous_image_is_replaced_whole(test_images: Any, put: Callable[..., None], tmp_path: Path) -> None:
    root = tmp_path / "d"
    with dir_ref(str(root)).new_destination(CTX) as dest:
        put(dest, test_images.multi_layer)
    (root / "stale-subdir").mkdir()
    with dir_ref(str(root)).new_destination(CTX) as dest:
        put(dest, test_images.single_layer)
    single = test_images.single_layer
    assert files_of(root) == {"version", "manifest.json", single.config.digest[7:], single.layers[0].digest[7:]}


def test_a_foreign_non_empty_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(TransportError, match="refusing to overwrite"):
        dir_ref(str(tmp_path)).new_destination(CTX)
    (tmp_path / "version").write_text("Directory Transport Version: 9\n")
    with pytest.raises(TransportError, match="refusing to overwrite"):
        dir_ref(str(tmp_path)).new_destination(CTX)
    assert files_of(tmp_path) == {"precious.txt", "version"}


def test_close_without_commit_leaves_no_image_and_keeps_the_previous_one(
    test_images: Any, put: Callable[..., None], tmp_path: Path
) -> None:
    image = test_images.single_layer
    with dir_ref(str(tmp_path / "new")).new_destination(CTX) as dest:
        for blob in image.blobs():
            dest.put_blob(io.BytesIO(blob.data), BlobInfo(Digest.parse(blob.digest), blob.size))
        dest.put_manifest(image.manifest.data, image.manifest.media_type)
    assert not (tmp_path / "new").exists()
    with dir_ref(str(tmp_path / "old")).new_destination(CTX) as dest:
        put(dest, test_images.multi_layer)
    before = files_of(tmp_path / "old")
    with dir_ref(str(tmp_path / "old")).new_destination(CTX) as dest:
        dest.put_manifest(image.manifest.data, image.manifest.media_type)
    assert files_of(tmp_path / "old") == before
    with dir_ref(str(tmp_path / "old")).new_source(CTX) as src:
        assert src.get_manifest()[0] == test_images.multi_layer.manifest.data


def test_put_blob_verifies_and_keeps_nothing_of_a_bad_blob(tmp_path: Path) -> None:
    data = b"layer"
    with dir_ref(str(tmp_path / "d")).new_destination(CTX) as dest:
        with pytest.raises(DigestMismatch):
            dest.put_blob(io.BytesIO(data), BlobInfo(Digest.from_bytes(b"other")))
        stored = dest.put_blob(io.BytesIO(data), BlobInfo(None))
        assert stored.digest == Digest.from_bytes(data) and stored.size == len(data)
        assert dest.try_reusing_blob(BlobInfo(stored.digest)) == BlobInfo(stored.digest, len(data))
        staged = [p for p in (tmp_path / "d").iterdir()]
        assert len(staged) == 1 and [p.name for p in staged[0].iterdir()] == [stored.digest.encoded]


def test_child_manifests_are_verified(test_images: Any, tmp_path: Path) -> None:
    child = test_images.two_platform_index.images[0]
    with dir_ref(str(tmp_path / "d")).new_destination(CTX) as dest, pytest.raises(DigestMismatch):
        dest.put_manifest(child.manifest.data, child.manifest.media_type, Digest.from_bytes(b"x"))
    root = tmp_path / "src"
    root.mkdir()
    (root / "manifest.json").write_bytes(test_images.two_platform_index.manifest.data)
    (root / f"{child.digest[7:]}.manifest.json").write_bytes(child.manifest.data + b"\n")
    with dir_ref(str(root)).new_source(CTX) as src, pytest.raises(DigestMismatch):
        src.get_manifest(Digest.parse(child.digest))


def test_missing_directory_or_manifest_is_image_not_found(tmp_path: Path) -> None:
    with pytest.raises(ImageNotFound, match="not a directory"):
        dir_ref(str(tmp_path / "none")).new_source(CTX)
    with pytest.raises(ImageNotFound, match="no manifest.json"):
        dir_ref(str(tmp_path)).new_source(CTX)


def test_delete_is_unsupported(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedOperation):
        dir_ref(str(tmp_path)).delete(CTX)


@pytest.mark.interop
def test_skopeo_reads_what_we_write(
    test_images: Any, put: Callable[..., None], run_skopeo: Callable[..., str], tmp_path: Path
) -> None:
    index = test_images.two_platform_index
    with dir_ref(str(tmp_path / "ours")).new_destination(CTX) as dest:
        put(dest, index)
    raw = run_skopeo("inspect", "--raw", f"dir:{tmp_path}/ours")
    assert hashlib.sha256(raw.encode()).hexdigest() == index.digest[7:]
    run_skopeo("copy", "--all", "--preserve-digests", f"dir:{tmp_path}/ours", f"oci:{tmp_path}/theirs:v1")
    entries = json.loads((tmp_path / "theirs" / "index.json").read_text())["manifests"]
    assert [e["digest"] for e in entries] == [index.digest]


@pytest.mark.interop
def test_we_read_what_skopeo_writes(
    test_images: Any, check: Callable[..., None], run_skopeo: Callable[..., str], tmp_path: Path
) -> None:
    index = test_images.two_platform_index
    write_oci_layout(tmp_path / "src", {"v1": index})
    run_skopeo("copy", "--all", f"oci:{tmp_path}/src:v1", f"dir:{tmp_path}/theirs")
    with dir_ref(str(tmp_path / "theirs")).new_source(CTX) as src:
        check(src, index)


@pytest.mark.interop
def test_each_overwrites_the_others_directory(
    test_images: Any, put: Callable[..., None], run_skopeo: Callable[..., str], tmp_path: Path
) -> None:
    write_oci_layout(tmp_path / "src", {"v1": test_images.multi_layer})
    with dir_ref(str(tmp_path / "d")).new_destination(CTX) as dest:
        put(dest, test_images.single_layer)
    run_skopeo("copy", f"oci:{tmp_path}/src:v1", f"dir:{tmp_path}/d")
    assert (tmp_path / "d" / "manifest.json").read_bytes() == test_images.multi_layer.manifest.data
    with dir_ref(str(tmp_path / "d")).new_destination(CTX) as dest:
        put(dest, test_images.single_layer)
    assert (tmp_path / "d" / "manifest.json").read_bytes() == test_images.single_layer.manifest.data
