"""mount(2) and umount2(2) through libc, and the mount table: the few syscalls the drivers need."""

from __future__ import annotations

import ctypes
import ctypes.util
import os

MNT_DETACH = 2
MS_RDONLY = 1
MS_BIND = 4096
MS_PRIVATE = 1 << 18
# mount(8)-style words that are mount(2) flags, not file system data (c/storage pkg/mount ParseOptions):
# name -> (clear, flag)
_FLAGS = {
    "defaults": (False, 0), "ro": (False, MS_RDONLY), "rw": (True, MS_RDONLY), "suid": (True, 2), "nosuid": (False, 2),
    "dev": (True, 4), "nodev": (False, 4), "exec": (True, 8), "noexec": (False, 8), "sync": (False, 16),
    "async": (True, 16), "dirsync": (False, 128), "remount": (False, 32), "mand": (False, 64), "nomand": (True, 64),
    "atime": (True, 1024), "noatime": (False, 1024), "diratime": (True, 2048), "nodiratime": (False, 2048),
    "relatime": (False, 1 << 21), "norelatime": (True, 1 << 21), "strictatime": (False, 1 << 24),
}


def parse_options(options: list[str]) -> tuple[int, list[str]]:
    """Split mount options into mount(2) flags and the file system's data words, as c/storage does."""
    flags, data = 0, []
    for option in options:
        if option in _FLAGS:
            clear, flag = _FLAGS[option]
            flags = flags & ~flag if clear else flags | flag
        elif option:
            data.append(option)
    return flags, data


def _libc() -> ctypes.CDLL:
    """The C library, with errno kept (loaded per call: no module state)."""
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def mount(source: str, target: str, fstype: str, data: str, flags: int = 0) -> None:
    """``mount(source, target, fstype, flags, data)``; OSError with errno on failure."""
    libc = _libc()
    rc = libc.mount(os.fsencode(source), os.fsencode(target), os.fsencode(fstype), ctypes.c_ulong(flags),
                    ctypes.c_char_p(os.fsencode(data)))
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), target)


def umount(target: str, flags: int = MNT_DETACH) -> None:
    """``umount2(target, flags)``; OSError with errno on failure."""
    rc = _libc().umount2(os.fsencode(target), ctypes.c_int(flags))
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), target)


def mount_from(directory: str, source: str, target: str, fstype: str, data: str, flags: int = 0) -> None:
    """mount(2) done by a forked child whose cwd is ``directory`` (relative paths in ``data`` and ``target``).

    This is containers/storage's ``mountOverlayFrom``: the mount data stays
    under a page because its paths are relative to ``directory``; the caller's
    own cwd is never changed. Raises OSError with the child's errno.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            os.close(read_end)
            os.chdir(directory)
            mount(source, target, fstype, data, flags)
        except BaseException as exc:  # noqa: BLE001 - the child must report and reach _exit
            code = 1
            os.write(write_end, str(getattr(exc, "errno", None) or 5).encode())
        finally:
            os._exit(code)
    os.close(write_end)
    try:
        reply = os.read(read_end, 64)
    finally:
        os.close(read_end)
    os.waitpid(pid, 0)
    if reply:
        err = int(reply)
        raise OSError(err, os.strerror(err), target)


def _unescape(field: str) -> str:
    """A mountinfo path field with its octal escapes (``\\040`` for a space) decoded."""
    return field.encode("latin-1").decode("unicode_escape").encode("latin-1").decode("utf-8", "surrogateescape")


def mounted_below(path: str) -> bool:
    """Whether the mount table lists a mount point strictly below ``path`` (symlinks in it resolved)."""
    prefix = os.path.realpath(path).rstrip("/") + "/"
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as table:
        return any(_unescape(line.split(" ", 5)[4]).startswith(prefix) for line in table)


def is_mountpoint(path: str) -> bool:
    """Whether ``path`` is a mount point in this mount namespace (symlinks in it resolved, as the table has them)."""
    target = os.path.realpath(path)
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as table:
        return any(_unescape(line.split(" ", 5)[4]) == target for line in table)


def is_mounted_here(path: str) -> bool:
    """Whether something is mounted on ``path`` *and visible there*: its device differs from its parent's.

    The mount table also lists mounts that a later mount above them hides
    (containers/storage bind-mounts the overlay home onto itself, which
    hides an overlay mounted on ``<home>/<id>/merged`` before it); this
    check sees what a path lookup sees. Meant for overlay mounts (their own
    device); a bind mount from the same file system is not seen.
    """
    try:
        return os.stat(path).st_dev != os.stat(os.path.dirname(os.path.abspath(path))).st_dev
    except FileNotFoundError:
        return False
