"""Parsing manifests, indexes and image configs, keeping the raw bytes.

A registry or a layout hands out bytes; their digest is the content's name.
A re-serialisation of a parsed model is *not* the same bytes, so every parsed
value travels with the bytes it came from:

- :class:`ParsedManifest` — ``raw``, ``media_type``, ``digest`` (sha256 of
  ``raw``) and ``model``: an :class:`~pallet.oci.spec.image.ImageManifest`,
  :class:`~pallet.oci.spec.image.ImageIndex`,
  :class:`~pallet.oci.spec.docker.DockerManifest` or
  :class:`~pallet.oci.spec.docker.DockerManifestList`;
- :class:`ParsedConfig` — the same for an image config
  (:class:`~pallet.oci.spec.image.ImageConfig` or
  :class:`~pallet.oci.spec.docker.DockerImageConfig`).

:func:`parse_manifest` decides the media type from, in order: the type the
caller declares (Content-Type header, descriptor), the body's ``mediaType``,
the body's shape. It raises (all ``ManifestError``):

- ``Schema1Unsupported`` for Docker schema1, declared or sniffed;
- ``UnsupportedMediaType`` for a media type that is not a manifest or index
  (a declared one is judged before it is compared with the body's);
- ``MalformedManifest`` for bytes that are not UTF-8 JSON objects, duplicate
  keys, JSON breaking the schema (the message names the field, e.g.
  ``manifest: layers[0].digest: invalid digest 'sha256:zz': ...``), a body
  ``mediaType`` other than the declared one, or fields of another kind of
  manifest (``manifests`` in an image manifest, ``config``/``layers`` in an
  index): the manifest/index confusion that CVE-2021-41190 describes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, Union

from pydantic import ValidationError

from pallet.oci import mediatypes
from pallet.oci.digest import Digest
from pallet.oci.errors import MalformedManifest, Schema1Unsupported, UnsupportedMediaType
from pallet.oci.spec._base import Annotations, SpecModel, describe_validation_error
from pallet.oci.spec.docker import DockerImageConfig, DockerManifest, DockerManifestList
from pallet.oci.spec.image import Descriptor, ImageConfig, ImageIndex, ImageManifest, Platform

__all__ = [
    "AnyConfig",
    "AnyManifest",
    "ParsedConfig",
    "ParsedManifest",
    "manifest_digest",
    "parse_config",
    "parse_image_manifest",
    "parse_index",
    "parse_manifest",
]

AnyManifest = Union[ImageManifest, ImageIndex, DockerManifest, DockerManifestList]
AnyConfig = Union[ImageConfig, DockerImageConfig]
ManifestT = TypeVar("ManifestT", ImageManifest, ImageIndex, DockerManifest, DockerManifestList, AnyManifest)
ConfigT = TypeVar("ConfigT", ImageConfig, DockerImageConfig, AnyConfig)

_MANIFEST_MODELS: dict[str, type[SpecModel]] = {
    mediatypes.OCI_MANIFEST: ImageManifest,
    mediatypes.OCI_INDEX: ImageIndex,
    mediatypes.DOCKER_MANIFEST: DockerManifest,
    mediatypes.DOCKER_MANIFEST_LIST: DockerManifestList,
}
_MEDIA_TYPE_OF_MODEL = {model: media_type for media_type, model in _MANIFEST_MODELS.items()}
_CONFIG_MODELS: dict[str, type[SpecModel]] = {
    mediatypes.OCI_CONFIG: ImageConfig,
    mediatypes.DOCKER_CONFIG: DockerImageConfig,
}
# Content-Types that say nothing about the kind of manifest (old registries, static servers).
_UNINFORMATIVE_TYPES = frozenset({"", "application/json", "text/plain", "application/octet-stream"})
# The fields that tell one kind of manifest from another, and which kind may hold which.
_KIND_FIELDS = ("config", "layers", "manifests", "fsLayers")
_ALLOWED_KIND_FIELDS = {
    mediatypes.OCI_MANIFEST: {"config", "layers"},
    mediatypes.DOCKER_MANIFEST: {"config", "layers"},
    mediatypes.OCI_INDEX: {"manifests"},
    mediatypes.DOCKER_MANIFEST_LIST: {"manifests"},
}


def manifest_digest(raw: bytes, algorithm: str = "sha256") -> Digest:
    """The digest of a manifest (or any blob): the hash of exactly these bytes.

    The one exception is a signed Docker schema1 manifest (JWS): registries
    and skopeo digest its payload without the signatures, so this does too.
    """
    return Digest.from_bytes(_schema1_payload(raw) or raw, algorithm)


def _schema1_payload(raw: bytes) -> bytes | None:
    """The signed payload of a JWS-signed schema1 manifest (libtrust's format), else None."""
    if b'"signatures"' not in raw:
        return None
    try:
        document = json.loads(raw)
        protected = document["signatures"][0]["protected"]
        header = json.loads(_base64url(protected))
        length, tail = int(header["formatLength"]), _base64url(header["formatTail"])
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    if document.get("schemaVersion") != 1 or not 0 < length <= len(raw):
        return None
    return raw[:length] + tail


def _base64url(text: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class ParsedManifest(Generic[ManifestT]):
    """A manifest or index with the bytes it was parsed from.

    ``digest`` is computed from ``raw`` (sha256) when the object is made; it is
    never the digest of a re-serialisation. Make one with :func:`parse_manifest`
    (from bytes) or :meth:`from_model` (to write a new manifest).
    """

    raw: bytes
    media_type: str
    model: ManifestT
    digest: Digest = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "digest", manifest_digest(self.raw))

    @classmethod
    def from_model(cls, model: ManifestT) -> ParsedManifest[ManifestT]:
        """Serialise a model (compact JSON) and keep those bytes as ``raw``."""
        return cls(model.to_json_bytes(), _MEDIA_TYPE_OF_MODEL[type(model)], model)

    @property
    def size(self) -> int:
        return len(self.raw)

    @property
    def is_index(self) -> bool:
        """True for an OCI index or a Docker manifest list."""
        return mediatypes.is_index(self.media_type)

    def descriptor(self, *, platform: Platform | None = None, annotations: Annotations | None = None) -> Descriptor:
        """A descriptor pointing at these bytes (for an index or a layout's index.json)."""
        return Descriptor(
            media_type=self.media_type,
            digest=self.digest,
            size=self.size,
            platform=platform,
            annotations=annotations,
        )


@dataclass(frozen=True, slots=True)
class ParsedConfig(Generic[ConfigT]):
    """An image config with the bytes it was parsed from; ``digest`` is sha256 of ``raw``."""

    raw: bytes
    media_type: str
    model: ConfigT
    digest: Digest = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "digest", manifest_digest(self.raw))

    @classmethod
    def from_model(cls, model: ConfigT) -> ParsedConfig[ConfigT]:
        """Serialise a config (compact JSON) and keep those bytes as ``raw``."""
        media_type = mediatypes.DOCKER_CONFIG if isinstance(model, DockerImageConfig) else mediatypes.OCI_CONFIG
        return cls(model.to_json_bytes(), media_type, model)

    @property
    def size(self) -> int:
        return len(self.raw)

    def descriptor(self) -> Descriptor:
        """The descriptor a manifest's ``config`` field gives for these bytes."""
        return Descriptor(media_type=self.media_type, digest=self.digest, size=self.size)


