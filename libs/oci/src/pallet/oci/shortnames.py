"""registries.conf (v2) and short-name resolution, as containers/image does them.

Only the parts about names: unqualified-search-registries, short-name-mode,
[aliases] and the [[registry]] tables (prefix, location, insecure, blocked,
mirror-by-digest-only, [[registry.mirror]]) with the longest-prefix lookup.
Behaviour follows containers-registries.conf(5), pkg/sysregistriesv2 and
pkg/shortnames of containers/image.

Which files are read (``load_registries_conf``):

* an explicit ``path``, else ``$CONTAINERS_REGISTRIES_CONF``: that file (it must
  exist) and the drop-ins beside it, in ``<file>.d/*.conf``;
* else the user file ``$XDG_CONFIG_HOME/containers/registries.conf`` (default
  ``~/.config/...``) if it exists, with its own ``registries.conf.d``; it replaces
  the system file and the system drop-ins;
* else ``/etc/containers/registries.conf`` (may be missing) with
  ``/etc/containers/registries.conf.d`` and then the user's ``registries.conf.d``.

Drop-ins are read in name order per directory; a later file replaces the fields
it sets, [[registry]] tables are merged by prefix and [aliases] by name (an empty
alias value erases the alias). Drop-ins must use the v2 format.
"""

from __future__ import annotations

import enum
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pallet.oci.errors import InvalidReference, RegistriesConfError, ShortNameError
from pallet.oci.reference import (
    Reference,
    is_short_name,
    names_a_registry,
    parse,
    parse_normalized,
    with_default_tag,
)

SYSTEM_REGISTRIES_CONF = Path("/etc/containers/registries.conf")
REGISTRIES_CONF_ENV = "CONTAINERS_REGISTRIES_CONF"
NO_TTY_MESSAGE = "short-name resolution enforced but cannot prompt without a TTY"

_V1_SECTIONS = ("search", "insecure", "block")
_V2_KEYS = (
    "registry",
    "unqualified-search-registries",
    "credential-helpers",
    "short-name-mode",
    "additional-layer-store-auth-helper",
    "aliases",
)


class ShortNameMode(enum.StrEnum):
    """How ambiguous short names are handled (``short-name-mode``)."""

    ENFORCING = "enforcing"  # prompt on a TTY, otherwise refuse
    PERMISSIVE = "permissive"  # prompt on a TTY, otherwise use every candidate
    DISABLED = "disabled"  # never prompt, use every candidate


# containers-registries.conf(5): "If short-name-mode is not specified at all or
# left empty, default to the permissive mode." (Distributions often ship a file
# setting "enforcing".)
DEFAULT_SHORT_NAME_MODE = ShortNameMode.PERMISSIVE


class PullFromMirror(enum.StrEnum):
    """Which pulls may use a mirror (``pull-from-mirror``)."""

    ALL = "all"
    DIGEST_ONLY = "digest-only"
    TAG_ONLY = "tag-only"


@dataclass(frozen=True, slots=True)
class Mirror:
    """A ``[[registry.mirror]]`` table."""

    location: str
    insecure: bool = False
    pull_from_mirror: PullFromMirror = PullFromMirror.ALL


@dataclass(frozen=True, slots=True)
class Registry:
    """A ``[[registry]]`` table. ``location`` is "" only for a ``*.domain`` prefix
    without one, meaning "use the reference as written"."""

    prefix: str
    location: str
    insecure: bool = False
    blocked: bool = False
    mirror_by_digest_only: bool = False
    mirrors: tuple[Mirror, ...] = ()

    def matches(self, name: str) -> bool:
        """True when ``name`` (a host, repository or reference text) is under this prefix."""
        return prefix_matches(name, self.prefix)


@dataclass(frozen=True, slots=True)
class Alias:
    """A short-name alias; ``value`` None means an empty value erased it."""

    name: str
    value: Reference | None
    origin: Path


