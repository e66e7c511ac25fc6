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
"""

from __future__ import annotations

import json
import posixpath
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from pallet.oci import mediatypes
from pallet.oci.compression import CHUNK_SIZE, auto_decompressed, decompression_errors
from pallet.oci.digest import Digest, VerifyingReader, verify_bytes
from pallet.oci.errors import (
    AmbiguousImage,
    BlobUnknown,
    InvalidDigest,
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
from pallet.oci.transports._local import (
    AtomicOutput,
    TarMember,
    TarWriter,
    index_tar,
    open_section,
    os_failure,
    uncompressed_tar,
    write_verified,
)
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


# --- the docker save format -----------------------------------------------------------------

MAX_MANIFEST_SIZE = 1 << 20  # manifest.json (containers/image's limit)
MAX_CONFIG_SIZE = 4 << 20  # an image config (containers/image's limit)
_LEGACY_CONFIG_KEYS = ("architecture", "config", "container", "container_config", "created", "docker_version", "os")


@dataclass(frozen=True)
class ArchivedLayer:
    """A layer file of an archive: where it lies, its uncompressed size, and whether it is compressed."""

    member: TarMember
    size: int
    compressed: bool


@dataclass(frozen=True)
class ArchivedImage:
    """One image of an archive: the schema2 manifest made for it, its config and its layers by diff_id."""

    archive: Path
    manifest: bytes
    config_digest: Digest
    config: TarMember
    layers: dict[Digest, ArchivedLayer]

    def holds(self, digest: Digest) -> bool:
        return digest == self.config_digest or digest in self.layers

    def open(self, digest: Digest) -> tuple[BinaryIO, int]:
        """A new stream of the config, or of the layer whose diff_id is ``digest`` (decompressed), and its size."""
        if digest == self.config_digest:
            return open_section(self.archive, self.config.offset, self.config.size), self.config.size
        layer = self.layers[digest]
        stream = open_section(self.archive, layer.member.offset, layer.member.size)
        return (auto_decompressed(stream)[0] if layer.compressed else stream), layer.size


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


class ArchiveReader:
    """The members and ``manifest.json`` items of an uncompressed ``docker save`` tar (``shown`` in messages)."""

    def __init__(self, archive: Path, shown: str) -> None:
        self._archive = archive
        self._shown = shown
        self._members = index_tar(archive)
        self.items = self._read_items()

    def choose(self, named: Reference | None, index: int | None) -> dict[str, Any]:
        """The item tagged ``named``, or at ``index``, or the only one (LocalImageNotFound, AmbiguousImage)."""
        items = self.items
        if named is not None:
            for item in items:
                if any(self._tag(text) == named for text in item["RepoTags"]):
                    return item
            raise LocalImageNotFound(f"tag {str(named)!r} not found in {self._shown}")
        if index is not None:
            if index >= len(items):
                raise LocalImageNotFound(f"invalid source index @{index}: {self._shown} holds {len(items)} image(s)")
            return items[index]
        if len(items) == 1:
            return items[0]
        if not items:
            raise LocalImageNotFound(f"{self._shown} holds no image")
        raise AmbiguousImage(
            f"{self._shown} holds {len(items)} images: choose one with docker-archive:PATH:NAME:TAG or PATH:@N"
        )

    def describe(self, item: dict[str, Any]) -> ArchivedImage:
        """The image of ``item``: its config, its layers by diff_id (measured), and a schema2 manifest for them."""
        config_member = self._member(item["Config"])
        config = self._read(config_member, MAX_CONFIG_SIZE)
        diff_ids = self._diff_ids(config, item)
        layers: dict[Digest, ArchivedLayer] = {}
        files: dict[str, Digest] = {}
        for diff_id, name in zip(diff_ids, item["Layers"]):
            if diff_id in layers:  # the same layer twice in one image: docker save links the second to the first
                continue
            if files.setdefault(posixpath.normpath(name), diff_id) != diff_id:
                raise TransportError(f"{self._shown}: layer file {name} is used for two different diff_ids")
            layers[diff_id] = self._measure(self._member(name))
        config_digest = Digest.from_bytes(config)
        descriptor = {"mediaType": mediatypes.DOCKER_CONFIG, "size": len(config), "digest": str(config_digest)}
        manifest = {"schemaVersion": 2, "mediaType": mediatypes.DOCKER_MANIFEST, "config": descriptor}
        manifest["layers"] = [
            {"mediaType": mediatypes.DOCKER_LAYER_GZIP, "size": layers[diff_id].size, "digest": str(diff_id)}
            for diff_id in diff_ids
        ]
        raw = json.dumps(manifest, separators=(",", ":")).encode()
        return ArchivedImage(self._archive, raw, config_digest, config_member, layers)

    def listed_tags(self, number: int, item: dict[str, Any]) -> list[str]:
        """The RepoTags of the ``number``-th image as written (each checked to be NAME:TAG), or ``["@number"]``."""
        for text in item["RepoTags"]:
            if self._tag(text).tag is None:
                raise TransportError(f"{self._shown}: invalid tag {text} ({self._tag(text)}): does not contain a tag")
        return list(item["RepoTags"]) or [f"@{number}"]

    def _member(self, name: str) -> TarMember:
        """The regular-file member ``name``, following one symlink (relative to its directory) or hard link."""
        member = self._members.get(posixpath.normpath(name))
        if member is not None and member.linkname:
            base = posixpath.dirname(member.name) if member.is_symlink else ""
            member = self._members.get(posixpath.normpath(posixpath.join(base, member.linkname)))
        if member is None:
            raise TransportError(f"{self._shown} has no member {name!r} (named by its manifest.json)")
        if not member.is_file:
            raise TransportError(f"{self._shown}: member {name!r} is not a regular file")
        return member

    def _read(self, member: TarMember, limit: int) -> bytes:
        if member.size > limit:
            raise TransportError(f"{self._shown}: {member.name} is larger than {limit} bytes")
        with open_section(self._archive, member.offset, member.size) as stream:
            return stream.read()

    def _read_items(self) -> list[dict[str, Any]]:
        if "manifest.json" not in self._members:
            raise TransportError(f"{self._shown} has no manifest.json: it is not a docker-archive (docker save) file")
        raw = self._read(self._member("manifest.json"), MAX_MANIFEST_SIZE)
        try:
            items = json.loads(raw)
        except ValueError as error:
            raise TransportError(f"{self._shown}: manifest.json is not JSON: {error}") from error
        if not isinstance(items, list) or not all(_is_item(item) for item in items):
            raise TransportError(f"{self._shown}: manifest.json is not a list of {{Config, RepoTags, Layers}}")
        return [{**item, "RepoTags": item.get("RepoTags") or []} for item in items]

    def _tag(self, text: str) -> Reference:
        try:
            return parse_normalized(text)
        except InvalidReference as error:
            raise TransportError(f"{self._shown}: manifest.json holds an invalid tag: {error}") from error

    def _diff_ids(self, config: bytes, item: dict[str, Any]) -> list[Digest]:
        """The config's ``rootfs.diff_ids``: one valid digest per layer of the item."""
        try:
            diff_ids = json.loads(config)["rootfs"]["diff_ids"]
        except (ValueError, KeyError, TypeError) as error:
            raise TransportError(f"{self._shown}: config {item['Config']} has no rootfs.diff_ids") from error
        if not isinstance(diff_ids, list) or len(diff_ids) != len(item["Layers"]):
            raise TransportError(f"{self._shown}: {item['Config']} has not one diff_id per layer of manifest.json")
        try:
            return [Digest.parse(diff_id) for diff_id in diff_ids]
        except InvalidDigest as error:
            raise TransportError(f"{self._shown}: {item['Config']} holds an invalid diff_id: {error}") from error

    def _measure(self, member: TarMember) -> ArchivedLayer:
        """A layer file and its uncompressed size: a compressed one is decompressed once to count its bytes."""
        stream, compression = auto_decompressed(open_section(self._archive, member.offset, member.size))
        if compression == "none":
            stream.close()
            return ArchivedLayer(member, member.size, False)
        size = 0
        try:
            with stream:
                while chunk := stream.read(CHUNK_SIZE):
                    size += len(chunk)
        except decompression_errors() as error:
            raise TransportError(f"{self._shown}: layer {member.name} ({compression}) cannot be decompressed: {error}") from error
        return ArchivedLayer(member, size, True)


