"""Capabilities by name, and the switch of the container process to its user and sets.

The order is runc's: drop from the bounding set, keep capabilities across the
change of user (``PR_SET_KEEPCAPS``), set groups, gid and uid, then set the
effective, permitted and inheritable sets and raise the ambient ones. A name
the kernel does not know (above ``cap_last_cap``) is left out, as runc does;
an ambient capability the other sets do not allow is left out, as crun does.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable
from pathlib import Path

from pallet.oci.spec.runtime import Capabilities, User
from pallet.runtime import kernel as k
from pallet.runtime.errors import KernelCallFailed

CAPABILITY_NAMES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
    "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
    "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)


def last_capability() -> int:
    try:
        return int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    except OSError:
        return len(CAPABILITY_NAMES) - 1


def capability_mask(names: Iterable[str] | None, last: int) -> int:
    """The bit mask of the named capabilities the kernel knows (unknown names are left out)."""
    mask = 0
    for name in names or ():
        if name in CAPABILITY_NAMES and CAPABILITY_NAMES.index(name) <= last:
            mask |= 1 << CAPABILITY_NAMES.index(name)
    return mask


def drop_bounding(keep: int, last: int) -> None:
    for number in range(last + 1):
        if not keep & (1 << number) and k.prctl(k.PR_CAPBSET_READ, number):
            k.prctl(k.PR_CAPBSET_DROP, number, what=f"prctl PR_CAPBSET_DROP {CAPABILITY_NAMES[number]}")


def switch_user(user: User) -> None:
    """Set the groups, gid and uid of ``user``; setgroups refused (``deny`` in a rootless user
    namespace) is tolerated when there are no additional groups."""
    try:
        os.setgroups(list(user.additional_gids or ()))
    except OSError as error:
        if error.errno != errno.EPERM or user.additional_gids:
            raise KernelCallFailed("setgroups", error.errno or 0, detail=str(list(user.additional_gids or ()))) from None
    try:
        os.setresgid(user.gid, user.gid, user.gid)
        os.setresuid(user.uid, user.uid, user.uid)
    except OSError as error:
        raise KernelCallFailed("setresuid/setresgid", error.errno or 0, detail=f"{user.uid}:{user.gid}") from None


def apply_capabilities(capabilities: Capabilities | None, user: User) -> None:
    """Switch to ``user`` and leave the process with exactly the configured capability sets."""
    last = last_capability()
    sets = capabilities or Capabilities()
    drop_bounding(capability_mask(sets.bounding, last), last)
    k.prctl(k.PR_SET_KEEPCAPS, 1, what="prctl PR_SET_KEEPCAPS")
    switch_user(user)
    k.prctl(k.PR_SET_KEEPCAPS, 0, what="prctl PR_SET_KEEPCAPS")
    permitted = capability_mask(sets.permitted, last)
    inheritable = capability_mask(sets.inheritable, last)
    k.capset(capability_mask(sets.effective, last) & permitted, permitted, inheritable)
    k.prctl(k.PR_CAP_AMBIENT, k.PR_CAP_AMBIENT_CLEAR_ALL, what="prctl PR_CAP_AMBIENT_CLEAR_ALL")
    for number in range(last + 1):
        if capability_mask(sets.ambient, last) & (1 << number) and permitted & inheritable & (1 << number):
            k.prctl(k.PR_CAP_AMBIENT, k.PR_CAP_AMBIENT_RAISE, number, what=f"prctl PR_CAP_AMBIENT_RAISE {CAPABILITY_NAMES[number]}")
