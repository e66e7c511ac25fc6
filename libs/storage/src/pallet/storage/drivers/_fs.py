"""Small filesystem helpers shared by the drivers: exact modes, ID checks, removal of read-only trees."""

from __future__ import annotations

import os
import shutil
import stat
from pallet.storage.drivers.errors import DriverError
from pallet.storage.records import valid_id


def check_id(layer_id: str) -> str:
    """``layer_id`` if it is 64 lowercase hex digits (so it can never name a path outside), else DriverError."""
    if not valid_id(layer_id):
        raise DriverError(layer_id[:80], "not a layer ID (64 lowercase hex digits)")
    return layer_id


def make_dir(path: str, mode: int, *, exist_ok: bool = False) -> None:
    """mkdir with exactly ``mode`` (whatever the umask); an existing dir is kept as is when ``exist_ok``."""
    try:
        os.mkdir(path, mode)
    except FileExistsError:
        if exist_ok and os.path.isdir(path):
            return
        raise
    os.chmod(path, mode)


def write_file(path: str, text: str, mode: int) -> None:
    """Create ``path`` (it must not exist) holding ``text`` exactly (no newline added), with ``mode``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, text.encode("ascii"))
    finally:
        os.close(fd)


def _open_up(path: str) -> None:
    """Give the owner rwx on ``path`` if it is a directory lacking it (not following symlinks)."""
    st = os.lstat(path)
    if stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) & stat.S_IRWXU != stat.S_IRWXU:
        os.chmod(path, stat.S_IMODE(st.st_mode) | stat.S_IRWXU)


def remove_tree(path: str) -> None:
    """Remove ``path`` and everything under it, never following symlinks; a missing path is fine.

    Without privilege, directories lacking owner rwx (0555 diff dirs, mode 000
    dirs from a layer) are opened up first. Mount points are not crossed:
    removing a mounted directory fails (EBUSY).
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(path)
        return
    if os.geteuid() != 0:
        _open_up(path)
        for dirpath, dirnames, _ in os.walk(path):
            for name in dirnames:
                _open_up(os.path.join(dirpath, name))
    shutil.rmtree(path)
