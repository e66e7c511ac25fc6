"""The id mapping rootless podman gives its user namespace, as data.

For a user with host uid U and subordinate uid ranges R1, R2, ... (in
/etc/subuid order), podman's namespace maps::

    container 0          -> host U                 (size 1)
    container 1          -> host R1.start          (size R1.count)
    container 1+R1.count -> host R2.start          (size R2.count)
    ...

and the same for gids with /etc/subgid. So a file that a container process
chowns to 1000 is owned on the host by ``R1.start + 999`` (when R1 has at
least 1000 ids). :func:`newidmap_args` gives the argument list of
``newuidmap``/``newgidmap`` for that mapping; :func:`proc_map_text` gives the
text the kernel shows in ``/proc/PID/uid_map`` for it.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pallet.storage.userns.errors import SubIDRangesTooSmall
from pallet.storage.userns.subids import SUBGID_PATH, SUBUID_PATH, SubIDRange, ranges_for_user

# Enough subordinate ids to cover container ids 1..65536, i.e. every id an
# image normally uses (nobody/nogroup is 65534): what `useradd` allots by default.
DEFAULT_MIN_SUBIDS = 65536


@dataclass(frozen=True)
class IDMapEntry:
    """``size`` consecutive ids: ``container_id``.. inside the namespace are ``host_id``.. outside."""

    container_id: int
    host_id: int
    size: int


IDMap = tuple[IDMapEntry, ...]


def rootless_idmap(host_id: int, ranges: Sequence[SubIDRange]) -> IDMap:
    """Podman's rootless mapping: container 0 -> ``host_id``, then 1.. -> each range in order."""
    entries = [IDMapEntry(0, host_id, 1)]
    next_id = 1
    for subids in ranges:
        if subids.count <= 0:
            continue
        entries.append(IDMapEntry(next_id, subids.start, subids.count))
        next_id += subids.count
    return tuple(entries)


def map_size(idmap: Iterable[IDMapEntry]) -> int:
    """How many ids the mapping covers."""
    return sum(entry.size for entry in idmap)


def to_host(idmap: Iterable[IDMapEntry], container_id: int) -> int | None:
    """The host id of ``container_id`` under ``idmap``, or None when it is not mapped."""
    for entry in idmap:
        if entry.container_id <= container_id < entry.container_id + entry.size:
            return entry.host_id + (container_id - entry.container_id)
    return None


def to_container(idmap: Iterable[IDMapEntry], host_id: int) -> int | None:
    """The id inside the namespace of ``host_id`` under ``idmap``, or None when it is not mapped."""
    for entry in idmap:
        if entry.host_id <= host_id < entry.host_id + entry.size:
            return entry.container_id + (host_id - entry.host_id)
    return None


def newidmap_args(pid: int, idmap: Iterable[IDMapEntry]) -> list[str]:
    """The arguments after the program name of ``newuidmap``/``newgidmap`` setting ``idmap`` on ``pid``.

    shadow's syntax: ``PID ID-INSIDE ID-OUTSIDE COUNT [ID-INSIDE ID-OUTSIDE COUNT]...``.
    """
    args = [str(pid)]
    for entry in idmap:
        args += [str(entry.container_id), str(entry.host_id), str(entry.size)]
    return args


def proc_map_text(idmap: Iterable[IDMapEntry]) -> str:
    """The mapping as the kernel shows it in /proc/PID/uid_map (three right-aligned columns a line).

    Also the text to write into /proc/PID/uid_map when privileged (the kernel accepts the padding).
    """
    return "".join(f"{e.container_id:>10} {e.host_id:>10} {e.size:>10}\n" for e in idmap)


def parse_proc_map(text: str) -> IDMap:
    """A mapping read back from /proc/PID/uid_map or gid_map (raises ValueError on other text)."""
    entries = []
    for line in text.splitlines():
        if line.strip():
            inside, outside, size = (int(field) for field in line.split())
            entries.append(IDMapEntry(inside, outside, size))
    return tuple(entries)


@dataclass(frozen=True)
class RootlessMapping:
    """The uid and gid mappings of a rootless user's namespace, and whose they are."""

    user: str
    uid: int
    gid: int
    uid_map: IDMap
    gid_map: IDMap


def _checked_ranges(path: Path, user: str, uid: int, min_subids: int) -> tuple[SubIDRange, ...]:
    """The user's ranges in ``path``, or NoSubIDRanges / SubIDRangesTooSmall."""
    ranges = ranges_for_user(path, user, uid)
    available = sum(r.count for r in ranges)
    if available < min_subids:
        raise SubIDRangesTooSmall(str(path), user, available, min_subids)
    return ranges


def rootless_mapping(
    *,
    user: str | None = None,
    uid: int | None = None,
    gid: int | None = None,
    subuid_path: Path = SUBUID_PATH,
    subgid_path: Path = SUBGID_PATH,
    min_subids: int = DEFAULT_MIN_SUBIDS,
) -> RootlessMapping:
    """Podman's mapping for ``user`` (default: the real uid's passwd entry, gid: the real gid).

    The subordinate gid ranges are looked up by the user's name or uid, as
    newgidmap does. Raises :class:`NoSubIDRanges` when the user has no range in
    either file, :class:`SubIDRangesTooSmall` when a file's ranges hold fewer
    than ``min_subids`` ids, :class:`SubIDFileInvalid` for a malformed file,
    and ``KeyError`` when ``user`` is None and the real uid has no passwd entry.
    """
    uid = os.getuid() if uid is None else uid
    gid = os.getgid() if gid is None else gid
    user = pwd.getpwuid(uid).pw_name if user is None else user
    uid_ranges = _checked_ranges(subuid_path, user, uid, min_subids)
    gid_ranges = _checked_ranges(subgid_path, user, uid, min_subids)
    return RootlessMapping(user, uid, gid, rootless_idmap(uid, uid_ranges), rootless_idmap(gid, gid_ranges))