@dataclass(frozen=True)
class RegistriesConf:
    """The merged configuration. Build it with ``load_registries_conf``."""

    search_registries: tuple[str, ...] = ()
    search_registries_origin: Path | None = None
    short_name_mode: ShortNameMode = DEFAULT_SHORT_NAME_MODE
    aliases: Mapping[str, Alias] = field(default_factory=lambda: MappingProxyType({}))
    registries: tuple[Registry, ...] = ()
    sources: tuple[Path, ...] = ()

    def alias(self, name: str) -> Reference | None:
        """The alias value for a short repository name (no tag or digest), if any."""
        found = self.aliases.get(name)
        return None if found is None else found.value

    def find_registry(self, ref: Reference | str) -> Registry | None:
        """The [[registry]] with the longest prefix matching ``ref``, as sysregistriesv2.

        ``ref`` is a reference or a host / repository / reference text starting
        with its registry. Ties go to the first prefix in sorted order.
        """
        text = str(ref)
        best: Registry | None = None
        for registry in self.registries:
            if registry.matches(text) and (best is None or len(registry.prefix) > len(best.prefix)):
                best = registry
        return best


def prefix_matches(name: str, prefix: str) -> bool:
    """sysregistriesv2's prefix rule: ``name`` is ``prefix`` or continues it with ":", "/" or "@".

    A ``*.example.com`` prefix matches any host ending in ``.example.com`` (not
    the bare ``example.com``), before any "/", whatever follows the host.
    """
    if prefix.startswith("*."):
        suffix = prefix[1:]
        index = name.find(suffix)
        if index == -1 or "/" in name[:index]:
            return False
        end = index + len(suffix)
    else:
        if not name.startswith(prefix):
            return False
        end = len(prefix)
    return end == len(name) or name[end] in ":/@"


# --- loading -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _FileConf:
    """What one file sets; None means the field is absent from that file."""

    search_registries: tuple[str, ...] | None = None
    search_registries_origin: Path | None = None
    short_name_mode: ShortNameMode | None = None
    aliases: dict[str, Alias] = field(default_factory=dict)
    registries: tuple[Registry, ...] = ()


def load_registries_conf(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    home: str | os.PathLike[str] | None = None,
    system_path: str | os.PathLike[str] = SYSTEM_REGISTRIES_CONF,
) -> RegistriesConf:
    """Read and merge registries.conf and its drop-ins (see the module docstring).

    ``env`` defaults to ``os.environ``; ``home`` to ``$HOME``. A missing system
    file is an empty configuration; a missing explicit file is an error. Every
    RegistriesConfError names the file at fault.
    """
    env = os.environ if env is None else env
    main, drop_in_dirs, required = _locate(path, env, home, Path(system_path))
    merged = _read_file(main, drop_in=False, required=required)
    sources = [main] if merged is not None else []
    if merged is None:
        merged = _FileConf()
    for drop_in in _drop_in_files(drop_in_dirs):
        update = _read_file(drop_in, drop_in=True, required=False)
        if update is not None:
            merged = _merge(merged, update)
            sources.append(drop_in)
    return _finish(merged, tuple(sources))


def _locate(
    path: str | os.PathLike[str] | None, env: Mapping[str, str], home: str | os.PathLike[str] | None, system: Path
) -> tuple[Path, list[Path], bool]:
    explicit = Path(path) if path is not None else None
    if explicit is None and env.get(REGISTRIES_CONF_ENV):
        explicit = Path(env[REGISTRIES_CONF_ENV])
    if explicit is not None:
        return explicit, [_drop_in_dir(explicit)], True
    user = _user_config_dir(env, home) / "containers" / "registries.conf"
    if user.exists():
        return user, [_drop_in_dir(user)], False
    return system, [_drop_in_dir(system), _drop_in_dir(user)], False


