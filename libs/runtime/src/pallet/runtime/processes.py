"""The processes of a container (without cgroups yet): its init process, every descendant,
and, when the container has a pid namespace of its own, every process in it (``exec``
processes are not descendants of the init process)."""

from __future__ import annotations

import os
from pathlib import Path


def _parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def _pid_namespace(pid: int | str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def container_processes(init_pid: int) -> list[int]:
    """The processes of the container whose init process is ``init_pid``, sorted."""
    found = set(descendants(init_pid))
    namespace = _pid_namespace(init_pid)
    if namespace is not None and namespace != _pid_namespace("self"):
        found.update(int(name) for name in os.listdir("/proc") if name.isdigit() and _pid_namespace(name) == namespace)
    return sorted(found)


def descendants(init_pid: int) -> list[int]:
    """``init_pid`` and all its descendants, sorted."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            parent = _parent_of(int(name))
            if parent is not None:
                children.setdefault(parent, []).append(int(name))
    found = [init_pid]
    index = 0
    while index < len(found):
        found.extend(children.get(found[index], []))
        index += 1
    return sorted(found)
