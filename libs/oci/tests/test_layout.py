"""pallet.oci.layout: an OCI image layout written, read, edited and garbage-collected on disk.

Images are built here with tarfile, gzip, hashlib and json, not with
pallet.oci, and the files on disk are read back with json and hashlib: the
tests check the spec's formats, not just our own round trip.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import resource
import signal
import subprocess
import tarfile
import threading
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pallet.oci import mediatypes as mt
from pallet.oci.digest import Digest, VerifyingReader
from pallet.oci.errors import (
    BlobInUse,
    BlobUnknown,
    DigestMismatch,
    InvalidLayout,
    InvalidRefName,
    LayoutError,
    RefUnknown,
    Schema1Unsupported,
    SizeMismatch,
    UnsupportedMediaType,
)
from pallet.oci.layout import REF_NAME_ANNOTATION, OciLayout
from pallet.oci.layout.blobs import CHUNK_SIZE
from pallet.oci.spec.image import Descriptor

EPOCH = 1_700_000_000
TEMP_DIR = ".pallet-tmp"


# --- building images with the standard library ---------------------------------


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tar_gz_layer(files: dict[str, bytes]) -> tuple[bytes, bytes]:
    """A deterministic gzip tar layer: (compressed, uncompressed)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(content), EPOCH, 0o755
            tar.addfile(info, io.BytesIO(content))
    uncompressed = buffer.getvalue()
    return gzip.compress(uncompressed, mtime=0), uncompressed


def descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": sha256(data), "size": len(data), **extra}


@dataclass(frozen=True)
class Image:
    config: bytes
    layers: tuple[bytes, ...]
    manifest: bytes
    media_type: str = mt.OCI_MANIFEST

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor.model_validate(descriptor(self.media_type, self.manifest))

    @property
    def blobs(self) -> tuple[bytes, ...]:
        return (self.config, *self.layers, self.manifest)

    @property
    def digests(self) -> set[str]:
        return {sha256(blob) for blob in self.blobs}


def build_image(files: dict[str, bytes], *, extra_layers: tuple[bytes, ...] = (), docker: bool = False) -> Image:
    layer, uncompressed = tar_gz_layer(files)
    layers = (*extra_layers, layer)
    config = json.dumps(
        {
            "created": "2023-11-14T22:13:20Z",
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/hello"]},
            "rootfs": {"type": "layers", "diff_ids": [sha256(gzip.decompress(blob)) for blob in layers]},
        }
    ).encode()
    assert sha256(uncompressed) in config.decode()
    config_type, layer_type, manifest_type = (
        (mt.DOCKER_CONFIG, mt.DOCKER_LAYER_GZIP, mt.DOCKER_MANIFEST)
        if docker
        else (mt.OCI_CONFIG, mt.OCI_LAYER_GZIP, mt.OCI_MANIFEST)
    )
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": descriptor(config_type, config),
            "layers": [descriptor(layer_type, blob) for blob in layers],
        },
        indent=3,
    ).encode()
    return Image(config, layers, manifest, manifest_type)


def put_image(layout: OciLayout, image: Image) -> None:
    for blob in image.blobs:
        layout.put_blob(blob, sha256(blob), len(blob))


def write_image(layout: OciLayout, image: Image, ref_name: str | None) -> Descriptor:
    put_image(layout, image)
    return layout.add_manifest(image.descriptor, ref_name)


def index_of(*images: Image, platforms: tuple[str, ...] = ("amd64", "arm64")) -> bytes:
    entries = [
        descriptor(image.media_type, image.manifest, platform={"os": "linux", "architecture": arch})
        for image, arch in zip(images, platforms)
    ]
    return json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": entries}).encode()


def index_descriptor(raw: bytes) -> Descriptor:
    return Descriptor.model_validate(descriptor(mt.OCI_INDEX, raw))


def blob_files(root: Path) -> set[str]:
    """Every file under blobs/, as ``algorithm:name`` (hidden files included)."""
    return {f"{path.parent.name}:{path.name}" for path in (root / "blobs").rglob("*") if path.is_file()}


def temp_files(root: Path) -> list[str]:
    temp_dir = root / TEMP_DIR
    return sorted(os.listdir(temp_dir)) if temp_dir.exists() else []


def read_json(path: Path) -> Any:
    return json.loads(path.read_bytes())


@pytest.fixture
def layout(tmp_path: Path) -> OciLayout:
    return OciLayout.create(tmp_path / "layout")


@pytest.fixture(scope="module")
def hello() -> Image:
    return build_image({"hello": b"#!/bin/sh\necho hello\n", "etc/motd": b"hi\n"})