def _user_config_dir(env: Mapping[str, str], home: str | os.PathLike[str] | None) -> Path:
    xdg = env.get("XDG_CONFIG_HOME", "")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg)
    if home is not None:
        return Path(home) / ".config"
    return (Path(env["HOME"]) if env.get("HOME") else Path.home()) / ".config"


def _drop_in_dir(conf_file: Path) -> Path:
    return conf_file.with_name(conf_file.name + ".d")


def _drop_in_files(directories: list[Path]) -> list[Path]:
    files: list[Path] = []
    for directory in directories:
        try:
            entries = sorted(directory.iterdir())
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as error:
            raise RegistriesConfError(f"{directory}: cannot list drop-in files: {error.strerror}") from error
        files += [entry for entry in entries if entry.name.endswith(".conf") and entry.is_file()]
    return files


def _read_file(path: Path, *, drop_in: bool, required: bool) -> _FileConf | None:
    try:
        with path.open("rb") as stream:
            data = tomllib.load(stream)
    except FileNotFoundError as error:
        if required:
            raise RegistriesConfError(f"{path}: registries configuration file not found") from error
        return None
    except tomllib.TOMLDecodeError as error:
        raise RegistriesConfError(f"{path}: malformed TOML: {error}") from error
    except (OSError, UnicodeDecodeError) as error:
        raise RegistriesConfError(f"{path}: cannot read: {error}") from error
    return _FileReader(path, data).read(drop_in=drop_in)


def _merge(base: _FileConf, update: _FileConf) -> _FileConf:
    registries = {registry.prefix: registry for registry in base.registries}
    registries.update((registry.prefix, registry) for registry in update.registries)
    searched_by_update = update.search_registries is not None
    return _FileConf(
        search_registries=update.search_registries if searched_by_update else base.search_registries,
        search_registries_origin=(
            update.search_registries_origin if searched_by_update else base.search_registries_origin
        ),
        short_name_mode=update.short_name_mode or base.short_name_mode,
        aliases={**base.aliases, **update.aliases},
        registries=tuple(registries[prefix] for prefix in sorted(registries)),
    )


def _finish(merged: _FileConf, sources: tuple[Path, ...]) -> RegistriesConf:
    return RegistriesConf(
        search_registries=merged.search_registries or (),
        search_registries_origin=merged.search_registries_origin,
        short_name_mode=merged.short_name_mode or DEFAULT_SHORT_NAME_MODE,
        aliases=MappingProxyType(dict(merged.aliases)),
        registries=merged.registries,
        sources=sources,
    )


