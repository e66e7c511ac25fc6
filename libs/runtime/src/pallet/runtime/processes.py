"""The processes of a container: its init process and every descendant (without cgroups
yet, the process tree is what tells them apart; inside a pid namespace orphans are
re-parented to the init process, so the tree holds them all)."""

from __future__ import annotations

import os
from pathlib import Path


def _parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2 :].split()[1])


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