@pytest.fixture(scope="module")
def world() -> Image:
    return build_image({"world": b"#!/bin/sh\necho world\n"})


# --- creating and opening ------------------------------------------------------


def test_create_writes_the_spec_files(tmp_path: Path) -> None:
    root = tmp_path / "a" / "new" / "layout"
    OciLayout.create(root)
    assert read_json(root / "oci-layout") == {"imageLayoutVersion": "1.0.0"}
    index = read_json(root / "index.json")
    assert index == {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []}
    assert (root / "blobs" / "sha256").is_dir()
    assert blob_files(root) == set()


def test_create_on_an_existing_layout_opens_it_unchanged(layout: OciLayout, hello: Image) -> None:
    write_image(layout, hello, "v1")
    before = (layout.root / "index.json").read_bytes()
    again = OciLayout.create(layout.root)
    assert again.list_refs() == ["v1"]
    assert (layout.root / "index.json").read_bytes() == before


def test_create_completes_an_interrupted_creation(tmp_path: Path) -> None:
    (tmp_path / "blobs" / "sha256").mkdir(parents=True)
    OciLayout.create(tmp_path)
    assert read_json(tmp_path / "oci-layout") == {"imageLayoutVersion": "1.0.0"}


def test_create_refuses_a_directory_holding_other_files(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(InvalidLayout, match="not empty"):
        OciLayout.create(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["notes.txt"]


@pytest.mark.parametrize(
    "content",
    [None, b"", b"not json", b"[]", b'{"imageLayoutVersion": 1}', b'{"imageLayoutVersion": "2.0.0"}'],
    ids=["missing", "empty", "not-json", "array", "number", "version-2"],
)
def test_open_refuses_an_invalid_oci_layout_file(layout: OciLayout, content: bytes | None) -> None:
    path = layout.root / "oci-layout"
    if content is None:
        path.unlink()
    else:
        path.write_bytes(content)
    with pytest.raises(InvalidLayout):
        OciLayout.open(layout.root)
    if content is not None:  # a missing oci-layout is an interrupted creation: create completes it
        with pytest.raises(InvalidLayout):
            OciLayout.create(layout.root)


def test_open_refuses_what_is_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(InvalidLayout, match="not a directory"):
        OciLayout.open(tmp_path / "nowhere")
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(InvalidLayout):
        OciLayout.open(tmp_path / "file")


def test_open_accepts_extra_fields_in_oci_layout(layout: OciLayout) -> None:
    (layout.root / "oci-layout").write_bytes(b'{"imageLayoutVersion": "1.0.0", "x-tool": "other"}')
    assert OciLayout.open(layout.root).list_refs() == []


# --- malformed index.json: InvalidLayout (the parse error is its __cause__) ------------


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{not json",
        b"[]",
        b'{"schemaVersion": 1, "manifests": []}',
        b'{"schemaVersion": 2}',
        b'{"schemaVersion": 2, "manifests": [{"mediaType": "x", "digest": "sha256:zz", "size": 1}]}',
        b'{"schemaVersion": 2, "manifests": [{"mediaType": "x", "digest": "sha256:' + b"a" * 64 + b'", "size": -1}]}',
        b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "manifests": []}',
        b'{"schemaVersion": 2, "manifests": [], "layers": []}',
    ],
    ids=[
        "empty", "not-json", "array", "schema-1", "no-manifests", "bad-digest", "negative-size", "wrong-type", "layers"
    ],
)
def test_malformed_index_json_raises_invalid_layout(layout: OciLayout, content: bytes) -> None:
    (layout.root / "index.json").write_bytes(content)
    with pytest.raises(InvalidLayout, match="index.json"):
        OciLayout.open(layout.root)
    with pytest.raises(InvalidLayout, match="index.json"):
        layout.resolve("v1")


def test_missing_index_json_raises_invalid_layout(layout: OciLayout) -> None:
    (layout.root / "index.json").unlink()
    with pytest.raises(InvalidLayout, match="missing"):
        OciLayout.open(layout.root)


# --- writing an image and reading it back -------------------------------------------


