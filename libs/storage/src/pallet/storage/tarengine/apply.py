"""Apply a layer tar (plain, gzip or zstd) to an empty (overlay) or parent-copy (vfs) layer directory.

Contract of :func:`apply_layer`: the compressed stream is read once, in
chunks, never held whole; the diff_id is the sha256 of every uncompressed
byte up to the end of the stream (trailing bytes after the end blocks
included, as containers/storage hashes them); nothing is created, changed or
removed outside the layer directory, whatever the tar holds (see
:mod:`pallet.storage.tarengine.safety`); on any error an exception from
:mod:`pallet.storage.tarengine.errors` is raised and the directory is left
partly applied (the caller, holding the layer ``incomplete``, removes it).

Per entry: contents first, then owner (via :class:`FsOps`), mode (setuid,
setgid and sticky included; after chown, which clears them), xattrs (after
chown, which clears ``security.capability``), then times; directory times
are set at the very end. The root entry (``.``/``./``) is skipped, as
containers/storage skips it. Two entries naming one path are refused.
Overlay-reserved xattrs (``trusted.overlay.*``, ``user.overlay.*``) in a tar
header are dropped with a warning: a layer must not set redirect, metacopy or
opaque itself (the opaque form comes only from ``.wh..wh..opq``).
"""

from __future__ import annotations

import os
import stat
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import BinaryIO

from pallet.storage.tarengine import tarformat as tf
from pallet.storage.tarengine.crc64 import Crc64
from pallet.storage.tarengine.errors import (
    ApplyError, DuplicateEntryError, LimitExceededError, TarEngineError, UnsafeEntryError, UnsupportedEntryError,
)
from pallet.storage.tarengine.fsops import FsOps, default_fsops
from pallet.storage.tarengine.limits import Limits
from pallet.storage.tarengine.safety import LayerRoot, clean_name, lstat_at, remove_at
from pallet.storage.tarengine.stream import CHUNK, HashingReader, TarScanner, open_uncompressed
from pallet.storage.tarengine.tarsplit import TarSplitWriter
from pallet.storage.tarengine.whiteouts import (
    OPAQUE, WhiteoutFormat, is_whiteout, make_opaque, make_whiteout, whiteout_target,
)

_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_OVERLAY_XATTRS = (b"trusted.overlay.", b"user.overlay.")


@dataclass(frozen=True)
class ApplyOptions:
    """How to apply: the whiteout form of the driver, the caps, the privileged operations.

    ``fsops`` None picks :class:`RootFsOps` as root, else :class:`UnprivilegedFsOps`.
    ``skip_devices``: without privilege (or when mknod is refused, as for
    root of a user namespace), skip device nodes with a warning instead of
    refusing the layer, as c/storage does in a user namespace.
    """

    whiteouts: WhiteoutFormat = WhiteoutFormat.OVERLAY
    limits: Limits = field(default_factory=Limits)
    fsops: FsOps | None = None
    skip_devices: bool = False


@dataclass(frozen=True)
class ApplyResult:
    """What applying measured: the diff_id and size of the uncompressed stream, and more."""

    diff_id: str
    size: int
    compression: str
    entries: int
    uids: tuple[int, ...]
    gids: tuple[int, ...]
    warnings: tuple[str, ...]


def apply_layer(source: BinaryIO, layer_dir: str | os.PathLike[str], *, tar_split: BinaryIO | None = None,
                options: ApplyOptions | None = None) -> ApplyResult:
    """Extract the layer in ``source`` into ``layer_dir``; write tar-split to ``tar_split`` if given."""
    options = options or ApplyOptions()
    fsops = options.fsops or default_fsops()
    uncompressed, compression, corrupt = open_uncompressed(source)
    reader = HashingReader(uncompressed, options.limits.max_total_size, corrupt)
    writer = TarSplitWriter(tar_split) if tar_split is not None else None
    with LayerRoot(layer_dir) as root:
        applier = _Applier(root, options, fsops, writer)
        try:
            entries = applier.run(TarScanner(reader, options.limits))
        finally:
            applier.close()
    if writer is not None:
        writer.close()
    return ApplyResult(
        diff_id=reader.diff_id, size=reader.size, compression=compression, entries=entries,
        uids=tuple(sorted(applier.uids)), gids=tuple(sorted(applier.gids)), warnings=tuple(fsops.warnings),
    )


