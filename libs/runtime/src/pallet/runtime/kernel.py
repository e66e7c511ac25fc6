"""The kernel calls the runtime makes, through libc (ctypes), each raising
:class:`~pallet.runtime.errors.KernelCallFailed` naming the call and its path.

Only what the standard library lacks is here (``unshare``, ``setns``,
``mount``, ``umount2``, ``pivot_root``, ``prctl``, ``capget``/``capset``,
``sethostname``, ``setdomainname``); the rest (``mknod``, ``setgroups``,
``setrlimit``...) is called through :mod:`os` and :mod:`resource` by its users.
The constants are the kernel's (x86_64 and aarch64 share them, except the
``pivot_root`` syscall number).
"""

from __future__ import annotations

import ctypes
import os
import platform

from pallet.runtime.errors import KernelCallFailed

# unshare(2) / setns(2) / clone(2) flags
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWTIME = 0x00000080

# mount(2) flags
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25

# umount2(2) flags
MNT_DETACH = 2

# prctl(2) options
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

# open_tree(2) / move_mount(2)
AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
OPEN_TREE_CLONE = 1
MOVE_MOUNT_F_EMPTY_PATH = 0x4

_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_PIVOT_ROOT_SYSCALL = {"x86_64": 155, "aarch64": 41}
# the same on every architecture (the new syscalls are numbered alike)
_OPEN_TREE_SYSCALL = 428
_MOVE_MOUNT_SYSCALL = 429

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, call: str, path: str | None = None, detail: str | None = None) -> int:
    if result < 0:
        raise KernelCallFailed(call, ctypes.get_errno(), path, detail)
    return result


def _bytes(value: str | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def unshare(flags: int) -> None:
    """Move the calling process into new namespaces (``CLONE_NEW*`` flags)."""
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare", detail=f"flags {flags:#x}")


def setns(fd: int, nstype: int = 0, path: str | None = None) -> None:
    """Join the namespace that ``fd`` (an open nsfs file, ``path``) refers to."""
    _check(_libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)), "setns", path)


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    """mount(2); the error names the target (and the source and type, when given)."""
    result = _libc.mount(
        _bytes(source), _bytes(target), _bytes(fstype), ctypes.c_ulong(flags), _bytes(data)
    )
    detail = ", ".join(part for part in (f"source {source}" if source else "", f"type {fstype}" if fstype else "") if part)
    _check(result, "mount", target, detail or None)


def umount2(target: str, flags: int = 0) -> None:
    _check(_libc.umount2(_bytes(target), ctypes.c_int(flags)), "umount2", target)


def pivot_root(new_root: str, put_old: str) -> None:
    number = _PIVOT_ROOT_SYSCALL.get(platform.machine())
    if number is None:
        raise KernelCallFailed("pivot_root", 38, new_root, f"no syscall number for {platform.machine()}")
    _check(_libc.syscall(ctypes.c_long(number), _bytes(new_root), _bytes(put_old)), "pivot_root", new_root)


def open_tree_clone(path: str, dirfd: int = AT_FDCWD) -> int:
    """A detached copy of the mount at ``path`` (``open_tree(OPEN_TREE_CLONE)``), as an fd
    that :func:`move_mount_fd` attaches elsewhere, even after pivot_root. With ``dirfd``
    and an empty ``path``, a copy of the (possibly detached) mount ``dirfd`` refers to."""
    flags = OPEN_TREE_CLONE | os.O_CLOEXEC | (AT_EMPTY_PATH if not path else 0)
    return _check(_libc.syscall(ctypes.c_long(_OPEN_TREE_SYSCALL), ctypes.c_int(dirfd), _bytes(path),
                                ctypes.c_uint(flags)), "open_tree", path or f"fd {dirfd}")


def move_mount_fd(tree_fd: int, target: str) -> None:
    """Attach the detached mount ``tree_fd`` at ``target``."""
    _check(_libc.syscall(ctypes.c_long(_MOVE_MOUNT_SYSCALL), ctypes.c_int(tree_fd), b"", ctypes.c_int(AT_FDCWD),
                         _bytes(target), ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH)), "move_mount", target)


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0, what: str = "prctl") -> int:
    """prctl(2); ``what`` names the operation in the error (``prctl PR_SET_NO_NEW_PRIVS``)."""
    args = (ctypes.c_ulong(arg) for arg in (arg2, arg3, arg4, arg5))
    return _check(_libc.prctl(ctypes.c_int(option), *args), what)


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_libc.sethostname(raw, ctypes.c_size_t(len(raw))), "sethostname", detail=name)


def setdomainname(name: str) -> None:
    raw = name.encode()
    _check(_libc.setdomainname(raw, ctypes.c_size_t(len(raw))), "setdomainname", detail=name)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def capget(pid: int = 0) -> tuple[int, int, int]:
    """The (effective, permitted, inheritable) capability masks of ``pid`` (0: the caller)."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, pid)
    data = (_CapData * 2)()
    _check(_libc.capget(ctypes.byref(header), data), "capget")
    def joined(name: str) -> int:
        return int(getattr(data[0], name)) | (int(getattr(data[1], name)) << 32)

    return joined("effective"), joined("permitted"), joined("inheritable")


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """Set the caller's capability masks (bit n is capability n)."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for index in (0, 1):
        shift = 32 * index
        data[index].effective = (effective >> shift) & 0xFFFFFFFF
        data[index].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[index].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    _check(_libc.capset(ctypes.byref(header), data), "capset")
