"""Deterministic test images built from the static busybox binary.

Everything is made here with the standard library and zstandard, not with
pallet.oci, so that the images are an independent check of the code under
test. The same inputs always give the same bytes and digests.

- ``single_layer(compression)``: busybox in one layer, OCI manifest (gzip,
  zstd or uncompressed layer)
- ``multi_layer()``: three layers; the third removes a directory of the second
  with a whiteout, and an opaque directory replaces another
- ``docker_schema2()``: the single layer image with Docker schema2 media types
- ``two_platform_index()``: an OCI index of linux/amd64 (busybox) and
  linux/arm64 (a synthetic layer: this host cannot run it anyway)
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import zstandard

BUSYBOX = Path("/bin/busybox")
EPOCH = 1_700_000_000  # a fixed mtime for every tar entry: 2023-11-14
CREATED = "2023-11-14T22:13:20Z"
BUSYBOX_APPLETS = ("sh", "echo", "cat", "ls", "true", "false", "id", "env", "sleep", "hostname", "mount", "ps", "test", "uname")

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = {"none": "application/vnd.oci.image.layer.v1.tar",
             "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
             "zstd": "application/vnd.oci.image.layer.v1.tar+zstd"}
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(value: object) -> bytes:
    return json.dumps(value, indent=2, sort_keys=False).encode()


@dataclass(frozen=True)
class Blob:
    media_type: str
    data: bytes = field(repr=False)

    @property
    def digest(self) -> str:
        return sha256(self.data)

    @property
    def size(self) -> int:
        return len(self.data)

    def descriptor(self, **extra: object) -> dict[str, object]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, **extra}


@dataclass(frozen=True)
class Layer(Blob):
    diff_id: str = ""  # sha256 of the uncompressed tar


@dataclass(frozen=True)
class TestImage:
    """One image: manifest, config and layers, as raw bytes with their digests."""

    __test__ = False  # not a pytest test class

    manifest: Blob
    config: Blob
    layers: tuple[Layer, ...]
    platform: dict[str, str] = field(default_factory=lambda: {"os": "linux", "architecture": "amd64"})

    @property
    def digest(self) -> str:
        return self.manifest.digest

    def blobs(self) -> Iterator[Blob]:
        yield self.config
        yield from self.layers


@dataclass(frozen=True)
class TestIndex:
    """An index and the images it lists."""

    __test__ = False
    index: Blob
    images: tuple[TestImage, ...]

    @property
    def digest(self) -> str:
        return self.index.digest

    @property
    def manifest(self) -> Blob:
        return self.index

    def blobs(self) -> Iterator[Blob]:
        for image in self.images:
            yield from image.blobs()


# -- layers

@dataclass(frozen=True)
class Entry:
    """A tar entry of a test layer: a regular file, directory or symlink."""

    path: str
    kind: str = "file"  # file | dir | symlink
    data: bytes = b""
    mode: int = 0o644
    target: str = ""


def tar_bytes(entries: list[Entry]) -> bytes:
    """A deterministic tar (PAX, fixed mtime, owner 0:0) of ``entries`` in the given order."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            info = tarfile.TarInfo(entry.path)
            info.mtime = EPOCH
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mode = entry.mode
            if entry.kind == "dir":
                info.type = tarfile.DIRTYPE
                info.mode = entry.mode if entry.mode != 0o644 else 0o755
                tar.addfile(info)
            elif entry.kind == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = entry.target
                info.mode = 0o777
                tar.addfile(info)
            else:
                info.size = len(entry.data)
                tar.addfile(info, io.BytesIO(entry.data))
    return out.getvalue()


def compress(data: bytes, compression: str) -> bytes:
    if compression == "none":
        return data
    if compression == "gzip":
        return gzip.compress(data, compresslevel=6, mtime=0)
    if compression == "zstd":
        return zstandard.ZstdCompressor(level=3).compress(data)
    raise ValueError(f"unknown compression {compression!r}")


def make_layer(entries: list[Entry], compression: str = "gzip", media_type: str | None = None) -> Layer:
    raw = tar_bytes(entries)
    return Layer(media_type or OCI_LAYER[compression], compress(raw, compression), diff_id=sha256(raw))


