"""The ``docker-archive:`` transport: the ``docker save`` format, as skopeo 1.9 (containers/image 5.23) uses it.

``docker-archive:PATH[:NAME[:TAG]]`` or ``docker-archive:PATH:@N``. PATH
ends at the first colon; NAME:TAG is normalised (``busybox`` is
``docker.io/library/busybox:latest``) and may not carry a digest; ``@N``
(sources only) is the N-th image of ``manifest.json``, from 0.

- Source: ``manifest.json`` (a list of ``{Config, RepoTags, Layers}``) names
  the images; NAME:TAG selects by RepoTags, @N by position, nothing the only
  image (``AmbiguousImage`` if several). A compressed archive (gzip, bzip2,
  xz, zstd) is first decompressed into a temp file; an uncompressed one is
  read in place: its member headers are indexed once, and every blob is a
  new stream over its member's bytes (no layer is ever held in memory).
  As containers/image's ``docker/internal/tarfile/src.go``: the manifest
  made is Docker schema2 whose layers are the config's ``rootfs.diff_ids``,
  each with the schema2 gzip layer media type (whatever the file holds) and
  its uncompressed size; a compressed layer file is served decompressed, so
  that its bytes hash to the diff_id (its size is found by decompressing it
  once when the source opens; uncompressed files are not read then). A
  member that is a symlink or hard link is followed once.
  ``LocalImageNotFound`` when PATH does not exist, or the tag or index is
  not in it. ``archive_repo_tags`` lists the RepoTags of every image
  (``skopeo list-tags docker-archive:PATH``).
- Destination: Docker schema2 only, uncompressed layers wanted (the copy
  engine converts and decompresses). Blobs stream, verified, into a temp
  archive beside PATH (a failed blob is cut off again); layers as
  ``<hex>.tar``, the config as ``<hex>.json``, the legacy per-layer
  directories (``<id>/layer.tar`` symlink, ``VERSION``, ``json``) and
  ``repositories`` as containers/image writes them, so ``docker load``
  reads it. RepoTags: NAME:TAG plus ``SystemContext.docker_archive_additional_tags``.
  ``commit`` renames the archive over PATH (or copies it into PATH when it
  is a pipe or device). An existing non-empty regular file is refused, as
  skopeo does. Without ``commit`` nothing is left.
- Delete is unsupported.

The format itself (``manifest.json``, the legacy files, Go's JSON) is ``_docker_save``'s.
"""

from __future__ import annotations

import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from pallet.oci import mediatypes
from pallet.oci.digest import Digest, VerifyingReader, verify_bytes
from pallet.oci.errors import (
    BlobUnknown,
    InvalidImageName,
    InvalidReference,
    LocalImageNotFound,
    ManifestTypeRejected,
    TransportError,
    UnsupportedOperation,
)
from pallet.oci.manifest import parse_manifest
from pallet.oci.reference import Reference, parse_normalized, with_default_tag
from pallet.oci.spec.docker import DockerManifest
from pallet.oci.transports._docker_save import (
    MAX_CONFIG_SIZE,
    ArchivedImage,
    ArchiveReader,
    go_json,
    legacy_layers,
    manifest_item,
    repositories,
)
from pallet.oci.transports._local import AtomicOutput, os_failure, write_verified
from pallet.oci.transports._tar import TarWriter, uncompressed_tar
from pallet.oci.transports.base import (
    BlobInfo,
    ImageDestination,
    ImageReference,
    ImageSource,
    ImageTransport,
    SystemContext,
)

DESTINATION_TYPES = (mediatypes.DOCKER_MANIFEST,)


class DockerArchiveTransport(ImageTransport):
    """``docker-archive:PATH[:NAME[:TAG]]`` or ``docker-archive:PATH:@N``."""

    name = "docker-archive"

    def parse_reference(self, text: str) -> DockerArchiveReference:
        path, colon, rest = text.partition(":")
        if path == "":
            raise InvalidImageName(self.name, text, "expected PATH[:NAME[:TAG]] or PATH:@N")
        if not colon:
            return DockerArchiveReference(path)
        if rest.startswith("@"):
            if not rest[1:].isdigit() or not rest[1:].isascii():
                raise InvalidImageName(self.name, text, f"invalid source index {rest}: expected @ and a number from 0")
            return DockerArchiveReference(path, index=int(rest[1:]))
        try:
            named = with_default_tag(parse_normalized(rest))
        except InvalidReference as error:
            raise InvalidImageName(self.name, text, str(error)) from error
        if named.digest is not None:
            raise InvalidImageName(self.name, text, "docker-archive does not support digest references")
        return DockerArchiveReference(path, named=named)


