"""OCI runtime-spec 1.1 ``config.json``: the ``linux`` object.

Conventions of ``pallet.oci.spec.runtime`` (frozen, unknown fields kept,
camelCase JSON names). Validation refuses, with the field named:
unknown namespace types and a type listed twice; ID mappings of size 0 or
that overflow 32 bits or overlap; unknown seccomp actions, operators and
architectures; unknown rootfs propagation modes, personality domains and time
namespace clocks; device rules other than ``a``/``b``/``c`` with access in
``rwm``; out-of-range integers.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from pallet.oci.spec._runtime_base import Int64, RuntimeModel, Uint16, Uint32, Uint64, require_absolute

__all__ = [
    "BlockIO",
    "BlockIODevice",
    "CpuResources",
    "DeviceCgroupRule",
    "HugepageLimit",
    "IDMapping",
    "IntelRdt",
    "InterfacePriority",
    "Linux",
    "LinuxDevice",
    "MemoryResources",
    "Namespace",
    "NAMESPACE_TYPES",
    "NetworkResources",
    "Personality",
    "PidsResources",
    "RdmaResources",
    "Resources",
    "Seccomp",
    "SeccompArg",
    "Syscall",
    "ThrottleDevice",
    "TimeOffset",
    "WeightDevice",
    "check_id_mappings",
]

NamespaceType = Literal["pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time"]
NAMESPACE_TYPES: tuple[str, ...] = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")

SeccompAction = Literal[
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
]
SeccompOperator = Literal[
    "SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ"
]
RootfsPropagation = Literal["private", "rprivate", "shared", "rshared", "slave", "rslave", "unbindable", "runbindable"]

_SECCOMP_ARCH = re.compile(r"^SCMP_ARCH_[A-Z0-9_]+$")
_SECCOMP_FLAG = re.compile(r"^SECCOMP_FILTER_FLAG_[A-Z_]+$")


class Namespace(RuntimeModel):
    """A namespace to create (no ``path``) or to join (``path`` to its nsfs file)."""

    type: NamespaceType
    path: str | None = None


class IDMapping(RuntimeModel):
    """``size`` IDs from ``container_id`` in the container map to ``host_id`` on the host."""

    container_id: Uint32 = Field(alias="containerID")
    host_id: Uint32 = Field(alias="hostID")
    size: Uint32

    @model_validator(mode="after")
    def _size_fits(self) -> IDMapping:
        if self.size == 0:
            raise ValueError("an ID mapping's size must be at least 1")
        for name, start in (("containerID", self.container_id), ("hostID", self.host_id)):
            if start + self.size > 2**32:
                raise ValueError(f"{name} {start} + size {self.size} overflows the 32-bit ID range")
        return self

    @property
    def container_range(self) -> range:
        return range(self.container_id, self.container_id + self.size)

    @property
    def host_range(self) -> range:
        return range(self.host_id, self.host_id + self.size)


def check_id_mappings(mappings: tuple[IDMapping, ...] | None) -> tuple[IDMapping, ...] | None:
    """``mappings`` unless two of them overlap on the container or the host side (ValueError)."""
    if not mappings:
        return mappings
    for side in ("container_range", "host_range"):
        ordered = sorted(mappings, key=lambda m: getattr(m, side).start)
        for before, after in zip(ordered, ordered[1:]):
            if getattr(after, side).start < getattr(before, side).stop:
                where = "container" if side == "container_range" else "host"
                raise ValueError(f"ID mappings overlap on the {where} side: {_show(before)} and {_show(after)}")
    return mappings


def _show(mapping: IDMapping) -> str:
    return f"{mapping.container_id}:{mapping.host_id}:{mapping.size}"


class DeviceCgroupRule(RuntimeModel):
    """A rule of the device controller's allow list."""

    allow: bool
    type: Literal["a", "b", "c"] | None = None
    major: Int64 | None = None
    minor: Int64 | None = None
    access: str | None = None

    @field_validator("access")
    @classmethod
    def _access_is_rwm(cls, value: str | None) -> str | None:
        if value is not None and (not value or set(value) - set("rwm")):
            raise ValueError(f"access must be letters of 'rwm', not {value!r}")
        return value


class MemoryResources(RuntimeModel):
    limit: Int64 | None = None
    reservation: Int64 | None = None
    swap: Int64 | None = None
    kernel: Int64 | None = None
    kernel_tcp: Int64 | None = Field(default=None, alias="kernelTCP")
    swappiness: Uint64 | None = None
    disable_oom_killer: bool | None = Field(default=None, alias="disableOOMKiller")
    use_hierarchy: bool | None = None
    check_before_update: bool | None = None


class CpuResources(RuntimeModel):
    shares: Uint64 | None = None
    quota: Int64 | None = None
    burst: Uint64 | None = None
    period: Uint64 | None = None
    realtime_runtime: Int64 | None = None
    realtime_period: Uint64 | None = None
    cpus: str | None = None
    mems: str | None = None
    idle: Int64 | None = None


class PidsResources(RuntimeModel):
    limit: Int64


class BlockIODevice(RuntimeModel):
    major: Int64
    minor: Int64


class WeightDevice(BlockIODevice):
    weight: Uint16 | None = None
    leaf_weight: Uint16 | None = None


class ThrottleDevice(BlockIODevice):
    rate: Uint64


class BlockIO(RuntimeModel):
    weight: Uint16 | None = None
    leaf_weight: Uint16 | None = None
    weight_device: tuple[WeightDevice, ...] | None = None
    throttle_read_bps_device: tuple[ThrottleDevice, ...] | None = None
    throttle_write_bps_device: tuple[ThrottleDevice, ...] | None = None
    throttle_read_iops_device: tuple[ThrottleDevice, ...] | None = Field(default=None, alias="throttleReadIOPSDevice")
    throttle_write_iops_device: tuple[ThrottleDevice, ...] | None = Field(
        default=None, alias="throttleWriteIOPSDevice"
    )