def busybox_entries() -> list[Entry]:
    if not BUSYBOX.exists():
        raise FileNotFoundError(f"{BUSYBOX} is missing (Debian package: busybox-static)")
    entries = [Entry("bin", "dir"), Entry("bin/busybox", data=BUSYBOX.read_bytes(), mode=0o755)]
    entries += [Entry(f"bin/{applet}", "symlink", target="busybox") for applet in BUSYBOX_APPLETS]
    entries += [
        Entry("etc", "dir"),
        Entry("etc/group", data=b"root:x:0:\nnobody:x:65534:\n"),
        Entry("etc/passwd", data=b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"),
        Entry("root", "dir", mode=0o700),
        Entry("tmp", "dir", mode=0o1777),
    ]
    return entries


# -- images

def make_config(layers: tuple[Layer, ...], *, architecture: str = "amd64", os_name: str = "linux",
                cmd: tuple[str, ...] = ("/bin/sh",), labels: dict[str, str] | None = None) -> dict[str, object]:
    return {
        "created": CREATED,
        "architecture": architecture,
        "os": os_name,
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Cmd": list(cmd), "Labels": labels or {"org.pallet.test": "yes"}},
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": [{"created": CREATED, "created_by": f"pallet-testing layer {i}"} for i in range(len(layers))],
    }


def make_image(layers: tuple[Layer, ...], *, docker: bool = False, architecture: str = "amd64",
               variant: str | None = None, labels: dict[str, str] | None = None) -> TestImage:
    config_doc = make_config(layers, architecture=architecture, labels=labels)
    if variant:
        config_doc["variant"] = variant
    config = Blob(DOCKER_CONFIG if docker else OCI_CONFIG, canonical_json(config_doc))
    manifest_doc: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST if docker else OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [layer.descriptor() for layer in layers],
    }
    platform = {"architecture": architecture, "os": "linux", **({"variant": variant} if variant else {})}
    return TestImage(Blob(str(manifest_doc["mediaType"]), canonical_json(manifest_doc)), config, layers, platform)


def single_layer(compression: str = "gzip") -> TestImage:
    return make_image((make_layer(busybox_entries(), compression),))


def multi_layer(compression: str = "gzip") -> TestImage:
    base = make_layer(busybox_entries(), compression)
    second = make_layer([
        Entry("etc", "dir"), Entry("etc/pallet-release", data=b"pallet test image\n"),
        Entry("srv", "dir"), Entry("srv/data", "dir"), Entry("srv/data/old.txt", data=b"removed later\n"),
        Entry("opt", "dir"), Entry("opt/app", "dir"), Entry("opt/app/v1.txt", data=b"version 1\n"),
    ], compression)
    third = make_layer([
        Entry("srv", "dir"), Entry("srv/.wh.data"),  # whiteout: srv/data is gone
        Entry("opt", "dir"), Entry("opt/app", "dir"), Entry("opt/app/.wh..wh..opq"),  # opaque: v1.txt hidden
        Entry("opt/app/v2.txt", data=b"version 2\n"),
        Entry("hello.txt", data=b"hello from the third layer\n"),
    ], compression)
    return make_image((base, second, third))


def docker_schema2() -> TestImage:
    layer = make_layer(busybox_entries(), "gzip", media_type=DOCKER_LAYER_GZIP)
    return make_image((layer,), docker=True)


def two_platform_index() -> TestIndex:
    amd64 = single_layer("gzip")
    synthetic = make_layer([Entry("etc", "dir"), Entry("etc/arch", data=b"arm64\n")], "gzip")
    arm64 = make_image((synthetic,), architecture="arm64", variant="v8")
    index_doc = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [image.manifest.descriptor(platform=image.platform) for image in (amd64, arm64)],
    }
    return TestIndex(Blob(OCI_INDEX, canonical_json(index_doc)), (amd64, arm64))


# -- writing images out, independently of pallet.oci

def write_oci_layout(directory: Path, images: dict[str, TestImage | TestIndex]) -> Path:
    """Write ``images`` (ref name -> image) as an OCI image layout."""
    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    (directory / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    manifests = []
    for ref, image in images.items():
        children = image.images if isinstance(image, TestIndex) else (image,)
        for blob in [*image.blobs(), *(child.manifest for child in children), image.manifest]:
            (blobs / blob.digest.split(":", 1)[1]).write_bytes(blob.data)
        manifests.append(image.manifest.descriptor(annotations={"org.opencontainers.image.ref.name": ref}))
    (directory / "index.json").write_text(json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}))
    return directory
