"""AUFS whiteouts in layer tars, converted to the storage driver's on-disk form.

``.wh.NAME`` deletes NAME of the lower layers; ``.wh..wh..opq`` makes its
directory opaque. The forms (containers-storage-format.md 3.2):

- ``OVERLAY``: char device 0/0 named NAME (owner from the header); opaque:
  xattr ``trusted.overlay.opaque=y`` on the directory (rootful kernel overlay)
- ``OVERLAY_USERXATTR``: the same char device 0/0 (made inside the user
  namespace); opaque: ``user.overlay.opaque=y`` (rootless kernel overlay
  mounted with ``userxattr``)
- ``AUFS``: the ``.wh.`` files are kept as empty regular files (fuse-overlayfs,
  ``mount_program``)
- ``VFS``: the deletion is applied to the full copy of the parent: NAME is
  removed; for opaque, every child not unpacked by this layer is removed
"""

from __future__ import annotations

import enum
import os
import stat

from pallet.storage.tarengine.errors import UnsafeEntryError, UnsupportedEntryError
from pallet.storage.tarengine.fsops import FsOps
from pallet.storage.tarengine.safety import remove_at

WHITEOUT_PREFIX = b".wh."
OPAQUE = b".wh..wh..opq"
LINK_DIR = b".wh..wh.plnk"


class WhiteoutFormat(enum.Enum):
    OVERLAY = "overlay"
    OVERLAY_USERXATTR = "overlay-userxattr"
    AUFS = "aufs"
    VFS = "vfs"

    @property
    def opaque_xattr(self) -> bytes:
        return b"user.overlay.opaque" if self is WhiteoutFormat.OVERLAY_USERXATTR else b"trusted.overlay.opaque"


def is_whiteout(base: bytes) -> bool:
    return base.startswith(WHITEOUT_PREFIX)


def whiteout_target(name: bytes, base: bytes) -> bytes:
    """The name a ``.wh.`` entry deletes; refuses empty, ``.`` and ``..`` targets and the AUFS link dir."""
    if base == LINK_DIR:
        raise UnsupportedEntryError(name, "AUFS hard-link directories (.wh..wh.plnk) are refused")
    target = base[len(WHITEOUT_PREFIX):]
    if target in (b"", b".", b".."):
        raise UnsafeEntryError(name, "a whiteout that names no entry of its directory")
    return target


def make_whiteout(fmt: WhiteoutFormat, fsops: FsOps, dir_fd: int, target: bytes, uid: int, gid: int) -> None:
    """Record the deletion of ``target`` in ``dir_fd`` in the driver's form (not AUFS: kept as a file)."""
    remove_at(dir_fd, target)
    if fmt is WhiteoutFormat.VFS:
        return
    fsops.mknod_at(dir_fd, target, stat.S_IFCHR, os.makedev(0, 0))
    fsops.chown_at(dir_fd, target, uid, gid)


def make_opaque(fmt: WhiteoutFormat, fsops: FsOps, dir_fd: int, rel: tuple[bytes, ...],
                unpacked: set[tuple[bytes, ...]]) -> None:
    """Mark directory ``dir_fd`` (at ``rel``) opaque in the driver's form.

    The xattr is set directly, not through ``fsops``: failing to set it must
    fail the layer (deleted files would come back), never be a warning. So an
    unprivileged caller that asks for ``OVERLAY`` (``trusted.*``) gets an error:
    rootless stores use ``OVERLAY_USERXATTR``.
    """
    if fmt is WhiteoutFormat.VFS:
        _remove_not_unpacked(dir_fd, rel, unpacked)
    else:
        os.setxattr(dir_fd, fmt.opaque_xattr, b"y")


def _remove_not_unpacked(dir_fd: int, rel: tuple[bytes, ...], unpacked: set[tuple[bytes, ...]]) -> None:
    """Remove every entry under ``dir_fd`` that this layer did not unpack (Docker's UnpackLayer rule)."""
    for name in sorted(os.fsencode(n) for n in os.listdir(dir_fd)):
        child = rel + (name,)
        if child not in unpacked:
            remove_at(dir_fd, name)
            continue
        st = os.lstat(name, dir_fd=dir_fd)
        if stat.S_ISDIR(st.st_mode):
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
            try:
                _remove_not_unpacked(fd, child, unpacked)
            finally:
                os.close(fd)