def parse_manifest(raw: bytes, media_type: str | None = None) -> ParsedManifest[AnyManifest]:
    """Parse a manifest or index; see the module docstring for the rules and errors.

    ``media_type`` is what the source declares (a Content-Type header or a
    descriptor's ``mediaType``); parameters such as ``; charset=utf-8`` are
    ignored, and so are uninformative types (``application/json``,
    ``text/plain``, ``application/octet-stream``).
    """
    document = _load_json_object(raw, "manifest")
    body_type = _body_media_type(document, "manifest")
    declared = _declared_media_type(media_type)
    effective = declared or body_type or _sniff_media_type(document)
    model_class = _model_for(effective)
    if declared is not None and body_type is not None and declared != body_type:
        raise MalformedManifest(
            f"manifest: declared media type {declared!r} but the body's mediaType is {body_type!r}"
        )
    _refuse_foreign_fields(document, effective)
    model: AnyManifest = _validate(model_class, document, "manifest")  # type: ignore[assignment]
    return ParsedManifest(raw, effective, model)


def parse_image_manifest(raw: bytes, media_type: str | None = None) -> ParsedManifest[AnyManifest]:
    """Like :func:`parse_manifest`, refusing indexes: ``model`` is an image manifest.

    An index raises ``UnsupportedMediaType`` (context "image manifest").
    """
    parsed = parse_manifest(raw, media_type)
    if parsed.is_index:
        raise UnsupportedMediaType(parsed.media_type, context="image manifest")
    return parsed


