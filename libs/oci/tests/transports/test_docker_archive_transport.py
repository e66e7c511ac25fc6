"""The ``docker-archive:`` transport: ``docker save`` archives written and read, byte for byte beside skopeo."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import threading
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pallet.oci.digest import Digest
from pallet.oci.errors import (
    AmbiguousImage,
    DigestMismatch,
    ImageNotFound,
    InvalidImageName,
    ManifestTypeRejected,
    TransportError,
    UnsupportedOperation,
)
from pallet.oci.copy import CopyOptions, Policy, copy_image
from pallet.oci.image import read_image
from pallet.oci.transports import default_transports
from pallet.oci.transports.base import BlobInfo, ImageReference, SystemContext
from pallet.oci.transports.docker_archive import DockerArchiveReference, archive_repo_tags
from pallet_testing.images import TestImage, busybox_entries, make_image, make_layer, write_oci_layout

CTX = SystemContext()
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
LAYER_TAR = "application/vnd.docker.image.rootfs.diff.tar"
LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def archive_ref(text: str) -> ImageReference:
    return default_transports(plugins=False).parse_image_name(f"docker-archive:{text}")


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Uncompressed:
    """An image as a docker-archive destination receives it from the copy engine: layers decompressed."""

    manifest: bytes
    config: bytes
    layers: list[bytes]


def uncompressed(image: TestImage) -> Uncompressed:
    layers = [gzip.decompress(layer.data) for layer in image.layers]
    doc = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG, "size": len(image.config.data), "digest": sha256(image.config.data)},
        "layers": [{"mediaType": LAYER_TAR, "size": len(data), "digest": sha256(data)} for data in layers],
    }
    return Uncompressed(json.dumps(doc, separators=(",", ":")).encode(), image.config.data, layers)


def as_read(image: Uncompressed) -> bytes:
    """The manifest a source makes for ``image``, as skopeo's: every layer of the gzip type, by diff_id and size."""
    doc = json.loads(image.manifest)
    for layer in doc["layers"]:
        layer["mediaType"] = LAYER_GZIP
    return json.dumps(doc, separators=(",", ":")).encode()


def write(reference: ImageReference, image: Uncompressed, context: SystemContext = CTX, *, commit: bool = True) -> None:
    """Layers, then config, then manifest: the order skopeo's copy uses."""
    with reference.new_destination(context) as dest:
        for data in image.layers:
            dest.put_blob(io.BytesIO(data), BlobInfo(Digest.from_bytes(data), len(data)))
        dest.put_blob(
            io.BytesIO(image.config), BlobInfo(Digest.from_bytes(image.config), len(image.config)), is_config=True
        )
        dest.put_manifest(image.manifest, DOCKER_MANIFEST)
        if commit:
            dest.commit()


def read_all(reference: ImageReference) -> tuple[bytes, dict[str, bytes]]:
    """The manifest and every blob by digest, as the source gives them."""
    with reference.new_source(CTX) as src:
        raw, media_type = src.get_manifest()
        assert media_type == DOCKER_MANIFEST
        doc = json.loads(raw)
        blobs = {}
        for descriptor in [doc["config"], *doc["layers"]]:
            stream, size = src.get_blob(BlobInfo(Digest.parse(descriptor["digest"])))
            with stream:
                blobs[descriptor["digest"]] = stream.read()
            assert size == descriptor["size"] == len(blobs[descriptor["digest"]])
            assert sha256(blobs[descriptor["digest"]]) == descriptor["digest"]
    return raw, blobs


# --- parsing -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "within"),
    [
        ("/tmp/a.tar", "/tmp/a.tar"),
        ("/tmp/a.tar:busybox", "/tmp/a.tar:docker.io/library/busybox:latest"),
        ("/tmp/a.tar:example.com:5000/app:v1", "/tmp/a.tar:example.com:5000/app:v1"),
        ("/tmp/a.tar:@0", "/tmp/a.tar:@0"),
        ("/tmp/a.tar:@12", "/tmp/a.tar:@12"),
    ],
)
def test_parse(text: str, within: str) -> None:
    reference = archive_ref(text)
    assert reference.string_within_transport() == within
    assert archive_ref(within) == reference
    assert reference.policy_configuration_identity() == ""