class _FileReader:
    """Turns one file's TOML into a _FileConf, checking types and consistency."""

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path = path
        self.data = data

    def error(self, why: str) -> RegistriesConfError:
        return RegistriesConfError(f"{self.path}: {why}")

    def read(self, *, drop_in: bool) -> _FileConf:
        data = self.data
        if self._has_v1_fields():
            if drop_in:
                raise self.error("drop-in files must use the v2 format ([[registry]]), not [registries.*]")
            if any(key in data for key in _V2_KEYS):
                raise self.error(
                    "mixing sysregistry v1/v2 is not supported: [registries.search], [registries.insecure] "
                    "and [registries.block] cannot stand beside v2 fields such as [[registry]]"
                )
            data = self._v1_as_v2()
        mode = self.optional_string(data, "short-name-mode", "top level")
        return _FileConf(
            search_registries=self._search_registries(data),
            search_registries_origin=self.path,  # as containers/image: the file, even if it sets none
            short_name_mode=self._short_name_mode(mode),
            aliases=self._aliases(data),
            registries=self._registries(data),
        )

    def _has_v1_fields(self) -> bool:
        v1 = self.data.get("registries")
        return isinstance(v1, dict) and any(
            isinstance(v1.get(section), dict) and "registries" in v1[section] for section in _V1_SECTIONS
        )

    def _v1_as_v2(self) -> dict[str, Any]:
        v1 = self.data["registries"]
        lists = {section: self._v1_list(v1, section) for section in _V1_SECTIONS}
        tables: dict[str, dict[str, Any]] = {}
        for section, flag in (("block", "blocked"), ("insecure", "insecure")):
            for location in lists[section] or ():
                tables.setdefault(location.rstrip("/"), {"location": location})[flag] = True
        converted: dict[str, Any] = {"registry": list(tables.values())}
        if lists["search"] is not None:
            converted["unqualified-search-registries"] = lists["search"]
        return converted

    def _v1_list(self, v1: dict[str, Any], section: str) -> list[str] | None:
        table = v1.get(section, {})
        if not isinstance(table, dict):
            raise self.error(f"[registries.{section}] must be a table")
        return self.string_list(table, "registries", f"[registries.{section}]")

    def _search_registries(self, data: dict[str, Any]) -> tuple[str, ...] | None:
        entries = self.string_list(data, "unqualified-search-registries", "top level")
        if entries is None:
            return None
        cleaned = tuple(self.location(entry, "unqualified-search-registries") for entry in entries)
        for entry in cleaned:
            if not _is_domain(entry):
                raise self.error(f"invalid unqualified-search-registries entry {entry!r}: must be host[:port]")
        return cleaned

    def _short_name_mode(self, mode: str | None) -> ShortNameMode | None:
        if mode is None or mode == "":
            return None
        try:
            return ShortNameMode(mode)
        except ValueError:
            raise self.error(f"invalid short-name-mode {mode!r} (enforcing, permissive or disabled)") from None

    def _aliases(self, data: dict[str, Any]) -> dict[str, Alias]:
        table = data.get("aliases", {})
        if not isinstance(table, dict):
            raise self.error("[aliases] must be a table of name = \"registry/repository\"")
        aliases: dict[str, Alias] = {}
        problems: list[str] = []
        for name, value in table.items():
            try:
                aliases[name] = Alias(name, _alias_value(name, value), self.path)
            except ValueError as error:  # InvalidReference included
                problems.append(str(error))
        if problems:
            raise self.error("invalid short-name aliases: " + "; ".join(problems))
        return aliases

    def _registries(self, data: dict[str, Any]) -> tuple[Registry, ...]:
        tables = data.get("registry", [])
        if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
            raise self.error("registry must be an array of [[registry]] tables")
        registries = [self._registry(table) for table in tables]
        self._check_conflicts(registries)
        unique: dict[str, Registry] = {}
        for registry in registries:
            unique.setdefault(registry.prefix, registry)  # the first of equal prefixes wins
        return tuple(unique[prefix] for prefix in sorted(unique))

    def _registry(self, table: dict[str, Any]) -> Registry:
        where = "[[registry]]"
        location = self.location(self.optional_string(table, "location", where) or "", where)
        prefix = self.location(self.optional_string(table, "prefix", where) or "", where) or location
        if not prefix:
            raise self.error("invalid [[registry]]: both location and prefix are unset")
        if prefix.startswith("*.") and set(prefix) & set("/@:"):
            raise self.error(f"wildcarded prefix {prefix!r} must be of the form *.example.com")
        if not location and not prefix.startswith("*."):
            raise self.error(f"[[registry]] {prefix!r}: location is unset and prefix is not like *.example.com")
        if "pull-from-mirror" in table:
            raise self.error(f"pull-from-mirror must not be set for a non-mirror registry {prefix!r}")
        by_digest = self.optional_bool(table, "mirror-by-digest-only", where)
        mirrors = tuple(self._mirror(mirror, prefix, by_digest) for mirror in self._mirror_tables(table))
        return Registry(
            prefix=prefix,
            location=location,
            insecure=self.optional_bool(table, "insecure", where),
            blocked=self.optional_bool(table, "blocked", where),
            mirror_by_digest_only=by_digest,
            mirrors=mirrors,
        )

    def _mirror_tables(self, table: dict[str, Any]) -> list[dict[str, Any]]:
        mirrors = table.get("mirror", [])
        if not isinstance(mirrors, list) or not all(isinstance(m, dict) for m in mirrors):
            raise self.error("registry.mirror must be an array of [[registry.mirror]] tables")
        return mirrors

    def _mirror(self, table: dict[str, Any], registry: str, by_digest: bool) -> Mirror:
        where = f"[[registry.mirror]] of {registry!r}"
        location = self.location(self.optional_string(table, "location", where) or "", where)
        if not location:
            raise self.error(f"{where}: mirror location is unset")
        pull = self.optional_string(table, "pull-from-mirror", where) or ""
        if pull and by_digest:
            raise self.error(
                f"cannot set mirror-by-digest-only for the registry {registry!r} and "
                f"pull-from-mirror for its mirror {location!r} at the same time"
            )
        try:
            mode = PullFromMirror(pull or PullFromMirror.ALL)
        except ValueError:
            raise self.error(f"unsupported pull-from-mirror value {pull!r} for mirror {location!r}") from None
        return Mirror(location, self.optional_bool(table, "insecure", where), mode)

    def _check_conflicts(self, registries: list[Registry]) -> None:
        seen: dict[str, Registry] = {}
        for registry in registries:
            key = registry.location or registry.prefix
            other = seen.setdefault(key, registry)
            for setting, mine, theirs in (
                ("insecure", registry.insecure, other.insecure),
                ("blocked", registry.blocked, other.blocked),
            ):
                if mine != theirs:
                    raise self.error(f"registry {key!r} is defined multiple times with conflicting {setting!r} setting")

    # typed access to TOML values

    def location(self, value: str, where: str) -> str:
        trimmed = value.rstrip("/")
        if trimmed.startswith(("http://", "https://")):
            raise self.error(f"{where}: invalid location {value!r}: URI schemes are not supported")
        return trimmed

    def optional_string(self, table: dict[str, Any], key: str, where: str) -> str | None:
        value = table.get(key)
        if value is not None and not isinstance(value, str):
            raise self.error(f"{where}: {key} must be a string, not {type(value).__name__}")
        return value

    def optional_bool(self, table: dict[str, Any], key: str, where: str) -> bool:
        value = table.get(key, False)
        if not isinstance(value, bool):
            raise self.error(f"{where}: {key} must be true or false, not {value!r}")
        return value

    def string_list(self, table: dict[str, Any], key: str, where: str) -> list[str] | None:
        value = table.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise self.error(f"{where}: {key} must be an array of strings")
        return value