def test_write_and_read_back_an_image(layout: OciLayout, hello: Image) -> None:
    entry = write_image(layout, hello, "hello:1.0")
    root = layout.root

    # On disk, in the spec's formats.
    for blob in hello.blobs:
        assert (root / "blobs" / "sha256" / hashlib.sha256(blob).hexdigest()).read_bytes() == blob
    index = read_json(root / "index.json")
    assert index["schemaVersion"] == 2
    assert index["manifests"] == [
        {
            "mediaType": mt.OCI_MANIFEST,
            "digest": sha256(hello.manifest),
            "size": len(hello.manifest),
            "annotations": {REF_NAME_ANNOTATION: "hello:1.0"},
        }
    ]
    assert entry.annotations == {REF_NAME_ANNOTATION: "hello:1.0"}

    # Through the API.
    resolved = layout.resolve("hello:1.0")
    assert resolved == entry
    manifest = json.loads(layout.read_blob(resolved.digest, resolved.size))
    layer = manifest["layers"][0]
    with layout.open_blob(layer["digest"]) as layer_file, tarfile.open(fileobj=layer_file, mode="r:gz") as tar:
        hello_file = tar.extractfile("hello")
        assert hello_file is not None and hello_file.read() == b"#!/bin/sh\necho hello\n"
    config = json.loads(layout.read_blob(manifest["config"]["digest"]))
    assert config["rootfs"]["diff_ids"] == [sha256(gzip.decompress(hello.layers[0]))]
    assert layout.blob_size(layer["digest"]) == layer["size"]
    assert layout.blobs() == sorted(Digest.parse(d) for d in hello.digests)
    assert layout.index().raw == (root / "index.json").read_bytes()


def test_open_blob_reads_through_a_verifying_reader(layout: OciLayout, hello: Image) -> None:
    put_image(layout, hello)
    layer = hello.layers[0]
    with layout.open_blob(sha256(layer)) as blob:
        reader = VerifyingReader(blob, sha256(layer), len(layer))
        while reader.read(1000):
            pass
        assert reader.verified


def test_a_docker_schema2_image_can_be_stored(layout: OciLayout) -> None:
    image = build_image({"d": b"docker"}, docker=True)
    entry = write_image(layout, image, "docker")
    assert entry.media_type == mt.DOCKER_MANIFEST
    assert layout.resolve("docker").digest == Digest.parse(sha256(image.manifest))


def test_an_index_and_its_images_can_be_stored(layout: OciLayout, hello: Image, world: Image) -> None:
    put_image(layout, hello)
    put_image(layout, world)
    raw = index_of(hello, world)
    layout.put_blob(raw)
    layout.add_manifest(index_descriptor(raw), "multi")
    assert layout.resolve("multi").media_type == mt.OCI_INDEX
    assert [entry["digest"] for entry in json.loads(layout.read_blob(sha256(raw)))["manifests"]] == [
        sha256(hello.manifest),
        sha256(world.manifest),
    ]


# --- blobs: verification while streaming, atomicity ----------------------------------


def test_put_blob_computes_the_digest_when_none_is_given(layout: OciLayout) -> None:
    stored = layout.put_blob(io.BytesIO(b"some content"))
    assert str(stored.digest) == sha256(b"some content")
    assert stored.size == 12 and stored.written
    assert layout.has_blob(stored.digest)
    sha512 = layout.put_blob(b"some content", algorithm="sha512")
    assert sha512.digest.algorithm == "sha512"
    assert (layout.root / "blobs" / "sha512" / sha512.digest.encoded).read_bytes() == b"some content"


class ExplodingStream:
    """A stream that must not be read."""

    def read(self, size: int = -1) -> bytes:
        raise AssertionError("the stream was read")


def test_put_blob_is_idempotent(layout: OciLayout) -> None:
    data = b"x" * 1000
    first = layout.put_blob(data, sha256(data), len(data))
    path = layout.root / "blobs" / "sha256" / first.digest.encoded
    inode = path.stat().st_ino
    again = layout.put_blob(ExplodingStream(), sha256(data), len(data))
    assert (first.written, again.written) == (True, False)
    assert again.digest == first.digest and again.size == 1000
    unverified = layout.put_blob(data)
    assert not unverified.written
    assert path.stat().st_ino == inode
    assert blob_files(layout.root) == {f"sha256:{first.digest.encoded}"}


@pytest.mark.parametrize(
    ("content", "expected_digest", "expected_size", "error"),
    [
        (b"truncated", sha256(b"truncated content"), len(b"truncated content"), SizeMismatch),
        (b"truncated", None, 100, SizeMismatch),
        (b"too long content", sha256(b"too long"), len(b"too long"), SizeMismatch),
        (b"too long content", None, 8, SizeMismatch),
        (b"other content", sha256(b"expected content"), None, DigestMismatch),
        (b"other content", sha256(b"expected content"), len(b"other content"), DigestMismatch),
        (b"", sha256(b"expected"), 8, SizeMismatch),
    ],
    ids=[
        "truncated", "truncated-no-digest", "too-long", "too-long-no-digest", "wrong-digest", "wrong-digest-sized", "empty"
    ],
)
def test_put_blob_refuses_content_that_is_not_what_was_promised(
    layout: OciLayout, content: bytes, expected_digest: str | None, expected_size: int | None, error: type[Exception]
) -> None:
    with pytest.raises(error):
        layout.put_blob(io.BytesIO(content), expected_digest, expected_size)
    assert blob_files(layout.root) == set()
    assert temp_files(layout.root) == []
    if expected_digest is not None:
        assert not layout.has_blob(expected_digest)