@pytest.mark.parametrize(
    "text",
    [
        "",
        ":busybox",
        "/tmp/a.tar:",
        "/tmp/a.tar:@notanumber",
        "/tmp/a.tar:@-1",
        "/tmp/a.tar:@",
        "/tmp/a.tar:Busybox",
        "/tmp/a.tar:busybox@sha256:" + "a" * 64,
    ],
)
def test_bad_names_are_invalid_image_names(text: str) -> None:
    with pytest.raises(InvalidImageName):
        archive_ref(text)


def test_docker_reference_is_the_normalised_tag() -> None:
    reference = archive_ref("/tmp/a.tar:busybox:1.36")
    assert isinstance(reference, DockerArchiveReference)
    assert str(reference.docker_reference()) == "docker.io/library/busybox:1.36"


# --- round trips -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["single_layer", "multi_layer"])
def test_round_trip_gives_back_the_same_manifest_and_blobs(name: str, test_images: Any, tmp_path: Path) -> None:
    image = uncompressed(getattr(test_images, name))
    write(archive_ref(f"{tmp_path}/a.tar:example.com/app:v1"), image)
    raw, blobs = read_all(archive_ref(f"{tmp_path}/a.tar"))
    assert raw == as_read(image)
    assert blobs == {sha256(data): data for data in [image.config, *image.layers]}


def test_the_archive_layout(test_images: Any, tmp_path: Path) -> None:
    image = uncompressed(test_images.multi_layer)
    context = SystemContext(docker_archive_additional_tags=("busybox", "example.com/app:v2"))
    write(archive_ref(f"{tmp_path}/a.tar:example.com/app:v1"), image, context)
    with tarfile.open(tmp_path / "a.tar") as tar:
        names = tar.getnames()
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        repositories = json.loads(tar.extractfile("repositories").read())  # type: ignore[union-attr]
    layer_files = [f"{sha256(data)[7:]}.tar" for data in image.layers]
    assert manifest == [
        {
            "Config": f"{sha256(image.config)[7:]}.json",
            "RepoTags": ["example.com/app:v1", "docker.io/library/busybox:latest", "example.com/app:v2"],
            "Layers": layer_files,
        }
    ]
    assert set(layer_files) <= set(names)
    top = {name.split("/")[0] for name in names if name.endswith("/VERSION")}
    assert len(top) == 3
    assert repositories == {
        "example.com/app": {"v1": repositories["example.com/app"]["v1"], "v2": repositories["example.com/app"]["v1"]},
        "docker.io/library/busybox": {"latest": repositories["example.com/app"]["v1"]},
    }


def test_a_gzip_layer_file_is_read_decompressed_under_its_diff_id(test_images: Any, tmp_path: Path) -> None:
    image = test_images.docker_schema2
    with archive_ref(f"{tmp_path}/a.tar").new_destination(CTX) as dest:
        for blob in image.blobs():
            dest.put_blob(
                io.BytesIO(blob.data), BlobInfo(Digest.parse(blob.digest), blob.size), is_config=blob is image.config
            )
        dest.put_manifest(image.manifest.data, image.manifest.media_type)
        dest.commit()
    with tarfile.open(tmp_path / "a.tar") as tar:  # stored as it came: compressed
        assert tar.extractfile(f"{image.layers[0].digest[7:]}.tar").read() == image.layers[0].data  # type: ignore[union-attr]
    raw, blobs = read_all(archive_ref(f"{tmp_path}/a.tar"))
    layers = json.loads(raw)["layers"]
    plain = gzip.decompress(image.layers[0].data)
    assert layers == [{"mediaType": LAYER_GZIP, "size": len(plain), "digest": image.layers[0].diff_id}]
    assert blobs[image.layers[0].diff_id] == plain


