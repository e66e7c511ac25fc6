"""Docker image manifest v2, schema 2: manifest, manifest list and image config.

The same conventions as ``pallet.oci.spec.image`` (frozen, unknown fields kept,
JSON names as aliases, ``to_json_bytes()``). Docker descriptors are OCI
descriptors (``mediaType``, ``digest``, ``size``, ``urls``, ``platform``), so
:class:`~pallet.oci.spec.image.Descriptor` is reused.

Unlike OCI, ``mediaType`` is required in the body of a schema2 manifest and
manifest list, and must be the model's own.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from pallet.oci import mediatypes
from pallet.oci.spec._base import SpecModel
from pallet.oci.spec.image import Descriptor, ExecutionConfig, ImageConfig

__all__ = [
    "DockerContainerConfig",
    "DockerImageConfig",
    "DockerManifest",
    "DockerManifestList",
    "HealthConfig",
]


def _require_media_type(value: str, expected: str, what: str) -> str:
    if value != expected:
        raise ValueError(f"mediaType of a {what} must be {expected!r}, not {value!r}")
    return value


class DockerManifest(SpecModel):
    """A Docker schema2 image manifest (``application/vnd.docker.distribution.manifest.v2+json``)."""

    schema_version: Literal[2] = Field(alias="schemaVersion")
    media_type: str = Field(alias="mediaType")
    config: Descriptor
    layers: tuple[Descriptor, ...]

    @field_validator("media_type")
    @classmethod
    def _media_type_is_manifest(cls, value: str) -> str:
        return _require_media_type(value, mediatypes.DOCKER_MANIFEST, "Docker schema2 manifest")


class DockerManifestList(SpecModel):
    """A Docker manifest list (``application/vnd.docker.distribution.manifest.list.v2+json``)."""

    schema_version: Literal[2] = Field(alias="schemaVersion")
    media_type: str = Field(alias="mediaType")
    manifests: tuple[Descriptor, ...]

    @field_validator("media_type")
    @classmethod
    def _media_type_is_list(cls, value: str) -> str:
        return _require_media_type(value, mediatypes.DOCKER_MANIFEST_LIST, "Docker manifest list")


class HealthConfig(SpecModel):
    """A HEALTHCHECK: durations are in nanoseconds, as Docker writes them."""

    test: tuple[str, ...] | None = Field(default=None, alias="Test")
    interval: int | None = Field(default=None, alias="Interval")
    timeout: int | None = Field(default=None, alias="Timeout")
    start_period: int | None = Field(default=None, alias="StartPeriod")
    start_interval: int | None = Field(default=None, alias="StartInterval")
    retries: int | None = Field(default=None, alias="Retries")


class DockerContainerConfig(ExecutionConfig):
    """The ``config`` (and ``container_config``) of a Docker image config.

    The OCI execution fields plus Docker's own; ``Cmd`` and ``Entrypoint`` may
    be ``null`` in Docker documents.
    """

    hostname: str | None = Field(default=None, alias="Hostname")
    domainname: str | None = Field(default=None, alias="Domainname")
    attach_stdin: bool | None = Field(default=None, alias="AttachStdin")
    attach_stdout: bool | None = Field(default=None, alias="AttachStdout")
    attach_stderr: bool | None = Field(default=None, alias="AttachStderr")
    tty: bool | None = Field(default=None, alias="Tty")
    open_stdin: bool | None = Field(default=None, alias="OpenStdin")
    stdin_once: bool | None = Field(default=None, alias="StdinOnce")
    healthcheck: HealthConfig | None = Field(default=None, alias="Healthcheck")
    image: str | None = Field(default=None, alias="Image")
    network_disabled: bool | None = Field(default=None, alias="NetworkDisabled")
    mac_address: str | None = Field(default=None, alias="MacAddress")
    on_build: tuple[str, ...] | None = Field(default=None, alias="OnBuild")
    stop_timeout: int | None = Field(default=None, alias="StopTimeout")
    shell: tuple[str, ...] | None = Field(default=None, alias="Shell")


class DockerImageConfig(ImageConfig):
    """A Docker image config (``application/vnd.docker.container.image.v1+json``).

    An OCI image config plus the fields Docker adds at the top level.
    """

    config: DockerContainerConfig | None = None
    container_config: DockerContainerConfig | None = None
    container: str | None = None
    docker_version: str | None = None
    id: str | None = None
    parent: str | None = None
    comment: str | None = None