def test_put_blob_stops_reading_a_stream_longer_than_promised(layout: OciLayout) -> None:
    stream = EndlessStream()
    with pytest.raises(SizeMismatch, match="at least"):
        layout.put_blob(stream, sha256(b"small"), 5)
    assert stream.produced <= CHUNK_SIZE
    assert blob_files(layout.root) == set() and temp_files(layout.root) == []


class FailingStream:
    """Gives some bytes, then fails like a dropped connection."""

    def __init__(self) -> None:
        self.calls = 0

    def read(self, size: int = -1) -> bytes:
        self.calls += 1
        if self.calls > 2:
            raise ConnectionResetError("connection reset by peer")
        return b"a" * 1000


def test_an_error_of_the_source_passes_through_and_leaves_nothing(layout: OciLayout) -> None:
    with pytest.raises(ConnectionResetError):
        layout.put_blob(FailingStream(), sha256(b"a" * 3000), 3000)
    with pytest.raises(ConnectionResetError):
        layout.put_blob(FailingStream())
    assert blob_files(layout.root) == set() and temp_files(layout.root) == []


def test_a_corrupt_blob_is_replaced_by_a_verified_put(layout: OciLayout) -> None:
    data = b"original content"
    stored = layout.put_blob(data)
    path = layout.root / "blobs" / "sha256" / stored.digest.encoded
    path.write_bytes(b"original")  # truncated on disk by someone else
    again = layout.put_blob(data, stored.digest, len(data))
    assert again.written and path.read_bytes() == data


def test_verify_blob_detects_corruption(layout: OciLayout) -> None:
    stored = layout.put_blob(b"precious bytes")
    assert layout.verify_blob(stored.digest).size == 14
    path = layout.root / "blobs" / "sha256" / stored.digest.encoded
    path.write_bytes(b"PRECIOUS BYTES")
    with pytest.raises(DigestMismatch):
        layout.verify_blob(stored.digest)
    with pytest.raises(DigestMismatch):
        layout.read_blob(stored.digest)
    path.write_bytes(b"precious")
    with pytest.raises(SizeMismatch):
        layout.read_blob(stored.digest, 14)


def test_missing_blobs_raise_blob_unknown(layout: OciLayout) -> None:
    missing = sha256(b"never stored")
    assert not layout.has_blob(missing)
    for operation in (layout.open_blob, layout.read_blob, layout.blob_size, layout.verify_blob):
        with pytest.raises(BlobUnknown, match=missing):
            operation(missing)


def test_delete_blob_is_idempotent_and_spares_referenced_blobs(layout: OciLayout, hello: Image) -> None:
    write_image(layout, hello, "v1")
    stray = layout.put_blob(b"stray").digest
    assert layout.delete_blob(stray) is True
    assert layout.delete_blob(stray) is False
    with pytest.raises(BlobInUse, match="still referenced"):
        layout.delete_blob(sha256(hello.layers[0]))
    assert layout.has_blob(sha256(hello.layers[0]))


def test_a_filesystem_failure_is_a_layout_error_saying_what_failed(layout: OciLayout) -> None:
    """A real write error (the file-size limit of this process: EFBIG), not a mock."""
    data = b"z" * (3 * CHUNK_SIZE)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        resource.setrlimit(resource.RLIMIT_FSIZE, (CHUNK_SIZE, hard))
        with pytest.raises(LayoutError, match=f"^write blob {sha256(data)}: File too large") as caught:
            layout.put_blob(data, sha256(data), len(data))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous_handler)
    assert isinstance(caught.value.__cause__, OSError)
    assert blob_files(layout.root) == set() and temp_files(layout.root) == []


def test_create_refuses_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(InvalidLayout, match="not a directory"):
        OciLayout.create(tmp_path / "file")


def test_put_blob_of_64_mib_keeps_memory_small(layout: OciLayout) -> None:
    total = 64 * 1024 * 1024
    stream = EndlessStream(limit=total)
    expected = hashlib.sha256()
    for chunk in EndlessStream(limit=total).chunks():
        expected.update(chunk)
    tracemalloc.start()
    try:
        stored = layout.put_blob(stream, "sha256:" + expected.hexdigest(), total)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert stored.size == total and stored.written
    assert peak < 4 * 1024 * 1024, f"peak traced memory {peak} bytes"
    assert layout.blob_size(stored.digest) == total