def test_only_docker_schema2_is_stored(test_images: Any, tmp_path: Path) -> None:
    image = test_images.single_layer
    with archive_ref(f"{tmp_path}/a.tar").new_destination(CTX) as dest:
        assert dest.supported_manifest_types() == (DOCKER_MANIFEST,)
        assert dest.desired_layer_compression() == "none"
        with pytest.raises(ManifestTypeRejected):
            dest.put_manifest(image.manifest.data, image.manifest.media_type)
    assert list(tmp_path.iterdir()) == []


# --- destinations: atomicity and verification ----------------------------------------------------------


def test_close_without_commit_leaves_nothing(test_images: Any, tmp_path: Path) -> None:
    write(archive_ref(f"{tmp_path}/a.tar:app:v1"), uncompressed(test_images.single_layer), commit=False)
    assert list(tmp_path.iterdir()) == []


def test_an_existing_archive_is_refused(test_images: Any, tmp_path: Path) -> None:
    (tmp_path / "a.tar").write_bytes(b"something")
    with pytest.raises(UnsupportedOperation, match="existing"):
        archive_ref(f"{tmp_path}/a.tar:app:v1").new_destination(CTX)
    assert (tmp_path / "a.tar").read_bytes() == b"something"
    (tmp_path / "empty.tar").touch()
    write(archive_ref(f"{tmp_path}/empty.tar:app:v1"), uncompressed(test_images.single_layer))
    assert read_all(archive_ref(f"{tmp_path}/empty.tar"))[0] == as_read(uncompressed(test_images.single_layer))


def test_a_bad_blob_is_cut_off_and_the_archive_stays_valid(test_images: Any, tmp_path: Path) -> None:
    image = uncompressed(test_images.single_layer)
    with archive_ref(f"{tmp_path}/a.tar:app:v1").new_destination(CTX) as dest:
        bad = image.layers[0][:-1] + b"!"
        with pytest.raises(DigestMismatch):
            dest.put_blob(io.BytesIO(bad), BlobInfo(Digest.from_bytes(image.layers[0]), len(bad)))
        with pytest.raises(DigestMismatch):  # unknown size: staged first, then checked
            dest.put_blob(io.BytesIO(bad), BlobInfo(Digest.from_bytes(image.layers[0])))
        assert dest.try_reusing_blob(BlobInfo(Digest.from_bytes(image.layers[0]))) is None
        for data in image.layers:
            dest.put_blob(io.BytesIO(data), BlobInfo(None))  # digest and size computed
        dest.put_blob(io.BytesIO(image.config), BlobInfo(None), is_config=True)
        dest.put_manifest(image.manifest, DOCKER_MANIFEST)
        dest.commit()
    with tarfile.open(tmp_path / "a.tar") as tar:
        assert len([name for name in tar.getnames() if name.endswith(".tar") and "/" not in name]) == 1
    assert read_all(archive_ref(f"{tmp_path}/a.tar"))[0] == as_read(image)


def test_a_pipe_receives_the_archive_on_commit(test_images: Any, tmp_path: Path) -> None:
    """As ``skopeo copy ... docker-archive:/dev/stdout``: the archive is streamed into the pipe at commit."""
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(pipe.read_bytes()))
    reader.start()
    image = uncompressed(test_images.single_layer)
    try:
        write(archive_ref(f"{pipe}:app:v1"), image, SystemContext(tmp_dir=tmp_path))
    finally:
        if reader.is_alive():  # commit failed before opening the pipe: let the reader finish
            pipe.open("wb").close()
        reader.join()
    (tmp_path / "copy.tar").write_bytes(received[0])
    assert read_all(archive_ref(f"{tmp_path}/copy.tar"))[0] == as_read(image)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.tar", "pipe"]


# --- sources: archives docker and others write --------------------------------------------------------------


