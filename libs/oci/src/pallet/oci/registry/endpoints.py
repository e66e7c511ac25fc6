"""Where a reference is pulled from or pushed to, after registries.conf.

containers-registries.conf(5) and containers/image's sysregistriesv2:

- the ``[[registry]]`` with the longest prefix matching the reference applies;
- its ``location`` replaces the prefix (``example.com/foo`` with location
  ``127.0.0.1:5000/bar`` sends ``example.com/foo/img`` to ``127.0.0.1:5000/bar/img``);
  a ``*.example.com`` prefix has no location and leaves the reference as written;
- ``insecure`` turns TLS verification off and allows plain HTTP for that endpoint;
- ``blocked`` refuses the endpoint (RegistriesConfError naming the prefix);
- pulls try the mirrors first, in order, then the primary location: all
  mirrors for ``pull-from-mirror = "all"``, only for digests with
  ``digest-only`` (or the registry's ``mirror-by-digest-only``), only for tags
  with ``tag-only``. Pushes never go to mirrors.

Every endpoint is looked up again in registries.conf under its own name, so
a mirror can itself be insecure or blocked.
"""

from __future__ import annotations

from dataclasses import dataclass

from pallet.oci.errors import RegistriesConfError
from pallet.oci.reference import Reference, parse
from pallet.oci.shortnames import Mirror, PullFromMirror, RegistriesConf, Registry


@dataclass(frozen=True)
class Endpoint:
    """One place to reach an image: ``reference`` rewritten for it, and how to talk to it."""

    reference: Reference
    insecure: bool = False
    is_mirror: bool = False

    @property
    def host(self) -> str:
        """The registry's ``host[:port]`` (``docker.io`` stays as is; the client maps it)."""
        assert self.reference.domain is not None
        return self.reference.domain

    @property
    def repository(self) -> str:
        """The repository path within the registry, e.g. ``library/busybox``."""
        return self.reference.path


def push_endpoint(ref: Reference, conf: RegistriesConf | None) -> Endpoint:
    """The endpoint a push of ``ref`` goes to (location rewritten; never a mirror)."""
    registry = conf.find_registry(ref) if conf is not None else None
    if registry is None:
        return Endpoint(ref)
    primary = _primary(ref, registry)
    if registry.blocked:
        raise _blocked_error(str(ref), registry.prefix, conf)
    _refuse_blocked(primary.reference, conf)
    return primary


def pull_endpoints(ref: Reference, conf: RegistriesConf | None) -> list[Endpoint]:
    """The endpoints to try for a pull of ``ref``, mirrors first, primary last.

    Blocked endpoints are left out; RegistriesConfError when none is left.
    """
    registry = conf.find_registry(ref) if conf is not None else None
    if registry is None or conf is None:
        return [Endpoint(ref)]
    allowed = [_mirror(ref, registry, mirror) for mirror in _usable_mirrors(ref, registry)]
    allowed = [endpoint for endpoint in allowed if _blocking_prefix(endpoint.reference, conf) is None]
    primary = _primary(ref, registry)
    primary_blocked = registry.prefix if registry.blocked else _blocking_prefix(primary.reference, conf)
    if primary_blocked is None:
        allowed.append(primary)
    elif not allowed:
        raise _blocked_error(str(ref), primary_blocked, conf)
    return allowed


def check_host_allowed(host: str, conf: RegistriesConf | None) -> bool:
    """For a client made from a bare host: raise when blocked; True when registries.conf says insecure."""
    registry = conf.find_registry(host) if conf is not None else None
    if registry is None:
        return False
    if registry.blocked:
        raise _blocked_error(host, registry.prefix, conf)
    return registry.insecure


def _usable_mirrors(ref: Reference, registry: Registry) -> list[Mirror]:
    by_digest = ref.digest is not None
    if registry.mirror_by_digest_only:
        return list(registry.mirrors) if by_digest else []
    usable = []
    for mirror in registry.mirrors:
        if mirror.pull_from_mirror is PullFromMirror.DIGEST_ONLY and not by_digest:
            continue
        if mirror.pull_from_mirror is PullFromMirror.TAG_ONLY and by_digest:
            continue
        usable.append(mirror)
    return usable


def _primary(ref: Reference, registry: Registry) -> Endpoint:
    if not registry.location:  # a *.example.com prefix: the reference as written
        return Endpoint(ref, insecure=registry.insecure)
    return Endpoint(_rewrite(ref, registry, registry.location), insecure=registry.insecure)


def _mirror(ref: Reference, registry: Registry, mirror: Mirror) -> Endpoint:
    return Endpoint(_rewrite(ref, registry, mirror.location), insecure=mirror.insecure, is_mirror=True)


def _rewrite(ref: Reference, registry: Registry, location: str) -> Reference:
    """``ref`` with the part matching the registry's prefix replaced by ``location``."""
    text = str(ref)
    if registry.prefix.startswith("*."):
        matched = ref.domain or ""
    else:
        matched = registry.prefix
    if not text.startswith(matched):
        raise RegistriesConfError(f"internal error: {text!r} does not start with the prefix {matched!r}")
    rewritten = location + text[len(matched) :]
    try:
        result = parse(rewritten)
    except ValueError as error:
        raise RegistriesConfError(
            f"rewriting {text!r} with location {location!r} of [[registry]] {registry.prefix!r} gives an "
            f"invalid reference: {error}"
        ) from None
    if result.domain is None:
        raise RegistriesConfError(f"location {location!r} of [[registry]] {registry.prefix!r} names no registry host")
    return result


def _blocking_prefix(ref: Reference, conf: RegistriesConf) -> str | None:
    registry = conf.find_registry(ref)
    return registry.prefix if registry is not None and registry.blocked else None


def _refuse_blocked(ref: Reference, conf: RegistriesConf | None) -> None:
    prefix = _blocking_prefix(ref, conf) if conf is not None else None
    if prefix is not None:
        raise _blocked_error(str(ref), prefix, conf)


def _blocked_error(name: str, prefix: str, conf: RegistriesConf | None) -> RegistriesConfError:
    where = ", ".join(str(path) for path in conf.sources) if conf is not None and conf.sources else "registries.conf"
    return RegistriesConfError(f"registry {prefix} is blocked in {where}: refusing to access {name}")
