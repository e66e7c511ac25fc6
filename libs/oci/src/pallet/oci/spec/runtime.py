"""OCI runtime-spec 1.1 ``config.json``: :class:`RuntimeConfig` and its parts.

The ``linux`` object lives in ``pallet.oci.spec.runtime_linux``; its names
are re-exported here. Every model is frozen, keeps unknown fields, takes the
spec's camelCase JSON names (``ociVersion``, ``noNewPrivileges``,
``uidMappings``, ``containerID``...) and snake_case attributes, and dumps with
``to_json_bytes()`` (``None`` fields left out).

Validation refuses, naming the field: a missing ``ociVersion``,
``process.user`` or ``process.cwd``; a relative ``cwd``, mount destination
(on Linux) or hook path; a hook timeout below 1; capability names not of the
form ``CAP_*``; rlimit types not of the form ``RLIMIT_*``, listed twice, or
with ``soft`` above ``hard``; ``oomScoreAdj`` outside -1000..1000; out-of-range
integers; and everything ``runtime_linux`` refuses.
"""

from __future__ import annotations

import json
import re
from typing import Annotated

from pydantic import Field, ValidationError, ValidationInfo, field_validator

from pallet.oci.errors import InvalidRuntimeConfig
from pallet.oci.spec._base import describe_validation_error
from pallet.oci.spec._runtime_base import RuntimeModel, Uint32, Uint64, require_absolute
from pallet.oci.spec.runtime_linux import (
    NAMESPACE_TYPES,
    BlockIO,
    CpuResources,
    DeviceCgroupRule,
    HugepageLimit,
    IDMapping,
    IntelRdt,
    Linux,
    LinuxDevice,
    MemoryResources,
    Namespace,
    NetworkResources,
    Personality,
    PidsResources,
    Resources,
    Seccomp,
    SeccompArg,
    Syscall,
    TimeOffset,
    check_id_mappings,
)

__all__ = [
    "NAMESPACE_TYPES",
    "BlockIO",
    "Capabilities",
    "ConsoleSize",
    "CpuResources",
    "DeviceCgroupRule",
    "Hook",
    "Hooks",
    "HugepageLimit",
    "IDMapping",
    "IntelRdt",
    "Linux",
    "LinuxDevice",
    "MemoryResources",
    "Mount",
    "Namespace",
    "NetworkResources",
    "Personality",
    "PidsResources",
    "Process",
    "Resources",
    "Rlimit",
    "Root",
    "RuntimeConfig",
    "Seccomp",
    "SeccompArg",
    "Syscall",
    "TimeOffset",
    "User",
    "parse_runtime_config",
]

_CAPABILITY = re.compile(r"^CAP_[A-Z0-9_]+$")
_RLIMIT = re.compile(r"^RLIMIT_[A-Z]+$")


class ConsoleSize(RuntimeModel):
    height: Uint32
    width: Uint32


class User(RuntimeModel):
    """The IDs the container process runs as (``username`` is for Windows)."""

    uid: Uint32
    gid: Uint32
    umask: Uint32 | None = None
    additional_gids: tuple[Uint32, ...] | None = None
    username: str | None = None


