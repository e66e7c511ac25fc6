"""The ``docker save`` format, as containers/image 5.23 (skopeo 1.9) reads and writes it.

- reading: ``ArchiveReader`` indexes an uncompressed archive's members and
  ``manifest.json`` items, chooses one, and ``describe`` makes the schema2
  manifest containers/image's ``docker/internal/tarfile/src.go`` makes:
  layers by the config's ``rootfs.diff_ids``, the gzip layer type, the
  uncompressed size; ``ArchivedImage.open`` serves layers decompressed;
- writing: ``legacy_layers`` (the per-layer directories and their IDs),
  ``manifest_item`` and ``repositories``, with ``go_json`` writing JSON as
  Go's encoding/json does, so that archives are byte-identical to skopeo's.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from pallet.oci import mediatypes
from pallet.oci.compression import CHUNK_SIZE, auto_decompressed, decompression_errors
from pallet.oci.digest import Digest
from pallet.oci.errors import AmbiguousImage, InvalidDigest, InvalidReference, LocalImageNotFound, TransportError
from pallet.oci.reference import Reference, parse_normalized
from pallet.oci.transports._tar import TarMember, index_tar, open_section

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
            why = f"{self._shown}: layer {member.name} ({compression}) cannot be decompressed: {error}"
            raise TransportError(why) from error
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