def _is_domain(text: str) -> bool:
    try:
        return parse(f"{text}/x").domain == text
    except InvalidReference:
        return False


def _alias_value(name: str, value: Any) -> Reference | None:
    """Check an alias as containers/image does: a bare short name -> a bare registry/repository."""
    key = parse(name)
    if not is_short_name(name) or key.is_tagged or key.is_digested:
        raise ValueError(f"alias name {name!r} must be a short name without tag or digest")
    if not isinstance(value, str):
        raise ValueError(f"alias {name!r}: value must be a string")
    if value == "":
        return None
    written = parse(value)
    if written.domain is None or not names_a_registry(written.domain):
        raise ValueError(f"alias {name!r}: value {value!r} must contain a registry and a repository")
    if written.is_tagged or written.is_digested:
        raise ValueError(f"alias {name!r}: value {value!r} must not contain a tag or digest")
    return parse_normalized(value)


# --- resolution ---------------------------------------------------------------------------


class ResolutionSource(enum.StrEnum):
    """Where the candidates of a resolution came from."""

    FULLY_QUALIFIED = "fully-qualified"
    ALIAS = "alias"
    SEARCH_REGISTRIES = "unqualified-search-registries"
    USER_SELECTION = "user-selection"


@dataclass(frozen=True, slots=True)
class Resolution:
    """The references a name may be pulled from, in the order to try them.

    Every candidate is fully qualified and tagged: the input's tag and digest
    are kept, and ``latest`` is added when it had neither. When ``must_prompt``
    is true the caller should ask the user to pick one (see ``choose``).
    """

    name: str
    candidates: tuple[Reference, ...]
    source: ResolutionSource
    origin: Path | None = None
    must_prompt: bool = False

    @property
    def ambiguous(self) -> bool:
        """More than one candidate."""
        return len(self.candidates) > 1

    def choose(self, candidate: Reference) -> Resolution:
        """The resolution after the user picked ``candidate`` at the prompt."""
        if candidate not in self.candidates:
            raise ValueError(f"{candidate} is not a candidate for {self.name!r}")
        return Resolution(self.name, (candidate,), ResolutionSource.USER_SELECTION, self.origin)

    def description(self) -> str:
        """A line to show before pulling, as podman prints it; "" when nothing to say."""
        if self.source is ResolutionSource.ALIAS:
            return f"Resolved {self.name!r} as an alias ({self.origin})"
        if self.source is ResolutionSource.SEARCH_REGISTRIES:
            return f"Resolving {self.name!r} using unqualified-search registries ({self.origin})"
        return ""


