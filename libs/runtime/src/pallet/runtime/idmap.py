"""Writing a user namespace's uid and gid maps, from the runtime (the parent) side.

As root the maps are written directly. Without privilege, one mapping of the
caller's own uid (and gid) of size 1 is written directly too, after ``deny``
to ``setgroups`` as the kernel requires; anything else goes through the
setuid helpers ``newuidmap``/``newgidmap``, which check /etc/subuid and
/etc/subgid. A map the kernel or a helper refuses is a
:class:`~pallet.runtime.errors.BundleError` naming the field.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from pallet.oci.spec.runtime import IDMapping
from pallet.runtime.errors import BundleError


def subordinate_ranges(path: str, user: str, uid: int) -> list[tuple[int, int]]:
    """The (start, count) ranges /etc/subuid or /etc/subgid gives ``user`` (by name or uid)."""
    ranges = []
    try:
        with open(path) as stream:
            for line in stream:
                fields = line.strip().split(":")
                if len(fields) == 3 and fields[0] in (user, str(uid)) and fields[1].isdigit() and fields[2].isdigit():
                    ranges.append((int(fields[1]), int(fields[2])))
    except OSError:
        pass
    return ranges


def default_mapping(host_id: int, subordinate: list[tuple[int, int]] | None = None) -> tuple[IDMapping, ...]:
    """The mapping used when a new user namespace has none: the caller's ID as 0 and, as crun
    does without privilege, the caller's subordinate IDs from 1 on."""
    mappings = [IDMapping(container_id=0, host_id=host_id, size=1)]
    next_id = 1
    for start, count in subordinate or ():
        if next_id + count > 2**32 - 1:
            break
        mappings.append(IDMapping(container_id=next_id, host_id=start, size=count))
        next_id += count
    return tuple(mappings)


def map_text(mappings: tuple[IDMapping, ...]) -> str:
    return "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in mappings)


def write_id_maps(pid: int, uid_mappings: tuple[IDMapping, ...], gid_mappings: tuple[IDMapping, ...]) -> None:
    """Give the user namespace of ``pid`` its maps (see the module docstring for how)."""
    euid, egid = os.geteuid(), os.getegid()
    own = (len(uid_mappings) == 1 and uid_mappings[0].host_id == euid and uid_mappings[0].size == 1
           and len(gid_mappings) == 1 and gid_mappings[0].host_id == egid and gid_mappings[0].size == 1)
    if euid == 0 or own:
        if euid != 0:
            _write(f"/proc/{pid}/setgroups", "deny\n", "linux.gidMappings")
        _write(f"/proc/{pid}/uid_map", map_text(uid_mappings), "linux.uidMappings")
        _write(f"/proc/{pid}/gid_map", map_text(gid_mappings), "linux.gidMappings")
        return
    _helper("newuidmap", pid, uid_mappings, "linux.uidMappings")
    _helper("newgidmap", pid, gid_mappings, "linux.gidMappings")


def _write(path: str, text: str, field: str) -> None:
    try:
        with open(path, "w") as stream:
            stream.write(text)
    except OSError as error:
        raise BundleError(f"{field}: the kernel refused the map {text.strip()!r} ({path}): {error.strerror}") from None


def _helper(name: str, pid: int, mappings: tuple[IDMapping, ...], field: str) -> None:
    program = shutil.which(name) or shutil.which(name, path="/usr/bin:/usr/sbin:/bin:/sbin")
    if program is None:
        raise BundleError(f"{field}: mapping more than the caller's own ID needs {name} (Debian package uidmap)")
    args = [program, str(pid)]
    for m in mappings:
        args += [str(m.container_id), str(m.host_id), str(m.size)]
    result = subprocess.run(args, capture_output=True, text=True)
    if result.returncode != 0:
        reason = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else f"exit status {result.returncode}"
        raise BundleError(f"{field}: {name} refused {map_text(mappings).strip()!r}: {reason}")
