"""OCI image-spec 1.1 types: descriptors, platforms, manifests, indexes, configs.

Every model is a :class:`~pallet.oci.spec._base.SpecModel`: frozen, unknown
fields kept and dumped again, snake_case attributes with the spec's JSON names
as aliases (``mediaType``, ``os.version``, ``ExposedPorts``, ``diff_ids``...),
serialised by ``to_json_bytes()`` with ``None`` fields left out.

Validation refuses what the spec forbids and names the field: a digest that
``Digest.parse`` refuses, a negative size, a ``schemaVersion`` other than 2,
a ``mediaType`` in the body that is not the model's own, a ``rootfs.type``
other than ``layers``, a ``data`` field that is not base64.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any, Literal

from pydantic import Field, field_validator

from pallet.oci import mediatypes
from pallet.oci.digest import verify_bytes
from pallet.oci.spec._base import Annotations, DigestField, NonNegativeInt, SpecModel

__all__ = [
    "Descriptor",
    "ExecutionConfig",
    "History",
    "ImageConfig",
    "ImageIndex",
    "ImageManifest",
    "Platform",
    "RootFS",
]


class Platform(SpecModel):
    """The platform an image runs on (the ``platform`` of a descriptor)."""

    architecture: str
    os: str
    os_version: str | None = Field(default=None, alias="os.version")
    os_features: tuple[str, ...] | None = Field(default=None, alias="os.features")
    variant: str | None = None
    features: tuple[str, ...] | None = None

    def __str__(self) -> str:
        """``os/architecture[/variant]``, as podman's ``--platform`` writes it."""
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text


class Descriptor(SpecModel):
    """A reference to content: media type, digest and size, plus optional details."""

    media_type: str = Field(alias="mediaType")
    digest: DigestField
    size: NonNegativeInt
    urls: tuple[str, ...] | None = None
    annotations: Annotations | None = None
    data: str | None = None
    artifact_type: str | None = Field(default=None, alias="artifactType")
    platform: Platform | None = None

    @field_validator("data")
    @classmethod
    def _data_is_base64(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError) as error:
                raise ValueError(f"data is not valid base64: {error}") from None
        return value

    def embedded_data(self) -> bytes | None:
        """The decoded ``data`` field, checked against ``size`` and ``digest``.

        None when the descriptor embeds no data. Raises ``SizeMismatch`` or
        ``DigestMismatch`` when the embedded bytes are not the described content.
        """
        if self.data is None:
            return None
        content = base64.b64decode(self.data, validate=True)
        verify_bytes(content, self.digest, self.size)
        return content


def _check_body_media_type(value: str | None, expected: str, what: str) -> str | None:
    if value is not None and value != expected:
        raise ValueError(f"mediaType of an {what} must be {expected!r}, not {value!r}")
    return value


class ImageManifest(SpecModel):
    """An OCI image manifest (``application/vnd.oci.image.manifest.v1+json``)."""

    schema_version: Literal[2] = Field(alias="schemaVersion")
    media_type: str | None = Field(default=None, alias="mediaType")
    artifact_type: str | None = Field(default=None, alias="artifactType")
    config: Descriptor
    layers: tuple[Descriptor, ...]
    subject: Descriptor | None = None
    annotations: Annotations | None = None

    @field_validator("media_type")
    @classmethod
    def _media_type_is_manifest(cls, value: str | None) -> str | None:
        return _check_body_media_type(value, mediatypes.OCI_MANIFEST, "OCI image manifest")


class ImageIndex(SpecModel):
    """An OCI image index (``application/vnd.oci.image.index.v1+json``)."""

    schema_version: Literal[2] = Field(alias="schemaVersion")
    media_type: str | None = Field(default=None, alias="mediaType")
    artifact_type: str | None = Field(default=None, alias="artifactType")
    manifests: tuple[Descriptor, ...]
    subject: Descriptor | None = None
    annotations: Annotations | None = None

    @field_validator("media_type")
    @classmethod
    def _media_type_is_index(cls, value: str | None) -> str | None:
        return _check_body_media_type(value, mediatypes.OCI_INDEX, "OCI image index")


class ExecutionConfig(SpecModel):
    """The ``config`` object of an image config: defaults for containers of the image."""

    user: str | None = Field(default=None, alias="User")
    exposed_ports: dict[str, dict[str, Any]] | None = Field(default=None, alias="ExposedPorts")
    env: tuple[str, ...] | None = Field(default=None, alias="Env")
    entrypoint: tuple[str, ...] | None = Field(default=None, alias="Entrypoint")
    cmd: tuple[str, ...] | None = Field(default=None, alias="Cmd")
    volumes: dict[str, dict[str, Any]] | None = Field(default=None, alias="Volumes")
    working_dir: str | None = Field(default=None, alias="WorkingDir")
    labels: dict[str, str] | None = Field(default=None, alias="Labels")
    stop_signal: str | None = Field(default=None, alias="StopSignal")
    args_escaped: bool | None = Field(default=None, alias="ArgsEscaped")


class RootFS(SpecModel):
    """The layer DiffIDs of an image, lowest first (digests of the uncompressed tars)."""

    type: Literal["layers"]
    diff_ids: tuple[DigestField, ...]


class History(SpecModel):
    """One entry of an image's history; ``empty_layer`` entries made no layer."""

    created: str | None = None
    created_by: str | None = None
    author: str | None = None
    comment: str | None = None
    empty_layer: bool | None = None


def _check_rfc3339(value: str | None) -> str | None:
    if value is not None:
        try:
            datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"created is not an RFC 3339 date-time: {value!r}") from None
    return value


class ImageConfig(SpecModel):
    """An OCI image configuration (``application/vnd.oci.image.config.v1+json``)."""

    created: str | None = None
    author: str | None = None
    architecture: str
    variant: str | None = None  # here, as the spec's Go type orders it (skopeo prints that order)
    os: str
    os_version: str | None = Field(default=None, alias="os.version")
    os_features: tuple[str, ...] | None = Field(default=None, alias="os.features")
    config: ExecutionConfig | None = None
    rootfs: RootFS
    history: tuple[History, ...] | None = None

    @field_validator("created")
    @classmethod
    def _created_is_rfc3339(cls, value: str | None) -> str | None:
        return _check_rfc3339(value)

    @property
    def created_at(self) -> datetime | None:
        """``created`` as a datetime (timezone-aware when the document gives one)."""
        return None if self.created is None else datetime.fromisoformat(self.created)

    @property
    def platform(self) -> Platform:
        """The platform this config declares."""
        return Platform(
            architecture=self.architecture,
            os=self.os,
            os_version=self.os_version,
            os_features=self.os_features,
            variant=self.variant,
        )

    @property
    def layer_history(self) -> tuple[History, ...]:
        """The history entries that made a layer (not ``empty_layer``), in order."""
        return tuple(entry for entry in self.history or () if not entry.empty_layer)