def _is_item(item: object) -> bool:
    """True for a dict with a string Config and lists of strings as Layers and RepoTags (which may be null)."""
    return (
        isinstance(item, dict)
        and isinstance(item.get("Config"), str)
        and _strings(item.get("Layers"))
        and _strings(item.get("RepoTags") or [])
    )


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(entry, str) for entry in value)


@dataclass(frozen=True)
class LegacyLayer:
    """A directory of the legacy format: ``<layer_id>/{layer.tar,VERSION,json}``."""

    layer_id: str
    digest: Digest
    config: bytes


def legacy_layers(layers: list[Digest], config: bytes) -> list[LegacyLayer]:
    """The legacy directories of an image, with the IDs and ``json`` files containers/image computes.

    A layer's ID is the sha256 of its ``json`` (parent, chain ID; the top
    layer also takes a few fields of the image config) written as Go
    writes it, so that the same blobs give the same archive as skopeo's.
    """
    image_config = _raw_fields(config)
    result: list[LegacyLayer] = []
    chain: Digest | None = None
    for position, digest in enumerate(layers):
        fields: dict[str, Any] = {"parent": result[-1].layer_id} if result else {}
        if position == len(layers) - 1:
            fields.update((key, image_config.get(key)) for key in _LEGACY_CONFIG_KEYS)
        chain = digest if chain is None else Digest.from_bytes(f"{chain} {digest}".encode())
        layer_id = Digest.from_bytes(go_json(dict(sorted({**fields, "layer_id": str(chain)}.items())))).encoded
        result.append(LegacyLayer(layer_id, digest, go_json(dict(sorted({**fields, "id": layer_id}.items())))))
    return result


