"""An OCI bundle: ``config.json`` parsed by pallet.oci's runtime-spec types, and its rootfs.

:func:`load_bundle` refuses, with one :class:`~pallet.runtime.errors.BundleError`
naming the file or field, everything that can be known before a process is
started: a bundle directory or ``config.json`` that is missing, invalid JSON,
a config breaking the schema (unknown namespace types included), no
``process`` or ``root``, a rootfs that is not a directory, no mount namespace,
and ID mappings without a user namespace. :func:`check_user_mapped` refuses a
process user that the mappings of a new user namespace leave unmapped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pallet.oci.errors import InvalidRuntimeConfig
from pallet.oci.spec.runtime import IDMapping, Process, RuntimeConfig, parse_runtime_config
from pallet.runtime.errors import BundleError

CONFIG_NAME = "config.json"


@dataclass(frozen=True)
class Bundle:
    """A loaded bundle: its absolute ``path``, its ``config`` and the absolute ``rootfs``."""

    path: Path
    config: RuntimeConfig
    rootfs: Path

    @property
    def process(self) -> Process:
        assert self.config.process is not None  # load_bundle refuses a config without one
        return self.config.process

    def namespace_types(self) -> tuple[str, ...]:
        linux = self.config.linux
        return tuple(ns.type for ns in linux.namespaces or ()) if linux else ()

    def new_user_namespace(self) -> bool:
        linux = self.config.linux
        user = linux.namespace("user") if linux else None
        return user is not None and user.path is None


def load_bundle(path: str | os.PathLike[str]) -> Bundle:
    """Read and check the bundle at ``path`` (see the module docstring for what is refused)."""
    bundle_path = Path(os.path.abspath(path))
    if not bundle_path.is_dir():
        raise BundleError(f"bundle {bundle_path}: not a directory")
    config_path = bundle_path / CONFIG_NAME
    try:
        raw = config_path.read_bytes()
    except FileNotFoundError:
        raise BundleError(f"{config_path}: no such file") from None
    except OSError as error:
        raise BundleError(f"{config_path}: {error.strerror}") from None
    try:
        config = parse_runtime_config(raw)
    except InvalidRuntimeConfig as error:
        raise BundleError(f"{bundle_path}/{error}") from None
    if config.process is None:
        raise BundleError(f"{config_path}: process: missing (nothing to run)")
    if not config.process.args:
        raise BundleError(f"{config_path}: process.args: missing or empty")
    if config.root is None:
        raise BundleError(f"{config_path}: root: missing")
    rootfs = Path(os.path.normpath(bundle_path / config.root.path))
    if not rootfs.is_dir():
        raise BundleError(f"{config_path}: root.path: {rootfs} is not a directory")
    _check_linux(config, config_path)
    return Bundle(bundle_path, config, rootfs)


def _check_linux(config: RuntimeConfig, config_path: Path) -> None:
    linux = config.linux
    if linux is None:
        raise BundleError(f"{config_path}: linux: missing")
    if linux.namespace("mount") is None:
        raise BundleError(f"{config_path}: linux.namespaces: a mount namespace is required")
    for namespace in linux.namespaces or ():
        if namespace.path is not None:
            try:
                os.stat(namespace.path)
            except OSError as error:
                raise BundleError(
                    f"{config_path}: linux.namespaces: {namespace.type} namespace {namespace.path}: {error.strerror}"
                ) from None
    user = linux.namespace("user")
    if user is None:
        if linux.uid_mappings or linux.gid_mappings:
            raise BundleError(f"{config_path}: linux.uidMappings: ID mappings need a user namespace")
        return



def check_user_mapped(bundle: Bundle, uid_mappings: tuple[IDMapping, ...], gid_mappings: tuple[IDMapping, ...]) -> None:
    """BundleError unless the process's uid, gid and additional gids are mapped by the mappings
    a new user namespace will get (the config's, or the runtime's default)."""
    user = bundle.process.user
    config_path = bundle.path / CONFIG_NAME
    _check_mapped(user.uid, uid_mappings, "uid", "uidMappings", config_path)
    _check_mapped(user.gid, gid_mappings, "gid", "gidMappings", config_path)
    for gid in user.additional_gids or ():
        _check_mapped(gid, gid_mappings, "additional gid", "gidMappings", config_path)


def _check_mapped(value: int, mappings: tuple[IDMapping, ...], what: str, field: str, config_path: Path) -> None:
    if not any(value in mapping.container_range for mapping in mappings):
        raise BundleError(f"{config_path}: linux.{field}: process {what} {value} is not mapped in the container")
