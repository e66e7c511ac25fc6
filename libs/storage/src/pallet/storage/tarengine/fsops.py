"""Ownership, device nodes and xattrs: the privileged operations, behind one small protocol.

The applier never calls ``chown``, ``mknod`` or ``setxattr`` itself; it asks an
:class:`FsOps`. :class:`RootFsOps` does them. :class:`UnprivilegedFsOps`
skips ownership (files stay owned by the caller), refuses device nodes, and
turns EPERM/ENOTSUP on xattrs into warnings. The rootless store, which
extracts inside a user namespace with podman's mapping, uses
:class:`UsernsFsOps`: RootFsOps with a clear error (or, with
``ignore_chown_errors``, a warning) for ids outside the mapping.
"""

from __future__ import annotations

import errno
import os
from typing import Protocol

from pallet.storage.tarengine.safety import proc_path


class FsOps(Protocol):
    """The privileged filesystem operations of extraction.

    ``fd`` arguments are open files or directories; ``(dir_fd, name)`` names an
    entry that is not followed if it is a symlink. ``warnings`` collects what
    was skipped.
    """

    privileged: bool
    warnings: list[str]

    def chown_fd(self, fd: int, uid: int, gid: int) -> None: ...

    def chown_at(self, dir_fd: int, name: bytes, uid: int, gid: int) -> None: ...

    def mknod_at(self, dir_fd: int, name: bytes, mode: int, device: int) -> None: ...

    def set_xattr(self, target: int | tuple[int, bytes], key: bytes, value: bytes) -> None: ...


def _setxattr(target: int | tuple[int, bytes], key: bytes, value: bytes) -> None:
    if isinstance(target, int):
        os.setxattr(target, key, value)
    else:
        os.setxattr(proc_path(*target), key, value, follow_symlinks=False)


class RootFsOps:
    """Real ownership, device nodes and xattrs (needs CAP_CHOWN, CAP_MKNOD, CAP_SYS_ADMIN for trusted.*)."""

    privileged = True

    def __init__(self) -> None:
        self.warnings: list[str] = []

    def chown_fd(self, fd: int, uid: int, gid: int) -> None:
        os.fchown(fd, uid, gid)

    def chown_at(self, dir_fd: int, name: bytes, uid: int, gid: int) -> None:
        os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)

    def mknod_at(self, dir_fd: int, name: bytes, mode: int, device: int) -> None:
        os.mknod(name, mode, device, dir_fd=dir_fd)

    def set_xattr(self, target: int | tuple[int, bytes], key: bytes, value: bytes) -> None:
        try:
            _setxattr(target, key, value)
        except OSError as exc:
            if exc.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP):
                raise
            self.warnings.append(f"xattr {key!r} not supported here: skipped")


class UnprivilegedFsOps:
    """No ownership change; device nodes refused (PermissionError); xattrs best-effort with warnings."""

    privileged = False

    def __init__(self) -> None:
        self.warnings: list[str] = []

    def chown_fd(self, fd: int, uid: int, gid: int) -> None:
        return None

    def chown_at(self, dir_fd: int, name: bytes, uid: int, gid: int) -> None:
        return None

    def mknod_at(self, dir_fd: int, name: bytes, mode: int, device: int) -> None:
        os.mknod(name, mode, device, dir_fd=dir_fd)  # works for 0/0 whiteouts inside a user namespace only

    def set_xattr(self, target: int | tuple[int, bytes], key: bytes, value: bytes) -> None:
        try:
            _setxattr(target, key, value)
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EACCES, errno.ENOTSUP, errno.EOPNOTSUPP):
                raise
            self.warnings.append(f"xattr {key!r} not permitted here: skipped")


INSUFFICIENT_IDS = (
    "potentially insufficient UIDs or GIDs available in user namespace (requested {uid}:{gid}): "
    "check /etc/subuid and /etc/subgid (then run `podman system migrate`), "
    "or set the overlay option ignore_chown_errors=true to give such files the namespace's root"
)


class UsernsFsOps(RootFsOps):
    """Root of a rootless user namespace: ids outside its mapping cannot be given (chown: EINVAL).

    That EINVAL becomes containers/storage's message (which ids, what to
    check), or, with ``ignore_chown_errors`` (the overlay option of that name),
    the entry keeps the namespace root's ids and a warning is recorded, as
    c/storage squashes such ids to the default one.
    """

    def __init__(self, *, ignore_chown_errors: bool = False) -> None:
        super().__init__()
        self.ignore_chown_errors = ignore_chown_errors

    def chown_fd(self, fd: int, uid: int, gid: int) -> None:
        try:
            os.fchown(fd, uid, gid)
        except OSError as exc:
            self._chown_failed(exc, uid, gid)

    def chown_at(self, dir_fd: int, name: bytes, uid: int, gid: int) -> None:
        try:
            os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)
        except OSError as exc:
            self._chown_failed(exc, uid, gid)

    def _chown_failed(self, exc: OSError, uid: int, gid: int) -> None:
        if exc.errno != errno.EINVAL:
            raise exc
        if not self.ignore_chown_errors:
            raise OSError(errno.EINVAL, INSUFFICIENT_IDS.format(uid=uid, gid=gid)) from exc
        self.warnings.append(f"ids {uid}:{gid} are not mapped in this user namespace: kept the namespace's root")


def default_fsops() -> FsOps:
    """:class:`RootFsOps` when running as root, else :class:`UnprivilegedFsOps`."""
    return RootFsOps() if os.geteuid() == 0 else UnprivilegedFsOps()
