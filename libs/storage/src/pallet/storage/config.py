"""Where the store lives and which driver it uses, resolved as containers/storage 1.43 does.

Format doc sections 1.1 and 7.1. Everything the resolution reads from the
host comes in through :class:`Host` (environment, uid, file system paths), so
that callers and tests pass it explicitly; nothing here is global. The
result is a frozen :class:`StoreOptions`.

Rules (root = the effective uid, or ``_CONTAINERS_ROOTLESS_UID``, is 0):

- storage.conf: ``$CONTAINERS_STORAGE_CONF`` alone if set; else
  ``$XDG_CONFIG_HOME/containers/storage.conf`` if that exists; else
  ``/etc/containers/storage.conf`` if it exists; else
  ``/usr/share/containers/storage.conf``. That is the *system* file.
- root: the system file's ``graphroot``/``runroot`` (default
  ``/var/lib/containers/storage`` and ``/run/containers/storage``) and driver.
- rootless: the user file (``$CONTAINERS_STORAGE_CONF``, else
  ``$XDG_CONFIG_HOME`` or ``~/.config`` + ``/containers/storage.conf``), if it
  exists, **replaces** the system file (empty roots fall back to the
  rootless defaults). Otherwise only ``driver`` (if btrfs/overlay/overlay2/vfs;
  else vfs), ``rootless_storage_path``, ``pull_options`` and overlay
  ``ignore_chown_errors`` come from the system file; graph root is
  ``rootless_storage_path`` or ``$XDG_DATA_HOME/containers/storage`` or
  ``~/.local/share/containers/storage``; run root is ``<runtime dir>/containers``.
- ``STORAGE_DRIVER`` overrides the driver, ``STORAGE_OPTS`` (comma separated)
  the driver options; ``overlay2`` becomes ``overlay``.
- In the roots, ``$UID`` becomes the uid, then ``$VAR``/``${VAR}`` are
  expanded from the environment (unset: empty), then symlinks are resolved
  (or the path cleaned when that fails).

Deviation: a storage.conf that is not valid TOML raises :class:`ConfigError`
(containers/storage prints a message and ignores the file).
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pallet.storage.errors import ConfigError, DriverConflict

ROOT_GRAPH_ROOT = "/var/lib/containers/storage"
ROOT_RUN_ROOT = "/run/containers/storage"
SYSTEM_OVERRIDE_CONF = "/etc/containers/storage.conf"
SYSTEM_DEFAULT_CONF = "/usr/share/containers/storage.conf"
ROOTLESS_DRIVERS = frozenset({"btrfs", "overlay", "overlay2", "vfs"})
#: the probe order of drivers/driver_linux.go when nothing is configured
DRIVER_PRIORITY = ("overlay", "aufs", "btrfs", "zfs", "vfs")


@dataclass(frozen=True)
class Host:
    """What the resolution reads from the host; build it with :meth:`current` or by hand in tests.

    ``uid`` is the user the store is for (podman's rootless uid), ``euid`` the
    process's effective uid (for the owner check on ``/run/user/<uid>``).
    ``init_comm`` is the file whose content 1.43 compares with ``"systemd"``;
    ``run_user_base`` holds the per-user runtime dirs (``/run/user``).
    """

    env: Mapping[str, str]
    uid: int
    euid: int
    home: str = ""
    init_comm: str = "/proc/1/comm"
    run_user_base: str = "/run/user"
    system_confs: tuple[str, str] = (SYSTEM_OVERRIDE_CONF, SYSTEM_DEFAULT_CONF)

    @classmethod
    def current(cls) -> Host:
        """The running process: its environment, uid (``_CONTAINERS_ROOTLESS_UID`` wins) and home."""
        env = dict(os.environ)
        euid = os.geteuid()
        uid = int(env["_CONTAINERS_ROOTLESS_UID"]) if env.get("_CONTAINERS_ROOTLESS_UID", "").isdigit() else euid
        return cls(env=env, uid=uid, euid=euid, home=_home_of(env, uid))

    @property
    def rootless(self) -> bool:
        return self.uid != 0


def _home_of(env: Mapping[str, str], uid: int) -> str:
    """``$HOME``, else the passwd entry of ``uid`` (homedir.Get)."""
    if env.get("HOME"):
        return env["HOME"]
    try:
        import pwd

        return pwd.getpwuid(uid).pw_dir
    except (KeyError, ImportError):
        return ""


@dataclass(frozen=True)
class StoreOptions:
    """A resolved store configuration, passed explicitly to whatever opens the store.

    ``driver`` is "" when nothing configured one (then :func:`resolve_driver`
    picks it from the graph root). ``driver_options`` are c/storage's strings
    (``overlay.mountopt=nodev``, ...), in its order.
    """

    graph_root: str
    run_root: str
    driver: str = ""
    driver_options: tuple[str, ...] = ()
    rootless: bool = False
    rootless_uid: int = 0
    rootless_storage_path: str = ""
    pull_options: tuple[tuple[str, str], ...] = ()
    config_file: str | None = None

    def driver_option(self, name: str) -> str | None:
        """The last value of option ``name`` (``mountopt``, ``mount_program``, ...) for this driver.

        Accepts the prefixes c/storage accepts: ``<driver>.``, ``overlay2.``
        for overlay, and a bare ``.``; None when the option is not set.
        """
        prefixes = {f"{self.driver}.", "."} | ({"overlay2."} if self.driver == "overlay" else set())
        found = None
        for option in self.driver_options:
            key, sep, value = option.partition("=")
            if not sep:
                continue
            for prefix in prefixes:
                if key.lower() == (prefix + name).lower():
                    found = value
        return found

    @property
    def mount_program(self) -> str | None:
        return self.driver_option("mount_program")

    @property
    def mountopt(self) -> str | None:
        return self.driver_option("mountopt")

    @property
    def additional_image_stores(self) -> tuple[str, ...]:
        return tuple(v for k, _, v in (o.partition("=") for o in self.driver_options) if k.endswith(".imagestore"))


# -- environment expansion ----------------------------------------------------------------

_SHELL_NAME = re.compile(r"\$(?:\{([^}]*)\}|([A-Za-z0-9_]+)|([*#$@!?\-0-9]))")


def expand_env_path(path: str, uid: int, env: Mapping[str, str]) -> str:
    """containers/storage's expandEnvPath: ``$UID``, then ``os.ExpandEnv``, then resolve symlinks."""
    path = path.replace("$UID", str(uid))

    def value(match: re.Match[str]) -> str:
        name = next(g for g in match.groups() if g is not None)
        return env.get(name, "")

    expanded = _SHELL_NAME.sub(value, path)
    try:
        return os.path.realpath(expanded, strict=True)
    except OSError:
        return os.path.normpath(expanded) if expanded else "."


# -- storage.conf -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Conf:
    """What one storage.conf contributes (empty strings: not set)."""

    driver: str = ""
    graph_root: str = ""
    run_root: str = ""
    rootless_storage_path: str = ""
    driver_options: tuple[str, ...] = ()
    pull_options: tuple[tuple[str, str], ...] = ()
    ignore_chown_errors: str = ""


def read_storage_conf(path: str) -> dict[str, Any]:
    """The parsed TOML of ``path``; ConfigError when it cannot be read or parsed."""
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def _text(table: Mapping[str, Any], key: str, where: str) -> str:
    value = table.get(key, "")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if not isinstance(value, str):
        raise ConfigError(f"{where}: {key} must be a string")
    return value


def _table(parent: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = parent.get(key, {})
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: [{key}] must be a table")
    return value


_TOP_LEVEL_OPTIONS = ("size", "mount_program", "skip_mount_home", "ignore_chown_errors", "force_mask", "mountopt")
_OVERLAY_OPTIONS = ("ignore_chown_errors", "mount_program", "mountopt", "size", "inodes", "skip_mount_home", "force_mask")


def _driver_options(driver: str, options: Mapping[str, Any], where: str) -> list[str]:
    """The option strings of ReloadConfigurationFile + GetGraphDriverOptions, in their order."""
    result = []
    stores = options.get("additionalimagestores", [])
    if not isinstance(stores, list) or not all(isinstance(s, str) for s in stores):
        raise ConfigError(f"{where}: additionalimagestores must be a list of strings")
    result += [f"{driver}.imagestore={s}" for s in stores]
    for key in _TOP_LEVEL_OPTIONS:
        if value := _text(options, key, where):
            result.append(f"{driver}.{key}={value}")
    if driver in ("overlay", "overlay2"):  # GetGraphDriverOptions gets the name after overlay2 -> overlay
        overlay = _table(options, "overlay", where)
        for key in _OVERLAY_OPTIONS:
            value = _text(overlay, key, where) or (_text(options, key, where) if key != "inodes" else "")
            if value:
                result.append(f"overlay.{key}={value}")
    elif driver == "vfs":
        if value := _text(_table(options, "vfs", where), "ignore_chown_errors", where) or _text(options, "ignore_chown_errors", where):
            result.append(f"vfs.ignore_chown_errors={value}")
    return result


def parse_storage_conf(path: str, env: Mapping[str, str]) -> _Conf:
    """One storage.conf as ReloadConfigurationFile reads it (``STORAGE_DRIVER``/``STORAGE_OPTS`` applied)."""
    data = read_storage_conf(path)
    storage = _table(data, "storage", path)
    options = _table(storage, "options", path)
    driver = env.get("STORAGE_DRIVER") or _text(storage, "driver", path)
    driver_options = _driver_options(driver, options, path)
    if "STORAGE_OPTS" in env:
        driver_options = env["STORAGE_OPTS"].split(",")
    if driver_options == [""]:
        driver_options = []
    pulls = _table(options, "pull_options", path)
    overlay = _table(options, "overlay", path)
    chown = _text(overlay, "ignore_chown_errors", path) or _text(options, "ignore_chown_errors", path)
    return _Conf(
        driver="overlay" if driver == "overlay2" else driver,
        graph_root=_text(storage, "graphroot", path),
        run_root=_text(storage, "runroot", path),
        rootless_storage_path=_text(storage, "rootless_storage_path", path),
        driver_options=tuple(driver_options),
        pull_options=tuple((str(k), _text(pulls, k, path)) for k in pulls),
        ignore_chown_errors=chown,
    )


def system_conf_path(host: Host) -> str:
    """The storage.conf that root uses (and rootless inherits from): see the module docstring."""
    if "CONTAINERS_STORAGE_CONF" in host.env:
        return host.env["CONTAINERS_STORAGE_CONF"]
    if host.env.get("XDG_CONFIG_HOME"):
        user = os.path.join(host.env["XDG_CONFIG_HOME"], "containers", "storage.conf")
        if os.path.exists(user):
            return user
    override, default = host.system_confs
    return override if os.path.exists(override) else default


def user_conf_path(host: Host) -> str:
    """The rootless user's storage.conf (DefaultConfigFile(rootless=true))."""
    if "CONTAINERS_STORAGE_CONF" in host.env:
        return host.env["CONTAINERS_STORAGE_CONF"]
    if host.env.get("XDG_CONFIG_HOME"):
        return os.path.join(host.env["XDG_CONFIG_HOME"], "containers", "storage.conf")
    if not host.home:
        raise ConfigError("cannot find the user's home directory (HOME unset and no passwd entry)")
    return os.path.join(host.home, ".config", "containers", "storage.conf")


def _load(path: str, host: Host) -> _Conf:
    return parse_storage_conf(path, host.env) if os.path.exists(path) else _env_only_conf(host)


def _env_only_conf(host: Host) -> _Conf:
    driver = host.env.get("STORAGE_DRIVER", "")
    opts = host.env["STORAGE_OPTS"].split(",") if "STORAGE_OPTS" in host.env else []
    return _Conf(driver="overlay" if driver == "overlay2" else driver, driver_options=tuple(opts) if opts != [""] else ())


# -- rootless directories -----------------------------------------------------------------


def rootless_runtime_dir(host: Host) -> str:
    """The rootless runtime dir (getRootlessRuntimeDir), made if needed for the $TMPDIR fallback.

    ``$XDG_RUNTIME_DIR``; else ``/run/user/<uid>`` when it is owned by us with
    mode 0700, a branch 1.43 takes only when ``/proc/1/comm`` is unreadable (it
    compares the file, newline included, with ``"systemd"``); else
    ``$TMPDIR/containers-user-<uid>`` (TMPDIR default ``/tmp``; made 0700);
    else ``$HOME/rundir``.
    """
    if host.env.get("XDG_RUNTIME_DIR"):
        return host.env["XDG_RUNTIME_DIR"]
    try:
        with open(host.init_comm, "rb") as handle:
            init_is_systemd = handle.read() == b"systemd"
    except OSError:
        init_is_systemd = True
    run_user = os.path.join(host.run_user_base, str(host.uid))
    if init_is_systemd and _owned_private_dir(run_user, host.euid):
        return run_user
    tmp_dir = os.path.join(host.env.get("TMPDIR") or "/tmp", f"containers-user-{host.uid}")
    try:
        os.makedirs(tmp_dir, 0o700, exist_ok=True)
        if _owned_private_dir(tmp_dir, host.euid):
            return tmp_dir
    except OSError:
        pass
    if not host.home:
        raise ConfigError("neither XDG_RUNTIME_DIR nor HOME was set non-empty")
    return os.path.join(os.path.realpath(host.home), "rundir")


def _owned_private_dir(path: str, euid: int) -> bool:
    try:
        info = os.stat(path)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == euid and stat.S_IMODE(info.st_mode) == 0o700


def rootless_data_dir(host: Host) -> str:
    """``$XDG_DATA_HOME``, else ``$HOME/.local/share`` (homedir.GetDataHome)."""
    if host.env.get("XDG_DATA_HOME"):
        return host.env["XDG_DATA_HOME"]
    if not host.home:
        raise ConfigError("cannot find the user's home directory (HOME unset and no passwd entry)")
    return os.path.join(host.home, ".local", "share")


def _rootless_from_system(system: _Conf, host: Host) -> _Conf:
    """getRootlessStorageOpts: what a rootless user takes from the system file."""
    graph_root = system.rootless_storage_path or os.path.join(rootless_data_dir(host), "containers", "storage")
    driver = system.driver if system.driver in ROOTLESS_DRIVERS else ""
    driver = host.env.get("STORAGE_DRIVER") or driver
    driver = "overlay" if driver == "overlay2" else driver
    options = [o for o in system.driver_options if driver == "overlay" and "ignore_chown_errors" in o][:1]
    if driver == "overlay" and not options and system.ignore_chown_errors:
        options = [f"overlay.ignore_chown_errors={system.ignore_chown_errors}"]
    if host.env.get("STORAGE_OPTS"):
        options += host.env["STORAGE_OPTS"].split(",")
    return _Conf(
        driver=driver or "vfs",
        graph_root=graph_root,
        run_root=os.path.join(rootless_runtime_dir(host), "containers"),
        rootless_storage_path=system.rootless_storage_path,
        driver_options=tuple(options),
        pull_options=system.pull_options,
    )


# -- the whole resolution -----------------------------------------------------------------


def resolve_store_options(host: Host) -> StoreOptions:
    """The StoreOptions containers/storage 1.43 would use for ``host`` (see the module docstring)."""
    system_path = system_conf_path(host)
    system = _load(system_path, host)
    conf_file: str | None = system_path if os.path.exists(system_path) else None
    if host.rootless:
        conf = _rootless_from_system(system, host)
        user_path = user_conf_path(host)
        if os.path.exists(user_path):
            user = parse_storage_conf(user_path, host.env)
            conf_file = user_path
            graph_root = user.graph_root or user.rootless_storage_path or conf.graph_root
            conf = _replace(user, graph_root=graph_root, run_root=user.run_root or conf.run_root)
    else:
        conf = _replace(system, graph_root=system.graph_root or ROOT_GRAPH_ROOT, run_root=system.run_root or ROOT_RUN_ROOT)
    uid = host.uid
    return StoreOptions(
        graph_root=expand_env_path(conf.graph_root, uid, host.env),
        run_root=expand_env_path(conf.run_root, uid, host.env),
        driver=conf.driver,
        driver_options=conf.driver_options,
        rootless=host.rootless,
        rootless_uid=uid,
        rootless_storage_path=expand_env_path(conf.rootless_storage_path, uid, host.env) if conf.rootless_storage_path else "",
        pull_options=conf.pull_options,
        config_file=conf_file,
    )


def _replace(conf: _Conf, **changes: str) -> _Conf:
    values = {name: getattr(conf, name) for name in conf.__dataclass_fields__}
    values.update(changes)
    return _Conf(**values)


def with_overrides(
    options: StoreOptions, *, root: str | None = None, runroot: str | None = None, driver: str | None = None, driver_options: tuple[str, ...] | None = None
) -> StoreOptions:
    """``options`` with the tools' ``--root``/``--runroot``/``--storage-driver``/``--storage-opt`` applied."""
    return StoreOptions(
        graph_root=os.path.abspath(root) if root else options.graph_root,
        run_root=os.path.abspath(runroot) if runroot else options.run_root,
        driver=("overlay" if driver == "overlay2" else driver) if driver else options.driver,
        driver_options=options.driver_options if driver_options is None else driver_options,
        rootless=options.rootless,
        rootless_uid=options.rootless_uid,
        rootless_storage_path=options.rootless_storage_path,
        pull_options=options.pull_options,
        config_file=options.config_file,
    )


def prior_drivers(graph_root: str) -> list[str]:
    """Drivers whose home dir already exists in ``graph_root`` (vfs never counts), in priority order."""
    return [name for name in DRIVER_PRIORITY if name != "vfs" and os.path.isdir(os.path.join(graph_root, name))]


def resolve_driver(options: StoreOptions, supported: tuple[str, ...] = ("overlay", "vfs"), proc_filesystems: str = "/proc/filesystems") -> str:
    """The driver the store uses: the configured one, else the prior one, else the first that works.

    Raises :class:`DriverConflict` when several prior driver dirs exist, or
    when the configured driver is not the one whose dir is on disk.
    """
    prior = prior_drivers(options.graph_root)
    if len(prior) > 1:
        raise DriverConflict(f"{options.graph_root}: several driver directories exist ({', '.join(prior)}); configure one driver")
    if options.driver:
        if prior and prior[0] != options.driver:
            raise DriverConflict(f"{options.graph_root}: the store was made with driver {prior[0]!r}, not {options.driver!r}")
        return options.driver
    if prior:
        return prior[0]
    for name in DRIVER_PRIORITY:
        if name in supported and (name == "vfs" or _kernel_has(name, proc_filesystems)):
            return name
    raise ConfigError("no usable storage driver")


def _kernel_has(filesystem: str, proc_filesystems: str) -> bool:
    try:
        with open(proc_filesystems, encoding="ascii", errors="replace") as handle:
            return any(line.split()[-1:] == [filesystem] for line in handle)
    except OSError:
        return False