def resolve_short_name(
    name: str,
    conf: RegistriesConf,
    *,
    can_prompt: bool = False,
    mode: ShortNameMode | None = None,
) -> Resolution:
    """Resolve ``name`` to candidate references, as containers/image's ``Resolve``.

    A fully qualified name is its own only candidate; an alias (looked up with
    tag and digest stripped) wins next; otherwise each unqualified-search
    registry gives one candidate, in order. ``can_prompt`` says whether the
    caller can ask the user (stdin and stdout are a TTY); ``mode`` overrides the
    configured short-name-mode. Raises ShortNameError when no alias matches and
    no search registry is configured, or when the result is ambiguous under
    enforcing mode and the caller cannot prompt; InvalidReference for a bad name.
    """
    written = parse(name)
    if written.domain is not None and names_a_registry(written.domain):
        return Resolution(name, (with_default_tag(parse_normalized(name)),), ResolutionSource.FULLY_QUALIFIED)
    repository = str(written.without_tag_or_digest())
    found = conf.aliases.get(repository)
    if found is not None and found.value is not None:
        candidate = found.value.with_tag(written.tag) if written.tag else found.value
        candidate = candidate.with_digest(written.digest) if written.digest else candidate
        return Resolution(name, (with_default_tag(candidate),), ResolutionSource.ALIAS, found.origin)
    candidates = _search_candidates(name, conf)
    resolution = Resolution(name, candidates, ResolutionSource.SEARCH_REGISTRIES, conf.search_registries_origin)
    return _apply_mode(resolution, mode or conf.short_name_mode, can_prompt)


def _search_candidates(name: str, conf: RegistriesConf) -> tuple[Reference, ...]:
    if not conf.search_registries:
        where = (
            f"no unqualified-search registries are defined in {conf.search_registries_origin}"
            if conf.search_registries_origin is not None
            else "no containers-registries.conf(5) was found"
        )
        raise ShortNameError(f"short-name {name!r} did not resolve to an alias and {where}")
    return tuple(with_default_tag(parse_normalized(f"{registry}/{name}")) for registry in conf.search_registries)


def _apply_mode(resolution: Resolution, mode: ShortNameMode, can_prompt: bool) -> Resolution:
    if mode is ShortNameMode.DISABLED or not resolution.ambiguous:
        return resolution
    if can_prompt:
        return replace(resolution, must_prompt=True)
    if mode is ShortNameMode.PERMISSIVE:
        return resolution
    listed = ", ".join(str(candidate) for candidate in resolution.candidates)
    raise ShortNameError(f"{NO_TTY_MESSAGE}: {resolution.name!r} could be any of {listed}")