class EndlessStream:
    """Deterministic bytes, made as they are read (``limit`` None: forever); each read allocates one block."""

    def __init__(self, limit: int | None = None) -> None:
        self.limit = limit
        self.produced = 0
        self._pattern = memoryview(bytes(range(256)) * (CHUNK_SIZE // 256 + 1))

    def read(self, size: int = -1) -> bytes:
        size = 65536 if size < 0 else min(size, CHUNK_SIZE)
        if self.limit is not None:
            size = min(size, self.limit - self.produced)
        counter = self.produced.to_bytes(8, "big")[:size]
        block = b"".join((counter, self._pattern[: size - len(counter)]))
        self.produced += len(block)
        return block

    def chunks(self) -> Iterator[bytes]:
        while chunk := self.read(CHUNK_SIZE):
            yield chunk


# --- index.json: adding, naming, replacing, removing -----------------------------------


def test_add_manifest_refuses_an_image_with_missing_blobs(layout: OciLayout, hello: Image) -> None:
    before = (layout.root / "index.json").read_bytes()
    layout.put_blob(hello.manifest)
    with pytest.raises(BlobUnknown, match=sha256(hello.config)):
        layout.add_manifest(hello.descriptor, "v1")
    layout.put_blob(hello.config)
    with pytest.raises(BlobUnknown, match=sha256(hello.layers[0])):
        layout.add_manifest(hello.descriptor, "v1")
    assert (layout.root / "index.json").read_bytes() == before


def test_add_manifest_refuses_a_missing_manifest(layout: OciLayout, hello: Image) -> None:
    with pytest.raises(BlobUnknown, match=sha256(hello.manifest)):
        layout.add_manifest(hello.descriptor, "v1")
    assert layout.manifests() == ()


def test_add_manifest_checks_the_manifest_against_its_descriptor(layout: OciLayout, hello: Image) -> None:
    put_image(layout, hello)
    wrong_size = hello.descriptor.model_copy(update={"size": len(hello.manifest) + 1})
    with pytest.raises(SizeMismatch):
        layout.add_manifest(wrong_size, "v1")
    wrong_layer_size = json.loads(hello.manifest)
    wrong_layer_size["layers"][0]["size"] += 1
    raw = json.dumps(wrong_layer_size).encode()
    layout.put_blob(raw)
    with pytest.raises(SizeMismatch):
        layout.add_manifest(Descriptor.model_validate(descriptor(mt.OCI_MANIFEST, raw)), "v1")
    assert layout.manifests() == ()


def test_add_manifest_checks_an_index_recursively(layout: OciLayout, hello: Image, world: Image) -> None:
    put_image(layout, hello)
    layout.put_blob(world.manifest)
    layout.put_blob(world.config)
    raw = index_of(hello, world)
    layout.put_blob(raw)
    with pytest.raises(BlobUnknown, match=sha256(world.layers[0])):
        layout.add_manifest(index_descriptor(raw), "multi")
    assert layout.manifests() == ()


def test_add_manifest_refuses_what_is_not_a_manifest(layout: OciLayout, hello: Image) -> None:
    put_image(layout, hello)
    layer = Descriptor.model_validate(descriptor(mt.OCI_LAYER_GZIP, hello.layers[0]))
    with pytest.raises(UnsupportedMediaType):
        layout.add_manifest(layer, "layer")
    schema1 = json.dumps({"schemaVersion": 1, "name": "x", "tag": "y", "fsLayers": [], "history": []}).encode()
    layout.put_blob(schema1)
    with pytest.raises(Schema1Unsupported):
        layout.add_manifest(Descriptor.model_validate(descriptor(mt.DOCKER_SCHEMA1_MANIFEST, schema1)), "old")
    assert layout.manifests() == ()


def test_a_non_distributable_layer_with_urls_may_be_absent(layout: OciLayout, hello: Image) -> None:
    foreign = b"windows base layer bytes"
    manifest = json.loads(hello.manifest)
    manifest["layers"].insert(
        0, descriptor(mt.OCI_LAYER_NONDISTRIBUTABLE_GZIP, foreign, urls=["https://example.com/layer"])
    )
    raw = json.dumps(manifest).encode()
    put_image(layout, hello)
    layout.put_blob(raw)
    layout.add_manifest(Descriptor.model_validate(descriptor(mt.OCI_MANIFEST, raw)), "foreign")
    assert layout.list_refs() == ["foreign"]


@pytest.mark.parametrize("name", ["", "a b", "-lead", "trail-", "a//b", "a/", "é", "a---b", "tag!"])
def test_invalid_ref_names_are_refused(layout: OciLayout, hello: Image, name: str) -> None:
    put_image(layout, hello)
    with pytest.raises(InvalidRefName, match="ref name"):
        layout.add_manifest(hello.descriptor, name)
    assert layout.manifests() == ()


@pytest.mark.parametrize("name", ["latest", "v1.0", "hello:1.0", "docker.io/library/busybox:1.36", "a--b", "a@b+c_d"])
def test_valid_ref_names_are_accepted(layout: OciLayout, hello: Image, name: str) -> None:
    write_image(layout, hello, name)
    assert layout.resolve(name).digest == Digest.parse(sha256(hello.manifest))


def test_a_ref_moves_and_the_old_image_stays_unnamed(layout: OciLayout, hello: Image, world: Image) -> None:
    write_image(layout, hello, "latest")
    write_image(layout, world, "latest")
    entries = read_json(layout.root / "index.json")["manifests"]
    assert [entry["digest"] for entry in entries] == [sha256(hello.manifest), sha256(world.manifest)]
    assert "annotations" not in entries[0]
    assert entries[1]["annotations"] == {REF_NAME_ANNOTATION: "latest"}
    assert layout.resolve("latest").digest == Digest.parse(sha256(world.manifest))
    assert layout.list_refs() == ["latest"]


def test_moving_a_ref_keeps_other_annotations(layout: OciLayout, hello: Image, world: Image) -> None:
    put_image(layout, hello)
    annotated = hello.descriptor.model_copy(update={"annotations": {"org.example.note": "kept"}})
    layout.add_manifest(annotated, "latest")
    write_image(layout, world, "latest")
    assert layout.manifests()[0].annotations == {"org.example.note": "kept"}


def test_adding_the_same_image_again_does_not_duplicate_it(layout: OciLayout, hello: Image, world: Image) -> None:
    write_image(layout, hello, "v1")
    write_image(layout, hello, "v1")
    layout.add_manifest(hello.descriptor)
    assert len(layout.manifests()) == 1
    write_image(layout, world, "v1")
    write_image(layout, hello, "v1")  # the unnamed old entry takes the name back
    assert [str(entry.digest) for entry in layout.manifests()] == [sha256(hello.manifest), sha256(world.manifest)]
    assert layout.resolve("v1").digest == Digest.parse(sha256(hello.manifest))


def test_one_image_can_have_several_refs(layout: OciLayout, hello: Image, world: Image) -> None:
    write_image(layout, hello, "v1")
    write_image(layout, hello, "stable")
    write_image(layout, world, "v2")
    assert layout.list_refs() == ["v1", "stable", "v2"]
    assert layout.resolve("v1").digest == layout.resolve("stable").digest


def test_the_descriptor_ref_annotation_names_the_entry(layout: OciLayout, hello: Image) -> None:
    put_image(layout, hello)
    layout.add_manifest(hello.descriptor.model_copy(update={"annotations": {REF_NAME_ANNOTATION: "from-desc"}}))
    assert layout.list_refs() == ["from-desc"]


def test_remove_ref(layout: OciLayout, hello: Image, world: Image) -> None:
    write_image(layout, hello, "v1")
    write_image(layout, world, "v2")
    layout.remove_ref("v1")
    assert layout.list_refs() == ["v2"]
    assert [entry["digest"] for entry in read_json(layout.root / "index.json")["manifests"]] == [
        sha256(world.manifest)
    ]
    assert layout.has_blob(sha256(hello.manifest)), "blobs stay until gc"
    with pytest.raises(RefUnknown, match="v1"):
        layout.remove_ref("v1")
    with pytest.raises(RefUnknown, match="v1"):
        layout.resolve("v1")


def test_remove_manifest_drops_unnamed_entries(layout: OciLayout, hello: Image, world: Image) -> None:
    write_image(layout, hello, "latest")
    write_image(layout, world, "latest")
    assert layout.remove_manifest(sha256(hello.manifest)) == 1
    assert layout.remove_manifest(sha256(hello.manifest)) == 0
    assert [str(entry.digest) for entry in layout.manifests()] == [sha256(world.manifest)]


def test_unknown_fields_of_index_json_are_kept(layout: OciLayout, hello: Image, world: Image) -> None:
    put_image(layout, hello)
    foreign_index = {
        "schemaVersion": 2,
        "annotations": {"org.example.owner": "someone"},
        "x-other-tool": {"keep": [1, 2]},
        "manifests": [{**descriptor(mt.OCI_MANIFEST, hello.manifest), "x-entry-field": True}],
    }
    (layout.root / "index.json").write_text(json.dumps(foreign_index))
    write_image(layout, world, "v2")
    written = read_json(layout.root / "index.json")
    assert written["annotations"] == {"org.example.owner": "someone"}
    assert written["x-other-tool"] == {"keep": [1, 2]}
    assert written["manifests"][0]["x-entry-field"] is True
    assert written["mediaType"] == mt.OCI_INDEX
    assert len(written["manifests"]) == 2


def test_concurrent_writers_lose_no_ref(tmp_path: Path, hello: Image) -> None:
    root = tmp_path / "shared"
    put_image(OciLayout.create(root), hello)
    errors: list[BaseException] = []

    def add_refs(prefix: str) -> None:
        own = OciLayout.open(root)
        try:
            for number in range(15):
                own.add_manifest(hello.descriptor, f"{prefix}-{number}")
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=add_refs, args=(prefix,)) for prefix in ("a", "b", "c")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(OciLayout.open(root).list_refs()) == 45


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    operations=st.lists(
        st.tuples(st.sampled_from(["add", "remove"]), st.sampled_from(["a", "b", "c"]), st.sampled_from([0, 1])),
        max_size=12,
    )
)
def test_refs_behave_like_a_mapping(
    tmp_path_factory: pytest.TempPathFactory, operations: list[tuple[str, str, int]]
) -> None:
    """Whatever the sequence of edits, each name resolves to the image last given to it."""
    images = IMAGES_FOR_PROPERTY
    layout = OciLayout.create(tmp_path_factory.mktemp("prop"))
    for image in images:
        put_image(layout, image)
    model: dict[str, int] = {}
    for operation, name, which in operations:
        if operation == "add":
            layout.add_manifest(images[which].descriptor, name)
            model[name] = which
        elif name in model:
            layout.remove_ref(name)
            del model[name]
        else:
            with pytest.raises(RefUnknown):
                layout.remove_ref(name)
    assert sorted(layout.list_refs()) == sorted(model)
    for name, which in model.items():
        assert str(layout.resolve(name).digest) == sha256(images[which].manifest)
    named_entries = [entry for entry in layout.manifests() if entry.annotations]
    assert len(named_entries) == len(model), "a name is on one entry only"
    unnamed = [entry.digest for entry in layout.manifests() if not entry.annotations]
    assert len(unnamed) == len(set(unnamed)), "an unnamed image is listed once"
    assert not set(unnamed) & {entry.digest for entry in named_entries}, "and only when no name lists it"


