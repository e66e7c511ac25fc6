"""Paths inside a container's rootfs, resolved so that symlinks cannot lead out of it.

:func:`resolve_in_root` walks a container path component by component as the
kernel would inside a chroot: a symlink's absolute target is taken relative to
the rootfs (as crun does), and a ``..`` that would climb above the rootfs is
refused with :class:`~pallet.runtime.errors.BundleError` (crun clamps it; a
config that relies on that is a bundle trying to reach the host).
:func:`open_in_root` then opens the result ``O_PATH`` and checks, through
``/proc/self/fd``, that what was opened is still inside the rootfs, so a
mount can target ``/proc/self/fd/N`` without a race to swap a component.
"""

from __future__ import annotations

import os
from collections import deque
from pathlib import Path

from pallet.runtime.errors import BundleError

_MAX_SYMLINKS = 40


def _components(path: str) -> list[str]:
    return [part for part in path.split("/") if part not in ("", ".")]


def resolve_in_root(root: Path, path: str) -> Path:
    """The host path of container path ``path`` under ``root``; components that do not
    exist yet are appended as they are. BundleError when a symlink leads above ``root``."""
    pending = deque(_components(path))
    current: list[str] = []
    followed = 0
    while pending:
        part = pending.popleft()
        if part == "..":
            if not current:
                raise BundleError(f"{path}: escapes the container's rootfs {root} (through '..' or a symlink)")
            current.pop()
            continue
        candidate = root.joinpath(*current, part)
        if not candidate.is_symlink():
            current.append(part)
            continue
        followed += 1
        if followed > _MAX_SYMLINKS:
            raise BundleError(f"{path}: too many levels of symbolic links under {root}")
        target = os.readlink(candidate)
        if target.startswith("/"):
            current = []
        pending.extendleft(reversed(_components(target)))
    return root.joinpath(*current)


def make_target(root: Path, path: str, *, is_file: bool) -> Path:
    """Resolve ``path`` under ``root`` and create it (with its parents) when missing:
    an empty file when ``is_file``, else a directory."""
    resolved = resolve_in_root(root, path)
    if os.path.lexists(resolved):
        return resolved
    resolve_in_root(root, str(Path(path).parent))  # the parent chain must stay inside too
    resolved.parent.mkdir(parents=True, exist_ok=True)
    if is_file:
        resolved.touch(mode=0o644)
    else:
        resolved.mkdir(mode=0o755)
    return resolved


def open_in_root(root: Path, resolved: Path, container_path: str) -> int:
    """An ``O_PATH`` descriptor of ``resolved``, checked to be ``root`` or below it."""
    fd = os.open(resolved, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    real = os.readlink(f"/proc/self/fd/{fd}")
    if real != str(root) and not real.startswith(str(root).rstrip("/") + "/"):
        os.close(fd)
        raise BundleError(f"{container_path}: resolves to {real}, outside the container's rootfs {root}")
    return fd