@dataclass(frozen=True, eq=False)
class DockerArchiveReference(ImageReference):
    """The archive at ``path``, and the image in it named ``named`` or at ``index`` (or the only one)."""

    path: str
    named: Reference | None = None
    index: int | None = None

    @property
    def transport(self) -> ImageTransport:
        return TRANSPORT

    def string_within_transport(self) -> str:
        if self.named is not None:
            return f"{self.path}:{self.named}"
        if self.index is not None:
            return f"{self.path}:@{self.index}"
        return self.path

    def docker_reference(self) -> Reference | None:
        return self.named

    def policy_configuration_identity(self) -> str:
        """Empty: containers/image gives docker-archive no scope but the default one."""
        return ""

    def new_source(self, context: SystemContext) -> DockerArchiveSource:
        return DockerArchiveSource.open(self, context)

    def new_destination(self, context: SystemContext) -> DockerArchiveDestination:
        return DockerArchiveDestination.create(self, context)


class DockerArchiveSource(ImageSource):
    """One image of a ``docker save`` archive; ``get_blob`` opens a new stream per call (thread-safe)."""

    def __init__(self, reference: DockerArchiveReference, image: ArchivedImage, temp_dir: Path | None) -> None:
        self._reference = reference
        self._image = image
        self._temp_dir = temp_dir

    @classmethod
    def open(cls, reference: DockerArchiveReference, context: SystemContext) -> DockerArchiveSource:
        reader, temp_dir = open_archive(Path(reference.path), context, str(reference))
        try:
            image = reader.describe(reader.choose(reference.named, reference.index))
        except BaseException:
            if temp_dir is not None:
                shutil.rmtree(temp_dir, ignore_errors=True)
            raise
        return cls(reference, image, temp_dir)

    @property
    def reference(self) -> ImageReference:
        return self._reference

    def get_manifest(self, instance_digest: Digest | None = None) -> tuple[bytes, str]:
        if instance_digest is not None:
            raise UnsupportedOperation(f"{self._reference}: docker-archive images have no child manifests")
        return self._image.manifest, mediatypes.DOCKER_MANIFEST

    def get_blob(self, info: BlobInfo) -> tuple[BinaryIO, int]:
        """The config, or a layer by its diff_id: uncompressed, as many bytes as the manifest says."""
        if info.digest is None or not self._image.holds(info.digest):
            raise BlobUnknown(str(info.digest), str(self._reference))
        return self._image.open(info.digest)

    def has_threadsafe_get_blob(self) -> bool:
        return True

    def close(self) -> None:
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None


class DockerArchiveDestination(ImageDestination):
    """Writes one image into a temp ``docker save`` archive; ``commit`` puts it at PATH.

    Blobs are appended to one tar stream: ``put_blob`` is serialised (a lock
    guards it) and not worth calling from several threads.
    """

    def __init__(self, reference: DockerArchiveReference, repo_tags: list[Reference], out: AtomicOutput) -> None:
        self._reference = reference
        self._repo_tags = repo_tags
        self._out = out
        self._writer = TarWriter(out.file)
        self._lock = threading.Lock()
        self._written: dict[Digest, int] = {}
        self._config: bytes | None = None
        self._item: dict[str, Any] | None = None
        self._legacy_top = ""

    @classmethod
    def create(cls, reference: DockerArchiveReference, context: SystemContext) -> DockerArchiveDestination:
        if reference.index is not None:
            raise InvalidImageName("docker-archive", reference.string_within_transport(), "a destination cannot be @N")
        path = Path(reference.path)
        if path.is_file() and path.stat().st_size > 0:
            raise UnsupportedOperation(f"{reference}: docker-archive does not support modifying existing images")
        tags = [reference.named] if reference.named is not None else []
        tags += [_additional_tag(text) for text in context.docker_archive_additional_tags]
        return cls(reference, tags, AtomicOutput.create(path, context))

    @property
    def reference(self) -> ImageReference:
        return self._reference

    def supported_manifest_types(self) -> tuple[str, ...]:
        return DESTINATION_TYPES

    def desired_layer_compression(self) -> str | None:
        return "none"

    def try_reusing_blob(self, info: BlobInfo, *, can_substitute: bool = False) -> BlobInfo | None:
        with self._lock:
            size = self._written.get(info.digest) if info.digest is not None else None
        if size is None:
            return None
        return BlobInfo(info.digest, size, info.media_type, info.urls, info.annotations)

    def put_blob(self, stream: BinaryIO, info: BlobInfo, *, is_config: bool = False) -> BlobInfo:
        reused = self.try_reusing_blob(info)
        if reused is not None:
            return reused
        if is_config:
            return self._put_config(stream, info)
        if info.digest is None or info.size < 0:
            return self._put_staged_layer(stream, info)
        with self._lock:
            self._writer.add_stream(f"{info.digest.encoded}.tar", _verifying(stream, info), info.size, 0o444)
            self._written[info.digest] = info.size
        return info

    def put_manifest(self, raw: bytes, media_type: str, instance_digest: Digest | None = None) -> None:
        """Record the image (Docker schema2 only) and write its legacy metadata."""
        parsed = parse_manifest(raw, media_type or None)
        if instance_digest is not None or not isinstance(parsed.model, DockerManifest):
            raise ManifestTypeRejected(
                parsed.media_type, DESTINATION_TYPES, "docker-archive stores Docker schema2 images"
            )
        layers = [layer.digest for layer in parsed.model.layers]
        config_digest = parsed.model.config.digest
        with self._lock:
            missing = [str(d) for d in (config_digest, *layers) if d not in self._written]
            if missing or self._config is None:
                raise TransportError(
                    f"{self._reference}: put_manifest before its blobs were stored: {', '.join(missing)}"
                )
            for legacy in legacy_layers(layers, self._config):
                self._writer.add_symlink(f"{legacy.layer_id}/layer.tar", f"../{legacy.digest.encoded}.tar")
                self._writer.add_bytes(f"{legacy.layer_id}/VERSION", b"1.0", 0o444)
                self._writer.add_bytes(f"{legacy.layer_id}/json", legacy.config, 0o444)
                self._legacy_top = legacy.layer_id
            self._item = manifest_item(config_digest, layers, self._repo_tags)

    def commit(self) -> None:
        """Write ``manifest.json`` and ``repositories``, end the archive and put it at PATH."""
        with self._lock:
            if self._item is None:
                raise TransportError(f"{self._reference}: commit without a manifest")
            self._writer.add_bytes("manifest.json", go_json([self._item]), 0o444)
            self._writer.add_bytes("repositories", repositories(self._repo_tags, self._legacy_top), 0o444)
            self._writer.close()
            self._out.publish()

    def close(self) -> None:
        self._out.discard()

    def _put_config(self, stream: BinaryIO, info: BlobInfo) -> BlobInfo:
        data = stream.read(MAX_CONFIG_SIZE + 1)
        if len(data) > MAX_CONFIG_SIZE:
            raise TransportError(f"{self._reference}: the config is larger than {MAX_CONFIG_SIZE} bytes")
        digest = info.digest or Digest.from_bytes(data)
        verify_bytes(data, digest, info.size if info.size >= 0 else None)
        with self._lock:
            self._writer.add_bytes(f"{digest.encoded}.json", data, 0o444)
            self._written[digest] = len(data)
            self._config = data
        return BlobInfo(digest, len(data), info.media_type, info.urls, info.annotations)

    def _put_staged_layer(self, stream: BinaryIO, info: BlobInfo) -> BlobInfo:
        """A layer of unknown digest or size: hashed into a temp file first (a tar header needs the size)."""
        staging = self._out.staging_dir()
        try:
            stored = write_verified(stream, info, staging, lambda digest: staging / digest.encoded)
        except OSError as error:
            raise os_failure(f"stage a layer for {self._reference}", error) from error
        assert stored.digest is not None
        staged = staging / stored.digest.encoded
        try:
            with staged.open("rb") as copy:
                return self.put_blob(copy, stored)
        finally:
            staged.unlink(missing_ok=True)


