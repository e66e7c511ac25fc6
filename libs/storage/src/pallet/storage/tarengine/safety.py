"""Path handling inside a layer directory: lexical cleaning of tar names, and in-root resolution.

Security model
--------------
Every filesystem call of the engine acts on ``(dir_fd, name)`` where ``name``
is one path component and ``dir_fd`` is a directory obtained by
:meth:`LayerRoot.open_dir`. That walk opens one component at a time with
``O_NOFOLLOW | O_DIRECTORY`` relative to the previous directory fd, so the
kernel never resolves a symlink for us. When a component is a symlink, the
walk reads it and continues with its target *as if the layer directory were
``/``*: an absolute target restarts at the layer root and ``..`` never climbs
above it. This is the semantics of ``openat2(RESOLVE_IN_ROOT)`` and of
containers/storage's chrooted extraction, done in user space so that it
works on any kernel (the choice over ``openat2`` via ctypes: portable, no
ctypes, and every step is visible to tests). A symlink planted earlier in the
same tar therefore cannot lead a write out of the layer: ``link/x`` with
``link -> /etc`` writes ``<layer>/etc/x``. The final component is never
followed: an existing entry there is replaced, not written through.

Tar names are cleaned lexically first (:func:`clean_name`): a leading ``/``
is dropped (containers/storage joins absolute names under the root too),
``.`` and empty components are dropped, ``..`` pops a component, and a
``..`` that would climb above the root is refused (Go normalises some of
those silently; refusing is the safe choice). Names with NUL, over
``max_name_length`` bytes or ``max_depth`` components are refused.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat

from pallet.storage.tarengine.errors import UnsafeEntryError
from pallet.storage.tarengine.limits import Limits

MAX_SYMLINKS = 40  # as the kernel's ELOOP limit
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def clean_name(name: bytes, limits: Limits) -> tuple[bytes, ...]:
    """The components of tar name ``name`` relative to the layer root; ``()`` is the root itself."""
    if b"\x00" in name:
        raise UnsafeEntryError(name, "NUL in the name")
    if len(name) > limits.max_name_length:
        raise UnsafeEntryError(name, f"longer than {limits.max_name_length} bytes")
    parts: list[bytes] = []
    for part in name.split(b"/"):
        if part in (b"", b"."):
            continue
        if part == b"..":
            if not parts:
                raise UnsafeEntryError(name, "climbs out of the layer with '..'")
            parts.pop()
            continue
        if len(part) > 255:
            raise UnsafeEntryError(name, "a component longer than 255 bytes")
        parts.append(part)
    if len(parts) > limits.max_depth:
        raise UnsafeEntryError(name, f"deeper than {limits.max_depth} components")
    return tuple(parts)


class LayerRoot:
    """An open layer directory. Paths are resolved inside it only (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.fd = os.open(self.path, _DIR_FLAGS)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> LayerRoot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open_dir(self, parts: tuple[bytes, ...], *, create: bool = False) -> int:
        """A new fd of the directory ``parts`` resolved in the root; missing ones made (0755) if ``create``.

        Raises FileNotFoundError / NotADirectoryError when the path does not
        lead to a directory, and :class:`UnsafeEntryError` on a symlink loop.
        The caller closes the fd. One fd is held at a time whatever the depth
        (a ``..`` from a symlink target re-walks the real names from the root).
        """
        names: list[bytes] = []  # the real directories walked so far (no symlinks among them)
        current = os.dup(self.fd)
        pending = list(reversed(parts))
        links = 0
        try:
            while pending:
                part = pending.pop()
                if part in (b"", b"."):
                    continue
                if part == b"..":
                    if names:
                        names.pop()
                        os.close(current)
                        current = -1
                        current = self._reopen(names)
                    continue
                fd, target = self._step(current, part, create)
                if target is None:
                    os.close(current)
                    current = fd
                    names.append(part)
                    continue
                links += 1
                if links > MAX_SYMLINKS:
                    raise UnsafeEntryError(b"/".join(parts), "too many levels of symbolic links")
                if target.startswith(b"/"):
                    names.clear()
                    os.close(current)
                    current = -1
                    current = os.dup(self.fd)
                pending.extend(reversed(target.split(b"/")))
            result, current = current, -1
            return result
        finally:
            if current >= 0:
                os.close(current)

    def _reopen(self, names: list[bytes]) -> int:
        """Re-open the real directory ``names`` from the root (after a ``..``); never follows a symlink."""
        current = os.dup(self.fd)
        try:
            for name in names:
                fd = os.open(name, _DIR_FLAGS, dir_fd=current)
                os.close(current)
                current = fd
        except BaseException:
            os.close(current)
            raise
        return current

    @staticmethod
    def _step(dir_fd: int, part: bytes, create: bool) -> tuple[int, bytes | None]:
        """Open directory ``part`` in ``dir_fd`` (fd, None), or read it as a symlink (-1, target)."""
        try:
            return os.open(part, _DIR_FLAGS, dir_fd=dir_fd), None
        except FileNotFoundError:
            if not create:
                raise
            os.mkdir(part, 0o700, dir_fd=dir_fd)
            fd = os.open(part, _DIR_FLAGS, dir_fd=dir_fd)
            os.fchmod(fd, 0o755)
            return fd, None
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            if not stat.S_ISLNK(os.lstat(part, dir_fd=dir_fd).st_mode):
                raise NotADirectoryError(errno.ENOTDIR, "not a directory", os.fsdecode(part)) from None
            return -1, os.readlink(part, dir_fd=dir_fd)


def lstat_at(dir_fd: int, name: bytes) -> os.stat_result | None:
    """``lstat`` of ``name`` in ``dir_fd``, or None when it does not exist."""
    try:
        return os.lstat(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return None


def remove_at(dir_fd: int, name: bytes) -> bool:
    """Remove ``name`` in ``dir_fd`` (a whole tree for a directory, never following symlinks).

    Returns whether something was removed. ``shutil.rmtree`` with ``dir_fd``
    is the fd-based, symlink-safe variant.
    """
    st = lstat_at(dir_fd, name)
    if st is None:
        return False
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(os.fsdecode(name), dir_fd=dir_fd)
    else:
        os.unlink(name, dir_fd=dir_fd)
    return True


def proc_path(dir_fd: int, name: bytes) -> bytes:
    """A path naming ``name`` in ``dir_fd`` for calls without ``dir_fd`` support (setxattr on a symlink)."""
    return b"/proc/self/fd/%d/%s" % (dir_fd, name)