def parse_index(raw: bytes, media_type: str | None = None) -> ParsedManifest[AnyManifest]:
    """Like :func:`parse_manifest`, refusing image manifests: ``model`` is an index or list.

    A body without ``mediaType`` but with ``manifests`` is an OCI index. An
    image manifest raises ``UnsupportedMediaType`` (context "index").
    """
    parsed = parse_manifest(raw, media_type)
    if not parsed.is_index:
        raise UnsupportedMediaType(parsed.media_type, context="index")
    return parsed


def parse_config(raw: bytes, media_type: str | None = None) -> ParsedConfig[AnyConfig]:
    """Parse an image config (OCI by default, Docker when ``media_type`` says so).

    Raises ``UnsupportedMediaType`` (context "config") for other config types
    (artifact configs, ``application/vnd.oci.empty.v1+json``...), and
    ``MalformedManifest`` (message starting ``config:``) for bytes that are not
    a JSON object or break the schema.
    """
    effective = _declared_media_type(media_type) or mediatypes.OCI_CONFIG
    model_class = _CONFIG_MODELS.get(effective)
    if model_class is None:
        raise UnsupportedMediaType(effective, context="config")
    document = _load_json_object(raw, "config")
    model: AnyConfig = _validate(model_class, document, "config")  # type: ignore[assignment]
    return ParsedConfig(raw, effective, model)


def _model_for(media_type: str) -> type[SpecModel]:
    if mediatypes.is_schema1(media_type):
        raise Schema1Unsupported(media_type)
    model_class = _MANIFEST_MODELS.get(media_type)
    if model_class is None:
        raise UnsupportedMediaType(media_type)
    return model_class


def _declared_media_type(media_type: str | None) -> str | None:
    if media_type is None:
        return None
    base = mediatypes.base_media_type(media_type)
    return None if base in _UNINFORMATIVE_TYPES else base


def _load_json_object(raw: bytes, subject: str) -> dict[str, Any]:
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        raise TypeError(f"{subject} must be bytes, not {type(raw).__name__}")
    try:
        text = bytes(raw).decode("utf-8")
        document = json.loads(text, object_pairs_hook=_refuse_duplicate_keys)
    except UnicodeDecodeError as error:
        raise MalformedManifest(f"{subject}: not UTF-8: {error.reason} at byte {error.start}") from None
    except _DuplicateKey as error:
        raise MalformedManifest(f"{subject}: duplicate key {error.key!r}") from None
    except (json.JSONDecodeError, RecursionError) as error:
        raise MalformedManifest(f"{subject}: not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise MalformedManifest(f"{subject}: expected a JSON object, got {type(document).__name__}")
    return document


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise _DuplicateKey(key)
        document[key] = value
    return document


def _body_media_type(document: dict[str, Any], subject: str) -> str | None:
    value = document.get("mediaType")
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedManifest(f"{subject}: mediaType: must be a string, got {value!r}")
    return value


def _sniff_media_type(document: dict[str, Any]) -> str:
    if document.get("schemaVersion") == 1 or "fsLayers" in document:
        signed = "signatures" in document
        return mediatypes.DOCKER_SCHEMA1_SIGNED_MANIFEST if signed else mediatypes.DOCKER_SCHEMA1_MANIFEST
    if "manifests" in document:
        return mediatypes.OCI_INDEX
    if "config" in document and "layers" in document:
        return mediatypes.OCI_MANIFEST
    raise MalformedManifest(
        "manifest: cannot tell its kind: no mediaType, and neither 'manifests' nor 'config' and 'layers'"
    )


def _refuse_foreign_fields(document: dict[str, Any], media_type: str) -> None:
    allowed = _ALLOWED_KIND_FIELDS[media_type]
    foreign = [name for name in _KIND_FIELDS if name in document and name not in allowed]
    if foreign:
        names = ", ".join(repr(name) for name in foreign)
        raise MalformedManifest(f"manifest: a {media_type} must not have the field(s) {names}")


def _validate(model_class: type[SpecModel], document: dict[str, Any], subject: str) -> SpecModel:
    try:
        return model_class.model_validate(document)
    except ValidationError as error:
        raise MalformedManifest(describe_validation_error(error, subject)) from None