def _verifying(stream: BinaryIO, info: BlobInfo) -> BinaryIO:
    assert info.digest is not None
    return VerifyingReader(stream, info.digest, info.size)  # type: ignore[return-value]


def _additional_tag(text: str) -> Reference:
    """An additional tag (skopeo's --additional-tag): normalised, tagged, no digest."""
    try:
        named = with_default_tag(parse_normalized(text))
    except InvalidReference as error:
        raise InvalidImageName("docker-archive", text, f"invalid additional tag: {error}") from error
    if named.digest is not None:
        raise InvalidImageName("docker-archive", text, "an additional tag cannot carry a digest")
    return named


# --- opening an archive; the tags of its images ----------------------------------------------


def open_archive(path: Path, context: SystemContext, shown: str = "") -> tuple[ArchiveReader, Path | None]:
    """A reader of the archive at ``path``, and the temp directory of its decompressed copy (None if none).

    The caller removes the temp directory when done. ``LocalImageNotFound``
    when ``path`` does not exist (naming ``shown``, else ``docker-archive:PATH``).
    """
    if not path.exists():
        raise LocalImageNotFound(f"no image at {shown or f'docker-archive:{path}'}: {path} does not exist")
    archive, temp_dir = uncompressed_tar(path, context)
    try:
        return ArchiveReader(archive, str(path)), temp_dir
    except BaseException:
        if temp_dir is not None:
            shutil.rmtree(temp_dir, ignore_errors=True)
        raise


def archive_repo_tags(path: str | Path, context: SystemContext | None = None) -> list[str]:
    """The RepoTags of every image of the archive at ``path``, as ``skopeo list-tags docker-archive:`` lists them.

    In ``manifest.json``'s order: each tag as written (it must be NAME:TAG:
    TransportError otherwise), and ``@N`` for the N-th image when it has
    none. ``LocalImageNotFound`` when ``path`` does not exist.
    """
    reader, temp_dir = open_archive(Path(path), context or SystemContext())
    try:
        return [tag for number, item in enumerate(reader.items) for tag in reader.listed_tags(number, item)]
    finally:
        if temp_dir is not None:
            shutil.rmtree(temp_dir, ignore_errors=True)


TRANSPORT = DockerArchiveTransport()