class Capabilities(RuntimeModel):
    """The five capability sets of the process, by ``CAP_*`` name."""

    bounding: tuple[str, ...] | None = None
    effective: tuple[str, ...] | None = None
    inheritable: tuple[str, ...] | None = None
    permitted: tuple[str, ...] | None = None
    ambient: tuple[str, ...] | None = None

    @field_validator("bounding", "effective", "inheritable", "permitted", "ambient")
    @classmethod
    def _names_are_capabilities(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for name in value or ():
            if not _CAPABILITY.match(name):
                raise ValueError(f"{name!r} is not a capability name (CAP_*)")
        return value


class Rlimit(RuntimeModel):
    """A resource limit (``setrlimit``): ``soft`` may not exceed ``hard``."""

    type: str
    hard: Uint64
    soft: Uint64

    @field_validator("type")
    @classmethod
    def _type_is_rlimit(cls, value: str) -> str:
        if not _RLIMIT.match(value):
            raise ValueError(f"{value!r} is not an rlimit type (RLIMIT_*)")
        return value

    @field_validator("soft")
    @classmethod
    def _soft_at_most_hard(cls, value: int, info: ValidationInfo) -> int:
        hard = info.data.get("hard")
        if hard is not None and value > hard:
            raise ValueError(f"soft limit {value} is above the hard limit {hard}")
        return value


class Process(RuntimeModel):
    """The container process: what runs, as whom, with which privileges."""

    terminal: bool | None = None
    console_size: ConsoleSize | None = None
    user: User
    args: tuple[str, ...] | None = None
    command_line: str | None = None
    env: tuple[str, ...] | None = None
    cwd: str
    capabilities: Capabilities | None = None
    rlimits: tuple[Rlimit, ...] | None = None
    no_new_privileges: bool | None = None
    apparmor_profile: str | None = None
    oom_score_adj: Annotated[int, Field(ge=-1000, le=1000, strict=True)] | None = None
    selinux_label: str | None = None

    @field_validator("cwd")
    @classmethod
    def _cwd_is_absolute(cls, value: str) -> str:
        return require_absolute(value, "cwd")

    @field_validator("rlimits")
    @classmethod
    def _rlimit_types_unique(cls, value: tuple[Rlimit, ...] | None) -> tuple[Rlimit, ...] | None:
        types = [limit.type for limit in value or ()]
        duplicates = sorted({name for name in types if types.count(name) > 1})
        if duplicates:
            raise ValueError(f"rlimit type(s) listed more than once: {', '.join(duplicates)}")
        return value


class Root(RuntimeModel):
    """The container's root filesystem (``path`` relative to the bundle, or absolute)."""

    path: str
    readonly: bool | None = None


class Mount(RuntimeModel):
    """A mount on top of the root filesystem (``options`` as in fstab)."""

    destination: str
    type: str | None = None
    source: str | None = None
    options: tuple[str, ...] | None = None
    uid_mappings: tuple[IDMapping, ...] | None = None
    gid_mappings: tuple[IDMapping, ...] | None = None

    @field_validator("destination")
    @classmethod
    def _destination_is_absolute(cls, value: str) -> str:
        return require_absolute(value, "a mount destination")

    @field_validator("uid_mappings", "gid_mappings")
    @classmethod
    def _mappings_do_not_overlap(cls, value: tuple[IDMapping, ...] | None) -> tuple[IDMapping, ...] | None:
        return check_id_mappings(value)


class Hook(RuntimeModel):
    """A program run at a point of the container's lifecycle; ``timeout`` in seconds."""

    path: str
    args: tuple[str, ...] | None = None
    env: tuple[str, ...] | None = None
    timeout: Annotated[int, Field(ge=1, strict=True)] | None = None

    @field_validator("path")
    @classmethod
    def _path_is_absolute(cls, value: str) -> str:
        return require_absolute(value, "a hook path")


class Hooks(RuntimeModel):
    """The hooks by lifecycle point (``prestart`` is deprecated but still read)."""

    prestart: tuple[Hook, ...] | None = None
    create_runtime: tuple[Hook, ...] | None = None
    create_container: tuple[Hook, ...] | None = None
    start_container: tuple[Hook, ...] | None = None
    poststart: tuple[Hook, ...] | None = None
    poststop: tuple[Hook, ...] | None = None


class RuntimeConfig(RuntimeModel):
    """A bundle's ``config.json`` (OCI runtime-spec 1.1)."""

    oci_version: str
    process: Process | None = None
    root: Root | None = None
    hostname: str | None = None
    domainname: str | None = None
    mounts: tuple[Mount, ...] | None = None
    hooks: Hooks | None = None
    annotations: dict[str, str] | None = None
    linux: Linux | None = None


def parse_runtime_config(raw: bytes) -> RuntimeConfig:
    """Parse a ``config.json``; raises ``InvalidRuntimeConfig`` (message ``config.json: ...``)
    for bytes that are not a JSON object or break the schema."""
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError) as error:
        raise InvalidRuntimeConfig(f"config.json: not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise InvalidRuntimeConfig(f"config.json: expected a JSON object, got {type(document).__name__}")
    try:
        return RuntimeConfig.model_validate(document)
    except ValidationError as error:
        raise InvalidRuntimeConfig(describe_validation_error(error, "config.json")) from None