IMAGES_FOR_PROPERTY = (build_image({"p0": b"0"}), build_image({"p1": b"1"}))


# --- garbage collection ------------------------------------------------------------


def test_gc_removes_only_unreachable_blobs(layout: OciLayout, hello: Image, world: Image) -> None:
    shared = hello.layers[0]
    both = build_image({"world": b"w"}, extra_layers=(shared,))
    write_image(layout, hello, "hello")
    write_image(layout, both, "both")
    write_image(layout, world, "world")
    stray = layout.put_blob(b"stray blob").digest

    nothing_to_do = {str(d) for d in layout.blobs()} - {str(stray)}
    report = layout.gc()
    assert report.removed_digests == (stray,)
    assert report.bytes_freed == len(b"stray blob")
    assert {str(d) for d in layout.blobs()} == nothing_to_do

    layout.remove_ref("hello")
    layout.remove_ref("world")
    report = layout.gc()
    expected_removed = (hello.digests | world.digests) - both.digests
    assert {str(d) for d in report.removed_digests} == expected_removed
    assert report.blob_bytes_freed == sum(len(b) for b in (*hello.blobs, *world.blobs) if sha256(b) in expected_removed)
    assert blob_files(layout.root) == {f"sha256:{d.split(':')[1]}" for d in both.digests}
    assert layout.gc().removed_blobs == ()