def legacy_archive(path: Path, images: list[tuple[list[str], TestImage]], *, compress: bool = False) -> Path:
    """A ``docker save``-style archive (layers as ``<id>/layer.tar`` files, hard- and symlinked for reuse)."""
    buffer = io.BytesIO()
    items = []
    written: dict[str, str] = {}
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for tags, image in images:
            _add(tar, f"{image.config.digest[7:]}.json", image.config.data)
            layers = []
            for layer in image.layers:
                name = f"{layer.digest[7:]}/layer.tar"
                if layer.digest in written:  # a second image with the same layer: a symlink to the first file
                    name = f"link-{len(items)}-{layer.digest[7:8]}/layer.tar"
                    info = tarfile.TarInfo(name)
                    info.type, info.linkname = tarfile.SYMTYPE, f"../{written[layer.digest]}"
                    tar.addfile(info)
                else:
                    _add(tar, name, layer.data)
                    written[layer.digest] = name
                layers.append(name)
            items.append({"Config": f"{image.config.digest[7:]}.json", "RepoTags": tags, "Layers": layers})
        _add(tar, "manifest.json", json.dumps(items).encode())
    data = gzip.compress(buffer.getvalue()) if compress else buffer.getvalue()
    path.write_bytes(data)
    return path


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


@pytest.fixture
def two_images(test_images: Any, tmp_path: Path) -> Path:
    return legacy_archive(
        tmp_path / "two.tar",
        [(["busybox:latest", "example.com/a:1"], test_images.single_layer), ([], test_images.multi_layer)],
    )


def test_select_by_tag_and_index(test_images: Any, two_images: Path) -> None:
    single, multi = test_images.single_layer, test_images.multi_layer
    for text, image in (
        ("busybox", single),
        ("docker.io/library/busybox:latest", single),
        ("example.com/a:1", single),
        ("@0", single),
        ("@1", multi),
    ):
        raw, blobs = read_all(archive_ref(f"{two_images}:{text}"))
        doc = json.loads(raw)
        assert [layer["digest"] for layer in doc["layers"]] == [layer.diff_id for layer in image.layers]
        assert [layer["mediaType"] for layer in doc["layers"]] == [LAYER_GZIP] * len(image.layers)
        assert doc["config"]["digest"] == image.config.digest
        assert blobs[image.layers[0].diff_id] == gzip.decompress(image.layers[0].data)


def test_missing_tag_index_or_file_is_image_not_found(two_images: Path, tmp_path: Path) -> None:
    for text in (f"{two_images}:busybox:other", f"{two_images}:@2", f"{tmp_path}/none.tar"):
        with pytest.raises(ImageNotFound):
            archive_ref(text).new_source(CTX)
    with pytest.raises(AmbiguousImage, match="2 images"):
        archive_ref(str(two_images)).new_source(CTX)


def test_compressed_archives_are_read(test_images: Any, tmp_path: Path) -> None:
    archive = legacy_archive(tmp_path / "a.tar.gz", [(["app:v1"], test_images.single_layer)], compress=True)
    raw, _ = read_all(archive_ref(f"{archive}:app:v1"))
    assert json.loads(raw)["config"]["digest"] == test_images.single_layer.config.digest


def test_child_manifests_and_delete_are_unsupported(test_images: Any, tmp_path: Path) -> None:
    archive = legacy_archive(tmp_path / "a.tar", [(["app:v1"], test_images.single_layer)])
    with archive_ref(str(archive)).new_source(CTX) as src, pytest.raises(UnsupportedOperation):
        src.get_manifest(Digest.from_bytes(b"x"))
    with pytest.raises(UnsupportedOperation):
        archive_ref(str(archive)).delete(CTX)


def test_layers_stream_from_the_archive_in_constant_memory(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    diff_id = hashlib.sha256()
    with big.open("wb") as out:
        for n in range(48):
            out.write(bytes([n]) * (1 << 20))
            diff_id.update(bytes([n]) * (1 << 20))
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": ["sha256:" + diff_id.hexdigest()]}}
    ).encode()
    with tarfile.open(tmp_path / "a.tar", "w") as tar:
        _add(tar, "c.json", config)
        tar.add(big, arcname="layer.tar")
        _add(
            tar, "manifest.json", json.dumps([{"Config": "c.json", "RepoTags": None, "Layers": ["layer.tar"]}]).encode()
        )
    big.unlink()
    tracemalloc.start()
    try:
        with archive_ref(f"{tmp_path}/a.tar").new_source(CTX) as src:
            layer = json.loads(src.get_manifest()[0])["layers"][0]
            stream, size = src.get_blob(BlobInfo(Digest.parse(layer["digest"])))
            digest = hashlib.sha256()
            with stream:
                while chunk := stream.read(1 << 16):
                    digest.update(chunk)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (size, "sha256:" + digest.hexdigest()) == (48 << 20, layer["digest"])
    assert layer["mediaType"] == LAYER_GZIP  # skopeo's type, whatever the file holds
    assert peak < 8 << 20, f"peak {peak} bytes for a 48 MiB layer"