def manifest_item(config: Digest, layers: list[Digest], tags: list[Reference]) -> dict[str, Any]:
    """The ``manifest.json`` entry of an image (fields in Go's order; each tag once, as NAME:TAG)."""
    repo_tags = list(dict.fromkeys(f"{tag.name}:{tag.tag}" for tag in tags))
    return {"Config": f"{config.encoded}.json", "RepoTags": repo_tags, "Layers": [f"{d.encoded}.tar" for d in layers]}


def repositories(tags: list[Reference], top_layer_id: str) -> bytes:
    """The legacy ``repositories`` file: name -> tag -> the top layer's ID."""
    names: dict[str, dict[str, str]] = {}
    if top_layer_id:
        for tag in tags:
            names.setdefault(tag.name, {})[str(tag.tag)] = top_layer_id
    return go_json({name: dict(sorted(by_tag.items())) for name, by_tag in sorted(names.items())})


class _RawJSON(str):
    """JSON text written out as it is (Go's ``json.RawMessage``)."""


def _raw_fields(config: bytes) -> dict[str, _RawJSON]:
    """The top-level fields of a JSON object as Go's ``map[string]*json.RawMessage`` holds them.

    Values stay as written (numbers, escapes, key order), compacted the way
    Go's encoder re-emits a RawMessage.
    """
    try:
        if not isinstance(json.loads(config), dict):
            raise ValueError("not a JSON object")
        text = _go_compact(config.decode())
    except ValueError as error:
        raise TransportError(f"the image config cannot be used: {error}") from error
    decoder = json.JSONDecoder()
    fields: dict[str, _RawJSON] = {}
    index = 1
    while text[index] != "}":
        key, index = decoder.raw_decode(text, index)
        _, end = decoder.raw_decode(text, index + 1)  # after the ":"
        fields[key] = _RawJSON(text[index + 1 : end])
        index = end + 1 if text[end] == "," else end
    return fields


def _go_compact(text: str) -> str:
    """``text`` without whitespace outside strings, HTML characters escaped (Go's ``json.Compact`` + HTML escaping)."""
    out: list[str] = []
    in_string = escaped = False
    for char in text:
        if in_string:
            escaped, in_string = (False, True) if escaped else (char == "\\", char != '"')
        elif char in " \t\r\n":
            continue
        else:
            in_string = char == '"'
        out.append(_HTML_ESCAPES.get(char, char))
    return "".join(out)


_HTML_ESCAPES = {char: f"\\u{ord(char):04x}" for char in "<>&\u2028\u2029"}
#: What Go's encoding/json escapes in strings besides other control characters (HTML-safe by default).
_GO_ESCAPES = {char: json.dumps(char)[1:-1] for char in '"\\\n\r\t'} | _HTML_ESCAPES


def go_json(value: Any) -> bytes:
    """Compact JSON as Go's encoding/json writes it: objects in the order given, HTML characters escaped."""
    return _go_encode(value).encode()


def _go_encode(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, _RawJSON | int):
        return str(value)
    if isinstance(value, str):
        return _go_string(value)
    if isinstance(value, float):
        return json.dumps(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{_go_string(key)}:{_go_encode(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_go_encode(item) for item in value) + "]"
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def _go_string(text: str) -> str:
    escaped = (_GO_ESCAPES.get(char) or (f"\\u{ord(char):04x}" if char < " " else char) for char in text)
    return '"' + "".join(escaped) + '"'


TRANSPORT = DockerArchiveTransport()