def test_gc_keeps_unnamed_entries_and_index_children(layout: OciLayout, hello: Image, world: Image) -> None:
    write_image(layout, hello, "latest")
    write_image(layout, world, "latest")  # hello stays, unnamed
    put_image(layout, build_image({"unused": b"u"}))
    raw = index_of(hello, world)
    layout.put_blob(raw)
    layout.add_manifest(index_descriptor(raw), "multi")
    layout.remove_manifest(sha256(hello.manifest))  # still reachable through "multi"
    layout.gc()
    assert {str(d) for d in layout.blobs()} == hello.digests | world.digests | {sha256(raw)}


def test_gc_keeps_the_subject_of_a_referrer(layout: OciLayout, hello: Image) -> None:
    put_image(layout, hello)
    empty = b"{}"
    layout.put_blob(empty)
    signature = b"a signature"
    layout.put_blob(signature)
    referrer = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "artifactType": "application/vnd.example.signature",
            "config": descriptor(mt.OCI_EMPTY, empty),
            "layers": [descriptor("application/vnd.example.signature", signature)],
            "subject": descriptor(mt.OCI_MANIFEST, hello.manifest),
        }
    ).encode()
    layout.put_blob(referrer)
    layout.add_manifest(Descriptor.model_validate(descriptor(mt.OCI_MANIFEST, referrer)), "sig")
    assert layout.gc().removed_blobs == ()
    assert {str(d) for d in layout.blobs()} == hello.digests | {sha256(empty), sha256(signature), sha256(referrer)}