# --- interop with skopeo ---------------------------------------------------------------------------


def _labelled_image() -> TestImage:
    """An image whose config needs Go's escaping (HTML characters, non-ASCII, key order) in the legacy IDs."""
    labels = {"z.first": "a<b>&c", "a.second": "caf\u00e9 \u2028", "m": "tab\there"}
    return make_image((make_layer(busybox_entries(), "gzip"),), labels=labels)


@pytest.mark.interop
@pytest.mark.parametrize("name", ["multi_layer", "labelled"])
def test_our_archive_is_byte_for_byte_skopeos(
    name: str, test_images: Any, run_skopeo: Callable[..., str], tmp_path: Path
) -> None:
    image = _labelled_image() if name == "labelled" else test_images.multi_layer
    write_oci_layout(tmp_path / "src", {"v1": image})
    theirs = f"docker-archive:{tmp_path}/theirs.tar:example.com/app:v1"
    run_skopeo("copy", "--additional-tag", "busybox:1", f"oci:{tmp_path}/src:v1", theirs)
    context = SystemContext(docker_archive_additional_tags=("busybox:1",))
    write(archive_ref(f"{tmp_path}/ours.tar:example.com/app:v1"), uncompressed(image), context)
    assert (tmp_path / "ours.tar").read_bytes() == (tmp_path / "theirs.tar").read_bytes()


@pytest.mark.interop
def test_skopeo_reads_what_we_write(test_images: Any, run_skopeo: Callable[..., str], tmp_path: Path) -> None:
    image = uncompressed(test_images.multi_layer)
    write(archive_ref(f"{tmp_path}/ours.tar:example.com/app:v1"), image)
    inspected = json.loads(run_skopeo("inspect", f"docker-archive:{tmp_path}/ours.tar:example.com/app:v1"))
    assert inspected["Layers"] == [sha256(data) for data in image.layers]
    run_skopeo("copy", f"docker-archive:{tmp_path}/ours.tar", f"oci:{tmp_path}/theirs:v1")
    manifest_digest = json.loads((tmp_path / "theirs" / "index.json").read_text())["manifests"][0]["digest"]
    blobs = tmp_path / "theirs" / "blobs" / "sha256"
    manifest = json.loads((blobs / manifest_digest[7:]).read_text())
    config = json.loads((blobs / manifest["config"]["digest"][7:]).read_text())  # converted to OCI by skopeo
    assert config["rootfs"]["diff_ids"] == [sha256(data) for data in image.layers]


@pytest.mark.interop
def test_we_read_what_skopeo_writes(test_images: Any, run_skopeo: Callable[..., str], tmp_path: Path) -> None:
    image = test_images.multi_layer
    write_oci_layout(tmp_path / "src", {"v1": image})
    run_skopeo("copy", f"oci:{tmp_path}/src:v1", f"docker-archive:{tmp_path}/theirs.tar:example.com/app:v1")
    raw, blobs = read_all(archive_ref(f"{tmp_path}/theirs.tar:example.com/app:v1"))
    doc = json.loads(raw)
    assert doc["config"]["digest"] == image.config.digest
    assert [layer["digest"] for layer in doc["layers"]] == [layer.diff_id for layer in image.layers]
    assert raw == as_read(uncompressed(image))


# --- sources as skopeo reads them: layers by diff_id, served uncompressed ------------------------------------


