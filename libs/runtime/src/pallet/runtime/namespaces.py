"""The namespaces of a container: which to join (by path) and which to create.

The user namespace comes first (joined or created) so that the others are
owned by it; the pid and time namespaces apply to the children of the caller,
which is why the container process is forked after :func:`unshare_others`.
"""

from __future__ import annotations

import os

from pallet.oci.spec.runtime import Namespace
from pallet.runtime import kernel as k

NAMESPACE_FLAGS: dict[str, int] = {
    "user": k.CLONE_NEWUSER, "mount": k.CLONE_NEWNS, "pid": k.CLONE_NEWPID, "network": k.CLONE_NEWNET,
    "ipc": k.CLONE_NEWIPC, "uts": k.CLONE_NEWUTS, "cgroup": k.CLONE_NEWCGROUP, "time": k.CLONE_NEWTIME,
}


def join_paths(namespaces: tuple[Namespace, ...]) -> None:
    """setns into every namespace given by path, the user namespace first."""
    ordered = sorted((ns for ns in namespaces if ns.path), key=lambda ns: ns.type != "user")
    for namespace in ordered:
        assert namespace.path is not None
        fd = os.open(namespace.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            k.setns(fd, NAMESPACE_FLAGS[namespace.type], namespace.path)
        finally:
            os.close(fd)


def unshare_others(namespaces: tuple[Namespace, ...]) -> None:
    """unshare every namespace to create except the user namespace."""
    flags = 0
    for namespace in namespaces:
        if namespace.path is None and namespace.type != "user":
            flags |= NAMESPACE_FLAGS[namespace.type]
    if flags:
        k.unshare(flags)
