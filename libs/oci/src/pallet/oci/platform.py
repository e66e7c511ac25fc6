"""Platforms: parsing ``--platform`` strings, normalising, matching, choosing from an index.

Cheap to import (standard library only; spec types are used duck-typed).

The semantics are containerd's ``platforms`` package, which podman's
``--platform`` follows:

- a specifier is ``<os>|<arch>|<os>/<arch>[/<variant>]``; the OS part may
  carry a version and features: ``windows(10.0.17763+win32k)/amd64``. A
  single component is an OS if it is a known one (the architecture is then
  the host's), else an architecture (the OS is then the host's);
- normalisation lowercases, maps ``macos`` to ``darwin`` and maps
  architectures: ``x86_64``/``x86-64`` → ``amd64`` (variant ``v1`` dropped),
  ``aarch64`` → ``arm64`` (variant ``v8`` dropped, ``v9.0`` → ``v9``),
  ``armhf`` → ``arm/v7``, ``armel`` → ``arm/v6``, ``arm`` without variant →
  ``arm/v7``, ``5``/``6``/``7``/``8`` → ``v5``... for arm, ``i386`` → ``386``
  (and, beyond containerd, ``i486``/``i586``/``i686``/``x86`` → ``386``);
- :func:`compatible_platforms` lists what a platform can run, best first
  (containerd's ``platforms.Only``): ``arm/v7`` also runs ``v6`` and ``v5``;
  ``arm64`` also runs ``arm/v8`` … ``arm/v5``; ``amd64/v3`` runs ``v2`` and
  ``v1``; ``amd64`` also runs ``386``.

A :class:`NormalizedPlatform` is always normalised: compare them with ``==``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar
from urllib.parse import unquote

from pallet.oci.errors import InvalidPlatform, NoMatchingPlatform

__all__ = [
    "NormalizedPlatform",
    "choose_manifest",
    "compatible_platforms",
    "format_platform",
    "host_platform",
    "is_compatible",
    "matches",
    "normalize_platform",
    "parse_platform",
    "platform_from_uname",
]

KNOWN_OSES = frozenset(
    {"aix", "android", "darwin", "dragonfly", "freebsd", "hurd", "illumos", "ios", "js", "linux",
     "nacl", "netbsd", "openbsd", "plan9", "solaris", "windows", "zos"}
)  # fmt: skip
KNOWN_ARCHITECTURES = frozenset(
    {"386", "amd64", "amd64p32", "arm", "armbe", "arm64", "arm64be", "ppc64", "ppc64le", "loong64",
     "mips", "mipsle", "mips64", "mips64le", "mips64p32", "mips64p32le", "ppc", "riscv", "riscv64",
     "s390", "s390x", "sparc", "sparc64", "wasm"}
)  # fmt: skip

_OS_PART = re.compile(r"^([A-Za-z0-9_-]+)(?:\(([A-Za-z0-9_.%-]*)((?:\+[A-Za-z0-9_.%-]+)*)\))?$")
_OTHER_PART = re.compile(r"^[A-Za-z0-9_.-]+$")
_VERSION_NUMBER = re.compile(r"^v(\d+)(?:\.(\d+))?$")
_ARM_MACHINE = re.compile(r"^armv(\d+)")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


@dataclass(frozen=True, slots=True)
class NormalizedPlatform:
    """A normalised platform; ``variant``/``os_version`` are ``""`` when absent.

    Build one with :func:`normalize_platform` or :func:`parse_platform`:
    the constructor does not normalise.
    """

    os: str
    architecture: str
    variant: str = ""
    os_version: str = ""
    os_features: tuple[str, ...] = ()

    def __str__(self) -> str:
        return format_platform(self.os, self.architecture, self.variant)


class PlatformLike(Protocol):
    """What is read from a platform: a spec ``Platform`` or a :class:`NormalizedPlatform`."""

    @property
    def os(self) -> str: ...
    @property
    def architecture(self) -> str: ...
    @property
    def variant(self) -> str | None: ...


class DescriptorLike(Protocol):
    @property
    def platform(self) -> PlatformLike | None: ...


DescriptorT = TypeVar("DescriptorT", bound=DescriptorLike)
DescriptorT_co = TypeVar("DescriptorT_co", bound=DescriptorLike, covariant=True)


class IndexLike(Protocol[DescriptorT_co]):
    """An ``ImageIndex`` or ``DockerManifestList`` (anything with descriptors in ``manifests``)."""

    @property
    def manifests(self) -> Sequence[DescriptorT_co]: ...


def format_platform(os_name: str, architecture: str, variant: str | None = None) -> str:
    """``os/architecture[/variant]``."""
    return f"{os_name}/{architecture}/{variant}" if variant else f"{os_name}/{architecture}"


def _normalize_os(os_name: str) -> str:
    lowered = os_name.lower()
    return "darwin" if lowered == "macos" else lowered


def _normalize_architecture(architecture: str, variant: str) -> tuple[str, str]:
    arch, variant = architecture.lower(), variant.lower()
    if arch in {"i386", "i486", "i586", "i686", "x86", "386"}:
        return "386", ""
    if arch in {"x86_64", "x86-64", "amd64"}:
        return "amd64", "" if variant == "v1" else variant
    if arch in {"aarch64", "arm64"}:
        if variant in {"8", "v8", "v8.0"}:
            return "arm64", ""
        return "arm64", "v9" if variant in {"9", "9.0", "v9.0"} else variant
    if arch == "armhf":
        return "arm", "v7"
    if arch == "armel":
        return "arm", "v6"
    if arch == "arm":
        if variant in {"", "7"}:
            return "arm", "v7"
        return "arm", f"v{variant}" if variant in {"5", "6", "8"} else variant
    return arch, variant


def normalize_platform(
    os_name: str,
    architecture: str,
    variant: str | None = None,
    os_version: str | None = None,
    os_features: Sequence[str] | None = None,
) -> NormalizedPlatform:
    """Normalise the parts of a platform (see the module docstring for the table)."""
    arch, normalized_variant = _normalize_architecture(architecture, variant or "")
    return NormalizedPlatform(
        os=_normalize_os(os_name),
        architecture=arch,
        variant=normalized_variant,
        os_version=os_version or "",
        os_features=tuple(sorted(set(os_features or ()))),
    )


def _normalize_any(value: PlatformLike) -> NormalizedPlatform:
    if isinstance(value, NormalizedPlatform):
        return value
    return normalize_platform(
        value.os,
        value.architecture,
        value.variant,
        getattr(value, "os_version", None),
        getattr(value, "os_features", None),
    )


def platform_from_uname(sysname: str, machine: str) -> NormalizedPlatform:
    """The platform for ``uname -s`` and ``uname -m`` values.

    ``Linux``/``x86_64`` gives ``linux/amd64``; 32-bit ARM variants come from
    the machine name (``armv7l`` → ``arm/v7``, ``armv6l`` → ``arm/v6``;
    ``armv8l``, a 32-bit userland on a 64-bit CPU, gives ``arm/v8``);
    ``loongarch64`` gives ``loong64``; ``i686`` gives ``386``.
    """
    machine = machine.lower()
    arm = _ARM_MACHINE.match(machine)
    if arm:
        return normalize_platform(sysname, "arm", f"v{arm.group(1)}")
    return normalize_platform(sysname, "loong64" if machine == "loongarch64" else machine)


def host_platform() -> NormalizedPlatform:
    """The platform of this machine, from ``os.uname()`` (computed on each call)."""
    uname = os.uname()
    return platform_from_uname(uname.sysname, uname.machine)


def _decode_os_option(value: str, specifier: str) -> str:
    if "%" not in value:
        return value
    if _BAD_PERCENT.search(value):
        raise InvalidPlatform(specifier, f"invalid percent-encoding in {value!r}")
    return unquote(value, errors="strict")


def _parse_os_part(part: str, specifier: str) -> tuple[str, str, tuple[str, ...]]:
    found = _OS_PART.match(part)
    if found is None:
        raise InvalidPlatform(specifier, f"{part!r} is not a valid OS component (os or os(version+feature...))")
    os_name, version, features = found.groups()
    feature_list = tuple(_decode_os_option(f, specifier) for f in (features or "").split("+")[1:])
    return _normalize_os(os_name), _decode_os_option(version or "", specifier), feature_list


def parse_platform(specifier: str, *, host: NormalizedPlatform | None = None) -> NormalizedPlatform:
    """Parse ``os``, ``arch``, ``os/arch`` or ``os/arch/variant`` (containerd's syntax).

    A missing OS or architecture is taken from ``host`` (default:
    :func:`host_platform`). Raises ``InvalidPlatform`` for wildcards, empty
    or invalid components, more than three components, or a single
    component that is neither a known OS nor a known architecture.
    """
    if "*" in specifier:
        raise InvalidPlatform(specifier, "wildcards are not supported")
    parts = specifier.split("/")
    if len(parts) > 3:
        raise InvalidPlatform(specifier, "expected os, arch, os/arch or os/arch/variant")
    os_name, os_version, os_features = _parse_os_part(parts[0], specifier)
    for part in parts[1:]:
        if not _OTHER_PART.match(part):
            raise InvalidPlatform(specifier, f"{part!r} is not a valid component (letters, digits, '_', '.', '-')")
    if len(parts) == 1:
        return _parse_single_component(parts[0], os_name, os_version, os_features, specifier, host)
    variant = parts[2] if len(parts) == 3 else ""
    return normalize_platform(os_name, parts[1], variant, os_version, os_features)


def _parse_single_component(
    component: str,
    os_name: str,
    os_version: str,
    os_features: tuple[str, ...],
    specifier: str,
    host: NormalizedPlatform | None,
) -> NormalizedPlatform:
    resolved_host = host or host_platform()
    if os_name in KNOWN_OSES:
        return normalize_platform(
            os_name, resolved_host.architecture, resolved_host.variant, os_version, os_features
        )
    architecture, variant = _normalize_architecture(component, "")
    if architecture in KNOWN_ARCHITECTURES and not os_version and not os_features:
        return normalize_platform(resolved_host.os, architecture, variant)
    raise InvalidPlatform(specifier, "unknown operating system or architecture")


def matches(wanted: PlatformLike, candidate: PlatformLike) -> bool:
    """True when ``candidate`` is exactly ``wanted`` once both are normalised.

    os, architecture and variant must be equal; the candidate's OS features
    must all be among the wanted ones; for Windows, when both give an OS
    version, the major.minor.build parts must be equal.
    """
    want, have = _normalize_any(wanted), _normalize_any(candidate)
    return (
        (want.os, want.architecture, want.variant) == (have.os, have.architecture, have.variant)
        and set(have.os_features) <= set(want.os_features)
        and _os_versions_match(want, have)
    )


def _os_versions_match(want: NormalizedPlatform, have: NormalizedPlatform) -> bool:
    if want.os != "windows" or not want.os_version or not have.os_version:
        return True
    return want.os_version.split(".")[:3] == have.os_version.split(".")[:3]


def compatible_platforms(wanted: PlatformLike) -> tuple[NormalizedPlatform, ...]:
    """The platforms ``wanted`` can run, best first (containerd's ``platforms.Only`` order)."""
    want = _normalize_any(wanted)
    return tuple(_dedupe([want, *_fallbacks(want)]))


def _dedupe(platforms: list[NormalizedPlatform]) -> list[NormalizedPlatform]:
    return list(dict.fromkeys(platforms))


def _with(base: NormalizedPlatform, architecture: str, variant: str) -> NormalizedPlatform:
    return normalize_platform(base.os, architecture, variant, base.os_version, base.os_features)


def _fallbacks(want: NormalizedPlatform) -> list[NormalizedPlatform]:
    if want.architecture == "amd64":
        level = _variant_number(want.variant)
        lower = [_with(want, "amd64", f"v{n}") for n in range((level or 1) - 1, 0, -1)]
        return [*lower, _with(want, "386", "")]
    if want.architecture == "arm":
        level = _variant_number(want.variant)
        return [_with(want, "arm", f"v{n}") for n in range((level or 0) - 1, 4, -1)] if level and level > 5 else []
    if want.architecture == "arm64":
        return _arm64_fallbacks(want)
    return []


def _variant_number(variant: str) -> int | None:
    found = _VERSION_NUMBER.match(variant)
    return int(found.group(1)) if found else None


def _arm64_fallbacks(want: NormalizedPlatform) -> list[NormalizedPlatform]:
    found = _VERSION_NUMBER.match(want.variant or "v8")
    if found is None or int(found.group(1)) < 8:
        return []
    major, minor = int(found.group(1)), int(found.group(2) or 0)
    variants: list[str] = []
    if major == 9:
        variants += [_arm64_variant(9, m) for m in range(minor - 1, -1, -1)]
        # v9.x is compatible with v8.(x+5): v9.0 diverged from v8.5.
        major, minor = 8, minor + 5
        variants.append(f"v8.{minor}")
    variants += [_arm64_variant(major, m) for m in range(minor - 1, -1, -1)]
    arm_variant = "v8" if want.variant.startswith(("v8.", "v9")) or not want.variant else want.variant
    arm = _with(want, "arm", arm_variant)
    return [*(_with(want, "arm64", v) for v in variants), arm, *_fallbacks(arm)]


def _arm64_variant(major: int, minor: int) -> str:
    return f"v{major}" if minor == 0 else f"v{major}.{minor}"


def is_compatible(wanted: PlatformLike, candidate: PlatformLike) -> bool:
    """True when ``candidate`` is among :func:`compatible_platforms` of ``wanted``."""
    return any(matches(option, candidate) for option in compatible_platforms(wanted))


def choose_manifest(
    index: IndexLike[DescriptorT], wanted: PlatformLike | str, *, strict: bool = False
) -> DescriptorT:
    """The entry of an index that best fits ``wanted`` (a platform or a specifier string).

    Entries are ranked by :func:`compatible_platforms` (an exact match first,
    then lower variants); ties go to the entry listed first. With
    ``strict=True`` only exact matches count (containerd's ``OnlyStrict``).
    Entries without a platform never match. Raises ``NoMatchingPlatform``
    listing the platforms the index holds, or ``InvalidPlatform`` for a bad
    specifier.
    """
    want = parse_platform(wanted) if isinstance(wanted, str) else _normalize_any(wanted)
    options = (want,) if strict else compatible_platforms(want)
    entries = [entry for entry in index.manifests if entry.platform is not None]
    for option in options:
        for entry in entries:
            if entry.platform is not None and matches(option, entry.platform):
                return entry
    raise NoMatchingPlatform(str(want), _describe_available(entries))


def _describe_available(entries: Sequence[DescriptorLike]) -> list[str]:
    described = [
        format_platform(entry.platform.os, entry.platform.architecture, entry.platform.variant)
        for entry in entries
        if entry.platform is not None
    ]
    return list(dict.fromkeys(described))
