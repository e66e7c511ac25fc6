"""The fstab-style ``options`` of a config mount, split as mount(2) wants them.

:func:`parse_mount_options` returns :class:`MountOptions`: the flags to set,
the propagation flags (applied by a separate mount call), whether the mount
is a (recursive) bind, and the remaining options joined as the ``data``
string the filesystem reads (``mode=755,size=65536k``).
"""

from __future__ import annotations

from dataclasses import dataclass

from pallet.runtime import kernel as k

# name -> (clear, flag): clear is True for options that turn a flag off (rw, suid...)
_FLAGS: dict[str, tuple[bool, int]] = {
    "ro": (False, k.MS_RDONLY), "rw": (True, k.MS_RDONLY),
    "nosuid": (False, k.MS_NOSUID), "suid": (True, k.MS_NOSUID),
    "nodev": (False, k.MS_NODEV), "dev": (True, k.MS_NODEV),
    "noexec": (False, k.MS_NOEXEC), "exec": (True, k.MS_NOEXEC),
    "sync": (False, k.MS_SYNCHRONOUS), "async": (True, k.MS_SYNCHRONOUS),
    "dirsync": (False, k.MS_DIRSYNC),
    "remount": (False, k.MS_REMOUNT),
    "mand": (False, k.MS_MANDLOCK), "nomand": (True, k.MS_MANDLOCK),
    "atime": (True, k.MS_NOATIME), "noatime": (False, k.MS_NOATIME),
    "diratime": (True, k.MS_NODIRATIME), "nodiratime": (False, k.MS_NODIRATIME),
    "relatime": (False, k.MS_RELATIME), "norelatime": (True, k.MS_RELATIME),
    "strictatime": (False, k.MS_STRICTATIME), "nostrictatime": (True, k.MS_STRICTATIME),
    "lazytime": (False, k.MS_LAZYTIME), "nolazytime": (True, k.MS_LAZYTIME),
    "nosymfollow": (False, k.MS_NOSYMFOLLOW), "symfollow": (True, k.MS_NOSYMFOLLOW),
}

PROPAGATION: dict[str, int] = {
    "private": k.MS_PRIVATE, "rprivate": k.MS_PRIVATE | k.MS_REC,
    "shared": k.MS_SHARED, "rshared": k.MS_SHARED | k.MS_REC,
    "slave": k.MS_SLAVE, "rslave": k.MS_SLAVE | k.MS_REC,
    "unbindable": k.MS_UNBINDABLE, "runbindable": k.MS_UNBINDABLE | k.MS_REC,
}

# accepted and without effect here (crun's extensions, or handled elsewhere)
_IGNORED = frozenset({"defaults", "tmpcopyup", "notmpcopyup", "rbind", "bind", "copy-symlink", "idmap", "ridmap"})

# flags that a bind mount takes only through a remount
BIND_REMOUNT_FLAGS = (
    k.MS_RDONLY | k.MS_NOSUID | k.MS_NODEV | k.MS_NOEXEC | k.MS_NOATIME | k.MS_NODIRATIME | k.MS_RELATIME
    | k.MS_STRICTATIME | k.MS_NOSYMFOLLOW
)


@dataclass(frozen=True)
class MountOptions:
    flags: int
    propagation: tuple[int, ...]
    bind: bool
    recursive: bool
    data: str

    @property
    def readonly(self) -> bool:
        return bool(self.flags & k.MS_RDONLY)


def parse_mount_options(options: tuple[str, ...] | None, mount_type: str | None = None) -> MountOptions:
    flags = 0
    propagation: list[int] = []
    data: list[str] = []
    names = options or ()
    for name in names:
        if name in _FLAGS:
            clear, flag = _FLAGS[name]
            flags = flags & ~flag if clear else flags | flag
        elif name in PROPAGATION:
            propagation.append(PROPAGATION[name])
        elif name not in _IGNORED:
            data.append(name)
    bind = mount_type == "bind" or "bind" in names or "rbind" in names
    return MountOptions(flags, tuple(propagation), bind, "rbind" in names, ",".join(data))


def mount_option_names() -> list[str]:
    """Every option name this module knows, sorted (for ``features``)."""
    return sorted(set(_FLAGS) | set(PROPAGATION) | {"bind", "rbind"})