def _copy(source: str, dest: str) -> Any:
    transports = default_transports(plugins=False)
    return copy_image(transports.parse_image_name(source), transports.parse_image_name(dest), CopyOptions(),
                      policy=Policy.accept_anything())


def _archive_with_items(path: Path, image: TestImage, item: dict[str, Any], config: bytes | None = None) -> Path:
    """An archive of ``image``'s config (or ``config``) as config.json and its layer files as N.tar; manifest.json holds ``item``."""
    config = image.config.data if config is None else config
    with tarfile.open(path, "w") as tar:
        _add(tar, "config.json", config)
        for number, layer in enumerate(image.layers):
            _add(tar, f"{number}.tar", layer.data)
        _add(tar, "manifest.json", json.dumps([{"Config": "config.json", "RepoTags": [], **item}]).encode())
    return path


@pytest.mark.interop
@pytest.mark.parametrize("writer", ["skopeo", "gzip-layer-files"])
def test_the_manifest_digest_and_layers_are_skopeos(
    writer: str, test_images: Any, run_skopeo: Callable[..., str], tmp_path: Path
) -> None:
    image = test_images.multi_layer
    archive = tmp_path / "a.tar"
    if writer == "skopeo":
        write_oci_layout(tmp_path / "src", {"v1": image})
        run_skopeo("copy", f"oci:{tmp_path}/src:v1", f"docker-archive:{archive}:example.com/app:v1")
    else:
        legacy_archive(archive, [(["example.com/app:v1"], image)])
    theirs = json.loads(run_skopeo("inspect", f"docker-archive:{archive}"))
    with archive_ref(str(archive)).new_source(CTX) as src:
        view = read_image(src, CTX)
    assert view.manifest.raw.decode() == run_skopeo("inspect", "--raw", f"docker-archive:{archive}").rstrip("\n")
    assert str(view.manifest.digest) == theirs["Digest"]
    assert [str(layer.digest) for layer in view.manifest.model.layers] == theirs["Layers"]  # type: ignore[union-attr]
    assert theirs["Layers"] == [layer.diff_id for layer in image.layers]


def test_a_compressed_layer_file_copies_correctly(test_images: Any, tmp_path: Path) -> None:
    image = test_images.multi_layer  # gzip layers, stored as such in the archive
    archive = legacy_archive(tmp_path / "a.tar", [(["app:v1"], image)])
    plain = [gzip.decompress(layer.data) for layer in image.layers]
    _copy(f"docker-archive:{archive}", f"oci:{tmp_path}/oci:v1")  # oci: wants gzip: the layers are compressed again
    layout = tmp_path / "oci"
    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads((layout / "blobs" / "sha256" / index["manifests"][0]["digest"][7:]).read_text())
    assert [layer["mediaType"] for layer in manifest["layers"]] == ["application/vnd.oci.image.layer.v1.tar+gzip"] * 3
    stored = [(layout / "blobs" / "sha256" / layer["digest"][7:]).read_bytes() for layer in manifest["layers"]]
    assert [gzip.decompress(data) for data in stored] == plain
    _copy(f"docker-archive:{archive}", f"dir:{tmp_path}/dir")  # dir: keeps them as served, and says so
    described = json.loads((tmp_path / "dir" / "manifest.json").read_text())["layers"]
    assert [(layer["mediaType"], layer["digest"]) for layer in described] == [
        (LAYER_TAR, layer.diff_id) for layer in image.layers
    ]
    assert [(tmp_path / "dir" / layer.diff_id[7:]).read_bytes() for layer in image.layers] == plain
    _copy(f"docker-archive:{archive}", f"docker-archive:{tmp_path}/b.tar:app:v1")
    _, blobs = read_all(archive_ref(f"{tmp_path}/b.tar"))
    assert [blobs[layer.diff_id] for layer in image.layers] == plain