def test_gc_refuses_to_guess_when_a_reachable_manifest_is_corrupt(layout: OciLayout, hello: Image) -> None:
    write_image(layout, hello, "v1")
    stray = layout.put_blob(b"stray").digest
    (layout.root / "blobs" / "sha256" / hashlib.sha256(hello.manifest).hexdigest()).write_bytes(b"{}")
    with pytest.raises((DigestMismatch, SizeMismatch)):
        layout.gc()
    assert layout.has_blob(stray) and layout.has_blob(sha256(hello.layers[0]))


def test_gc_removes_stale_temp_files_only(layout: OciLayout) -> None:
    temp_dir = layout.root / TEMP_DIR
    temp_dir.mkdir(exist_ok=True)
    stale, fresh = temp_dir / "blob-stale", temp_dir / "blob-fresh"
    stale.write_bytes(b"x" * 100)
    fresh.write_bytes(b"y" * 10)
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    report = layout.gc()
    assert report.removed_temp_files == (stale,)
    assert report.temp_bytes_freed == 100 and report.bytes_freed == 100
    assert temp_files(layout.root) == ["blob-fresh"]
    assert layout.gc(temp_max_age=0).removed_temp_files == (fresh,)


def test_gc_leaves_files_it_does_not_manage(layout: OciLayout) -> None:
    foreign = layout.root / "blobs" / "blake3" / ("ab" * 32)
    foreign.parent.mkdir()
    foreign.write_bytes(b"other algorithm")
    odd = layout.root / "blobs" / "sha256" / "README"
    odd.write_bytes(b"not a digest")
    assert layout.gc().removed_blobs == ()
    assert foreign.exists() and odd.exists()


# --- skopeo reads our layouts, we read skopeo's -------------------------------------


def run_skopeo(skopeo: str, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([skopeo, "--insecure-policy", *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"skopeo {' '.join(args)} failed: {result.stderr}"
    return result


@pytest.mark.interop
def test_skopeo_inspects_a_layout_we_wrote(skopeo: str, layout: OciLayout, hello: Image) -> None:
    write_image(layout, hello, "hello:1.0")
    inspected = json.loads(run_skopeo(skopeo, "inspect", f"oci:{layout.root}:hello:1.0").stdout)
    assert inspected["Digest"] == sha256(hello.manifest)
    assert inspected["Layers"] == [sha256(hello.layers[0])]
    assert (inspected["Os"], inspected["Architecture"]) == ("linux", "amd64")
    config = json.loads(run_skopeo(skopeo, "inspect", "--config", f"oci:{layout.root}:hello:1.0").stdout)
    assert config["rootfs"]["diff_ids"] == [sha256(gzip.decompress(hello.layers[0]))]


@pytest.mark.interop
def test_skopeo_copies_our_layout_into_its_own_and_we_read_it(
    skopeo: str, layout: OciLayout, hello: Image, world: Image, tmp_path: Path
) -> None:
    write_image(layout, hello, "hello")
    write_image(layout, world, "world")
    theirs = tmp_path / "theirs"
    run_skopeo(skopeo, "copy", f"oci:{layout.root}:hello", f"oci:{theirs}:copied")
    run_skopeo(skopeo, "copy", f"oci:{layout.root}:world", f"oci:{theirs}:copied")  # moves the name

    copied = OciLayout.open(theirs)
    assert copied.list_refs() == ["copied"]
    entry = copied.resolve("copied")
    assert str(entry.digest) == sha256(world.manifest)
    for digest in copied.blobs():
        copied.verify_blob(digest)
    manifest = json.loads(copied.read_blob(entry.digest, entry.size))
    assert [layer["digest"] for layer in manifest["layers"]] == [sha256(world.layers[0])]

    # Their layout, edited by us, is still theirs to read.
    copied.add_manifest(copied.manifests()[0], "first")
    inspected = json.loads(run_skopeo(skopeo, "inspect", f"oci:{theirs}:first").stdout)
    assert inspected["Digest"] == sha256(hello.manifest)
    copied.remove_ref("first")
    copied.remove_manifest(sha256(hello.manifest))
    assert {str(d) for d in copied.gc().removed_digests} == hello.digests
    run_skopeo(skopeo, "inspect", f"oci:{theirs}:copied")