#: Parent directories kept open while an apply runs (each an fd).
_DIR_CACHE_SIZE = 64


class _Applier:
    """The state of one apply: the root, a cache of parent-directory fds, directory times, names seen.

    Resolving a parent inside the root opens every component of its path
    (safely: see ``LayerRoot.open_dir``); a tar visits few directories many
    times, so their fds are kept, most recently used first. A cached fd stays
    right while nothing is removed: adding an entry to a directory cannot
    change how any directory resolves. Whenever something is removed (an
    entry replacing another, a whiteout, an opaque directory), every cached
    directory but the current entry's parent is forgotten, since the removed
    name may have been one of them, or a symlink that some resolved through.
    Forgotten fds are closed when the next entry asks for its parent, so the
    current entry's ``dir_fd`` stays valid to its end.
    """

    def __init__(self, root: LayerRoot, options: ApplyOptions, fsops: FsOps, writer: TarSplitWriter | None) -> None:
        self.root = root
        self.options = options
        self.limits = options.limits
        self.fsops = fsops
        self.writer = writer
        self.scanner: TarScanner | None = None
        self.seen: set[tuple[bytes, ...]] = set()
        self.unpacked: set[tuple[bytes, ...]] = set()
        self.dir_times: list[tuple[tuple[bytes, ...], int, int, int]] = []
        self.uids: set[int] = set()
        self.gids: set[int] = set()
        self._dirs: OrderedDict[tuple[bytes, ...], int] = OrderedDict()
        self._current: tuple[bytes, ...] | None = None
        self._retired: list[int] = []

    def close(self) -> None:
        self._close_retired()
        while self._dirs:
            os.close(self._dirs.popitem()[1])
        self._current = None

    def _close_retired(self) -> None:
        while self._retired:
            os.close(self._retired.pop())

    def _removed_something(self) -> None:
        """Forget every cached directory but the current parent (see the class docstring)."""
        for key in [key for key in self._dirs if key != self._current]:
            self._retired.append(self._dirs.pop(key))

    def run(self, scanner: TarScanner) -> int:
        """Apply every member, write tar-split, set directory times; return the member count."""
        self.scanner = scanner
        count = 0
        for preamble, member in scanner.members():
            count += 1
            if self.writer is not None:
                self.writer.segment(preamble)
            crc = self._member(member)
            if self.writer is not None:
                self.writer.file(member.name, member.size, crc.digest() if member.size else None)
        for chunk in scanner.trailer():
            if self.writer is not None:
                self.writer.segment(chunk)
        self._set_dir_times()
        return count

    def _member(self, member: tf.Member) -> Crc64:
        parts = clean_name(member.name, self.limits)
        if parts and parts in self.seen:
            raise DuplicateEntryError(member.name)
        self.seen.add(parts)
        self.uids.add(member.uid)
        self.gids.add(member.gid)
        if member.typeflag == tf.PAX_GLOBAL:
            return Crc64()  # recorded in tar-split, never applied (as containers/storage)
        try:
            return self._dispatch(member, parts)
        except OSError as exc:
            raise ApplyError(member.name, exc.strerror or str(exc)) from exc

    def _dispatch(self, member: tf.Member, parts: tuple[bytes, ...]) -> Crc64:
        if not parts:
            if member.typeflag != tf.DIRECTORY:
                raise UnsafeEntryError(member.name, "a non-directory names the layer root")
            return Crc64()
        base = parts[-1]
        fmt = self.options.whiteouts
        if is_whiteout(base) and fmt is not WhiteoutFormat.AUFS:
            dir_fd = self._parent(parts[:-1], create=fmt is not WhiteoutFormat.VFS)
            if dir_fd >= 0:  # vfs: no parent, nothing to delete
                self._whiteout(member, parts, dir_fd)
            return self._drain()
        dir_fd = self._parent(parts[:-1])
        if fmt is WhiteoutFormat.VFS:
            self.unpacked.add(parts)
        if member.typeflag in (tf.REGULAR, tf.CONTIGUOUS):
            return self._regular(member, dir_fd, base)
        if member.typeflag == tf.DIRECTORY:
            self._directory(member, parts, dir_fd, base)
        elif member.typeflag == tf.SYMLINK:
            self._symlink(member, dir_fd, base)
        elif member.typeflag == tf.HARDLINK:
            self._hardlink(member, parts, dir_fd, base)
        else:
            self._special(member, dir_fd, base)
        return Crc64()

    def _parent(self, parent: tuple[bytes, ...], create: bool = True) -> int:
        """The fd of directory ``parent``, made if missing (else -1); cached (see the class docstring)."""
        self._close_retired()
        fd = self._dirs.get(parent)
        if fd is not None:
            self._dirs.move_to_end(parent)
            self._current = parent
            return fd
        try:
            fd = self.root.open_dir(parent, create=create)
        except (FileNotFoundError, NotADirectoryError):
            if create:
                raise
            self._current = None
            return -1
        self._dirs[parent] = fd
        self._current = parent
        if len(self._dirs) > _DIR_CACHE_SIZE:
            os.close(self._dirs.popitem(last=False)[1])  # the least recently used: never ``parent``
        return fd

    def _drain(self) -> Crc64:
        crc = Crc64()
        assert self.scanner is not None
        while data := self.scanner.read_content(CHUNK):
            if self.writer is not None:
                crc.update(data)
        return crc

    def _whiteout(self, member: tf.Member, parts: tuple[bytes, ...], dir_fd: int) -> None:
        fmt = self.options.whiteouts
        self._removed_something()  # before the removal: a name it removes may be a cached directory
        if parts[-1] == OPAQUE:
            make_opaque(fmt, self.fsops, dir_fd, parts[:-1], self.unpacked)
            return
        target = whiteout_target(member.name, parts[-1])
        make_whiteout(fmt, self.fsops, dir_fd, target, member.uid, member.gid)

    def _replace(self, dir_fd: int, base: bytes) -> None:
        if remove_at(dir_fd, base):
            self._removed_something()

    def _regular(self, member: tf.Member, dir_fd: int, base: bytes) -> Crc64:
        self._replace(dir_fd, base)
        fd = os.open(base, _FILE_FLAGS, 0o600, dir_fd=dir_fd)
        try:
            crc = self._copy_content(fd)
            self.fsops.chown_fd(fd, member.uid, member.gid)
            os.fchmod(fd, member.mode & 0o7777)
            self._xattrs(member, fd)
            os.utime(fd, ns=(member.atime_ns, member.mtime_ns))
        finally:
            os.close(fd)
        return crc

    def _copy_content(self, fd: int) -> Crc64:
        crc = Crc64()
        want_crc = self.writer is not None  # the CRC is only for tar-split (it is the costly part)
        assert self.scanner is not None
        while data := self.scanner.read_content(CHUNK):
            if want_crc:
                crc.update(data)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        return crc

    def _xattrs(self, member: tf.Member, target: int | tuple[int, bytes]) -> None:
        total = sum(len(k) + len(v) for k, v in member.xattrs.items())
        if total > self.limits.max_xattr_size:
            raise LimitExceededError("xattr bytes of one entry", total, self.limits.max_xattr_size)
        for key, value in member.xattrs.items():
            if key.startswith(_OVERLAY_XATTRS):
                # These steer the kernel's overlay (opaque, redirect, metacopy): only whiteout conversion sets them.
                self.fsops.warnings.append(f"xattr {key!r} of {member.name!r} dropped: reserved for overlay")
                continue
            self.fsops.set_xattr(target, key, value)

    def _directory(self, member: tf.Member, parts: tuple[bytes, ...], dir_fd: int, base: bytes) -> None:
        st = lstat_at(dir_fd, base)
        if st is not None and not stat.S_ISDIR(st.st_mode):
            self._replace(dir_fd, base)
            st = None
        if st is None:
            os.mkdir(base, 0o700, dir_fd=dir_fd)
        fd = os.open(base, _DIR_FLAGS, dir_fd=dir_fd)
        mode = member.mode & 0o7777
        try:
            self.fsops.chown_fd(fd, member.uid, member.gid)
            # Without privilege a read-only directory would refuse its own children: owner rwx until the end.
            os.fchmod(fd, mode if self.fsops.privileged else mode | 0o700)
            self._xattrs(member, fd)
        finally:
            os.close(fd)
        self.dir_times.append((parts, member.atime_ns, member.mtime_ns, mode))

    def _symlink(self, member: tf.Member, dir_fd: int, base: bytes) -> None:
        if len(member.linkname) > self.limits.max_name_length or b"\x00" in member.linkname:
            raise UnsafeEntryError(member.name, "symlink target too long or holds NUL")
        self._replace(dir_fd, base)
        os.symlink(member.linkname, base, dir_fd=dir_fd)
        self.fsops.chown_at(dir_fd, base, member.uid, member.gid)
        self._xattrs(member, (dir_fd, base))
        os.utime(base, ns=(member.atime_ns, member.mtime_ns), dir_fd=dir_fd, follow_symlinks=False)

    def _hardlink(self, member: tf.Member, parts: tuple[bytes, ...], dir_fd: int, base: bytes) -> None:
        target = clean_name(member.linkname, self.limits)
        if not target or target == parts:
            raise UnsafeEntryError(member.name, "hard link to the layer root or to itself")
        try:
            src_fd = self.root.open_dir(target[:-1])
        except (FileNotFoundError, NotADirectoryError):
            raise UnsafeEntryError(member.name, "hard link target is not in the layer") from None
        try:
            st = lstat_at(src_fd, target[-1])
            if st is None or stat.S_ISDIR(st.st_mode):
                raise UnsafeEntryError(member.name, "hard link target is missing or a directory")
            self._replace(dir_fd, base)
            os.link(target[-1], base, src_dir_fd=src_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
        finally:
            os.close(src_fd)

    def _special(self, member: tf.Member, dir_fd: int, base: bytes) -> None:
        perm = member.mode & 0o7777
        if member.typeflag == tf.FIFO:
            self._replace(dir_fd, base)
            os.mkfifo(base, 0o600, dir_fd=dir_fd)
        elif not self.fsops.privileged:
            if not self.options.skip_devices:
                raise UnsupportedEntryError(member.name, "device nodes need privilege")
            self.fsops.warnings.append(f"device node {member.name!r} skipped: no privilege")
            return
        else:
            kind = stat.S_IFCHR if member.typeflag == tf.CHAR else stat.S_IFBLK
            try:
                device = os.makedev(member.devmajor, member.devminor)
            except (OverflowError, ValueError):
                raise UnsafeEntryError(member.name, "device numbers out of range") from None
            self._replace(dir_fd, base)
            try:
                self.fsops.mknod_at(dir_fd, base, kind | 0o600, device)
            except PermissionError:  # root of a user namespace: no CAP_MKNOD on the host
                if not self.options.skip_devices:
                    raise
                self.fsops.warnings.append(f"device node {member.name!r} skipped: mknod not permitted here")
                return
        self.fsops.chown_at(dir_fd, base, member.uid, member.gid)
        os.chmod(base, perm, dir_fd=dir_fd)
        self._xattrs(member, (dir_fd, base))
        os.utime(base, ns=(member.atime_ns, member.mtime_ns), dir_fd=dir_fd, follow_symlinks=False)

    def _set_dir_times(self) -> None:
        """Set directory times (and unprivileged, final modes) last, deepest first; entries gone are skipped."""
        for parts, atime, mtime, mode in sorted(self.dir_times, key=lambda item: -len(item[0])):
            try:  # nothing is removed any more: cached parents stay right
                fd = self._parent(parts[:-1], create=False)
            except (OSError, TarEngineError):
                continue
            if fd < 0:
                continue
            try:
                st = lstat_at(fd, parts[-1])
                if st is not None and stat.S_ISDIR(st.st_mode):
                    if not self.fsops.privileged:
                        os.chmod(parts[-1], mode, dir_fd=fd)  # a directory (checked just above): no symlink to follow
                    os.utime(parts[-1], ns=(atime, mtime), dir_fd=fd, follow_symlinks=False)
            except OSError as exc:
                raise ApplyError(b"/".join(parts), f"set directory mode and times: {exc.strerror}") from exc
        self.close()