class HugepageLimit(RuntimeModel):
    page_size: str
    limit: Uint64


class InterfacePriority(RuntimeModel):
    name: str
    priority: Uint32


class NetworkResources(RuntimeModel):
    class_id: Uint32 | None = Field(default=None, alias="classID")
    priorities: tuple[InterfacePriority, ...] | None = None


class RdmaResources(RuntimeModel):
    hca_handles: Uint32 | None = None
    hca_objects: Uint32 | None = None


class Resources(RuntimeModel):
    """cgroup limits; ``unified`` holds cgroup v2 files by name."""

    devices: tuple[DeviceCgroupRule, ...] | None = None
    memory: MemoryResources | None = None
    cpu: CpuResources | None = None
    pids: PidsResources | None = None
    block_io: BlockIO | None = Field(default=None, alias="blockIO")
    hugepage_limits: tuple[HugepageLimit, ...] | None = None
    network: NetworkResources | None = None
    rdma: dict[str, RdmaResources] | None = None
    unified: dict[str, str] | None = None


class LinuxDevice(RuntimeModel):
    """A device node to create in the container."""

    path: str
    type: Literal["c", "b", "u", "p"]
    major: Int64
    minor: Int64
    file_mode: Uint32 | None = None
    uid: Uint32 | None = None
    gid: Uint32 | None = None

    @field_validator("path")
    @classmethod
    def _path_is_absolute(cls, value: str) -> str:
        return require_absolute(value, "a device path")


class SeccompArg(RuntimeModel):
    """A condition on syscall argument ``index`` (0 to 5)."""

    index: Annotated[int, Field(ge=0, le=5, strict=True)]
    value: Uint64
    value_two: Uint64 | None = None
    op: SeccompOperator


class Syscall(RuntimeModel):
    """The ``action`` for the syscalls ``names`` (when their ``args`` conditions hold)."""

    names: tuple[str, ...]
    action: SeccompAction
    errno_ret: Uint32 | None = None
    args: tuple[SeccompArg, ...] | None = None

    @field_validator("names")
    @classmethod
    def _names_not_empty(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value or any(not name for name in value):
            raise ValueError("names must list at least one syscall, none empty")
        return value


class Seccomp(RuntimeModel):
    """A seccomp filter: ``default_action`` for syscalls no rule names."""

    default_action: SeccompAction
    default_errno_ret: Uint32 | None = None
    architectures: tuple[str, ...] | None = None
    flags: tuple[str, ...] | None = None
    listener_path: str | None = None
    listener_metadata: str | None = None
    syscalls: tuple[Syscall, ...] | None = None

    @field_validator("architectures")
    @classmethod
    def _known_architecture_form(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for arch in value or ():
            if not _SECCOMP_ARCH.match(arch):
                raise ValueError(f"seccomp architecture {arch!r} is not of the form SCMP_ARCH_*")
        return value

    @field_validator("flags")
    @classmethod
    def _known_flag_form(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for flag in value or ():
            if not _SECCOMP_FLAG.match(flag):
                raise ValueError(f"seccomp flag {flag!r} is not of the form SECCOMP_FILTER_FLAG_*")
        return value


class IntelRdt(RuntimeModel):
    clos_id: str | None = Field(default=None, alias="closID")
    schemata: str | None = None
    l3_cache_schema: str | None = None
    mem_bw_schema: str | None = None
    enable_cmt: bool | None = Field(default=None, alias="enableCMT")
    enable_mbm: bool | None = Field(default=None, alias="enableMBM")


class Personality(RuntimeModel):
    domain: Literal["LINUX", "LINUX32"]
    flags: tuple[str, ...] | None = None


class TimeOffset(RuntimeModel):
    """The offset of a clock in a time namespace."""

    secs: Int64 | None = None
    nanosecs: Uint32 | None = None


class Linux(RuntimeModel):
    """The ``linux`` object: namespaces, ID mappings, cgroups, seccomp, paths."""

    namespaces: tuple[Namespace, ...] | None = None
    uid_mappings: tuple[IDMapping, ...] | None = None
    gid_mappings: tuple[IDMapping, ...] | None = None
    time_offsets: dict[Literal["monotonic", "boottime"], TimeOffset] | None = None
    devices: tuple[LinuxDevice, ...] | None = None
    cgroups_path: str | None = None
    resources: Resources | None = None
    rootfs_propagation: RootfsPropagation | None = None
    seccomp: Seccomp | None = None
    sysctl: dict[str, str] | None = None
    masked_paths: tuple[str, ...] | None = None
    readonly_paths: tuple[str, ...] | None = None
    mount_label: str | None = None
    intel_rdt: IntelRdt | None = None
    personality: Personality | None = None

    @field_validator("namespaces")
    @classmethod
    def _no_duplicate_namespaces(cls, value: tuple[Namespace, ...] | None) -> tuple[Namespace, ...] | None:
        seen: set[str] = set()
        for namespace in value or ():
            if namespace.type in seen:
                raise ValueError(f"namespace type {namespace.type!r} is listed more than once")
            seen.add(namespace.type)
        return value

    @field_validator("uid_mappings", "gid_mappings")
    @classmethod
    def _mappings_do_not_overlap(cls, value: tuple[IDMapping, ...] | None) -> tuple[IDMapping, ...] | None:
        return check_id_mappings(value)

    def namespace(self, type_: str) -> Namespace | None:
        """The namespace entry of that type, or None when the container shares the runtime's."""
        return next((ns for ns in self.namespaces or () if ns.type == type_), None)