@pytest.mark.interop
def test_skopeo_checks_a_copy_of_a_compressed_layer_file(
    test_images: Any, run_skopeo: Callable[..., str], tmp_path: Path
) -> None:
    image = test_images.multi_layer
    archive = legacy_archive(tmp_path / "a.tar", [(["app:v1"], image)])
    _copy(f"docker-archive:{archive}", f"oci:{tmp_path}/oci:v1")
    run_skopeo("copy", f"oci:{tmp_path}/oci:v1", f"dir:{tmp_path}/checked")  # skopeo verifies every blob
    config = json.loads(run_skopeo("inspect", "--config", f"oci:{tmp_path}/oci:v1"))
    assert config["rootfs"]["diff_ids"] == [layer.diff_id for layer in image.layers]


def test_one_layer_file_for_two_diff_ids_is_refused(test_images: Any, tmp_path: Path) -> None:
    image = test_images.multi_layer
    archive = _archive_with_items(tmp_path / "a.tar", image, {"Layers": ["0.tar", "0.tar", "2.tar"]})
    with pytest.raises(TransportError, match="two different diff_ids"):
        archive_ref(str(archive)).new_source(CTX)


def test_a_layer_listed_twice_is_described_twice(test_images: Any, tmp_path: Path) -> None:
    image = test_images.single_layer
    config = json.loads(image.config.data)
    config["rootfs"]["diff_ids"] *= 2
    raw_config = json.dumps(config).encode()
    archive = _archive_with_items(tmp_path / "a.tar", image, {"Layers": ["0.tar", "0.tar"]}, raw_config)
    raw, _ = read_all(archive_ref(str(archive)))
    assert [layer["digest"] for layer in json.loads(raw)["layers"]] == [image.layers[0].diff_id] * 2


@pytest.mark.parametrize(("diff_ids", "why"), [(["sha256:nothex"], "invalid diff_id"), ([], "one diff_id per layer")])
def test_bad_diff_ids_are_refused(diff_ids: list[str], why: str, test_images: Any, tmp_path: Path) -> None:
    image = test_images.single_layer
    config = json.loads(image.config.data)
    config["rootfs"]["diff_ids"] = diff_ids
    archive = _archive_with_items(tmp_path / "a.tar", image, {"Layers": ["0.tar"]}, json.dumps(config).encode())
    with pytest.raises(TransportError, match=why):
        archive_ref(str(archive)).new_source(CTX)


def test_a_corrupt_compressed_layer_file_is_refused(test_images: Any, tmp_path: Path) -> None:
    image = test_images.single_layer
    archive = _archive_with_items(tmp_path / "a.tar", image, {"Layers": ["0.tar"]})
    data = archive.read_bytes()
    start = data.index(image.layers[0].data)
    middle = start + len(image.layers[0].data) // 2
    archive.write_bytes(data[:middle] + bytes(64) + data[middle + 64 :])
    with pytest.raises(TransportError, match="cannot be decompressed"):
        archive_ref(str(archive)).new_source(CTX)


# --- listing tags (skopeo list-tags docker-archive:PATH) -----------------------------------------------------


def test_archive_repo_tags_lists_every_image(two_images: Path, tmp_path: Path) -> None:
    assert archive_repo_tags(two_images) == ["busybox:latest", "example.com/a:1", "@1"]
    with pytest.raises(ImageNotFound):
        archive_repo_tags(tmp_path / "none.tar")


def test_a_repo_tag_without_a_tag_is_refused(test_images: Any, tmp_path: Path) -> None:
    archive = legacy_archive(tmp_path / "a.tar", [(["busybox"], test_images.single_layer)])
    with pytest.raises(TransportError, match="does not contain a tag"):
        archive_repo_tags(archive)


@pytest.mark.interop
def test_archive_repo_tags_are_skopeos(test_images: Any, run_skopeo: Callable[..., str], tmp_path: Path) -> None:
    archive = legacy_archive(
        tmp_path / "a.tar",
        [
            (["busybox:latest", "example.com/a:1", "docker.io/library/alpine:3"], test_images.single_layer),
            ([], test_images.multi_layer),
            (["busybox:latest", "localhost:5000/x/y:z"], test_images.docker_schema2),
        ],
    )
    assert {"Tags": archive_repo_tags(archive)} == json.loads(run_skopeo("list-tags", f"docker-archive:{archive}"))
