"""Layer diffs for commit: a tar of what changed, with AUFS whiteouts, in a deterministic order.

Two sources:

- :func:`diff_upper`: an overlay upper directory (it holds only the changes);
  char devices 0/0 become ``.wh.NAME`` and a directory with the opaque xattr
  (``trusted.overlay.opaque`` or ``user.overlay.opaque``) gets a
  ``DIR/.wh..wh..opq`` entry right after it, as containers/storage exports them
  (whiteouts mode 0, the opaque marker with the directory's permissions and mtime 0).
- :func:`diff_trees`: a full tree against its parent tree (vfs): added or
  changed entries, and ``.wh.NAME`` for removed ones (not descended into).
- :func:`diff_new_tree`: a full tree with no parent (a vfs base layer): every entry.

Output contract: entries in byte-sorted path order, a directory before its
children, every ancestor directory of a change included; PAX format, owner
names empty, times in whole seconds, xattrs as ``SCHILY.xattr.*`` (overlay
ones left out), regular files with more than one link as hard links to the
first path seen. The same trees always give the same bytes. Both trees are
walked through directory fds with ``O_NOFOLLOW``, so a symlink swapped in by a
running container cannot make the diff read files outside the tree. Sparse
files are written as regular files (holes as zeros); sockets are left out.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import stat
import tarfile
from dataclasses import dataclass
from typing import Any, BinaryIO

from pallet.storage.tarengine.safety import proc_path
from pallet.storage.tarengine.whiteouts import OPAQUE, WHITEOUT_PREFIX

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_OVERLAY_XATTRS = (b"trusted.overlay.", b"user.overlay.")
_OPAQUE_KEYS = (b"trusted.overlay.opaque", b"user.overlay.opaque")


@dataclass(frozen=True)
class DiffResult:
    digest: str
    size: int
    entries: int


_TYPE_BITS = {tarfile.REGTYPE: stat.S_IFREG, tarfile.AREGTYPE: stat.S_IFREG, tarfile.LNKTYPE: stat.S_IFREG,
              tarfile.DIRTYPE: stat.S_IFDIR, tarfile.SYMTYPE: stat.S_IFLNK, tarfile.CHRTYPE: stat.S_IFCHR,
              tarfile.BLKTYPE: stat.S_IFBLK, tarfile.FIFOTYPE: stat.S_IFIFO}
_NAME_SIZE, _PREFIX_SIZE = 100, 155


def _checksummed(block: bytes) -> bytes:
    """A 512-byte header block with its checksum field recomputed (as tarfile writes it)."""
    blank = block[:148] + b" " * 8 + block[156:]
    return blank[:148] + b"%06o\0" % sum(blank) + blank[155:]


def _go_split(name: str) -> tuple[str, str] | None:
    """Go's splitUSTARPath: a name over 100 bytes as (prefix, name) at the last '/' that fits, else None."""
    if len(name) <= _NAME_SIZE or not name.isascii():
        return None
    length = len(name)
    if length > _PREFIX_SIZE + 1:
        length = _PREFIX_SIZE + 1
    elif name[length - 1] == "/":
        length -= 1
    i = name.rfind("/", 0, length)
    suffix = len(name) - i - 1
    if i <= 0 or suffix > _NAME_SIZE or suffix == 0 or i > _PREFIX_SIZE:
        return None
    return name[:i], name[i + 1:]


def _go_string(field: bytearray, start: int, size: int, text: str) -> None:
    """Go's formatString of ``toASCII(text)`` into ``field[start:start+size]``: non-ASCII and NUL dropped, cut
    to ``size``, and a cut that ends in ``/`` ends at the slashes instead (NUL there)."""
    data = "".join(c for c in text if "\0" < c < "\x80").encode("ascii")
    cut = bytearray(data[:size].ljust(size, b"\0"))
    if len(data) > size and cut[size - 1:size] == b"/":
        cut[len(data[:size - 1].rstrip(b"/"))] = 0
    field[start:start + size] = cut


class _GoTarInfo(tarfile.TarInfo):
    """Headers byte for byte as Go's archive/tar writes c/storage 1.43's diffs (measured against ``buildah
    commit``): the mode field carries the file type bits (not for whiteouts and opaque markers: ``bare``),
    devmajor/devminor are ``0000000`` for every entry; a header USTAR can hold is USTAR (a name over 100
    bytes split into prefix and name at the last ``/`` that fits, as splitUSTARPath); else PAX, the extended
    header named ``DIR/PaxHeaders.0/BASE`` and the main header's name and link name as Go cuts them."""

    bare = False

    @classmethod
    def _create_pax_generic_header(cls, pax_headers: Any, type: bytes, encoding: str) -> bytes:  # noqa: A002
        """PAX records in key order, as Go writes them (tarfile: xattrs first, then path, linkpath, ...)."""
        header: bytes = super()._create_pax_generic_header(  # type: ignore[misc]  # private, not in typeshed
            dict(sorted(pax_headers.items())), type, encoding)
        return header

    def create_pax_header(self, info: Any, encoding: str) -> bytes:  # info: tarfile's (mutable) header dict
        split = _go_split(str(info["name"]))
        buf = b""
        if split is not None:  # USTAR if nothing else needs PAX
            buf = super().create_pax_header({**info, "prefix": split[0], "name": split[1]}, encoding)
        if len(buf) != tarfile.BLOCKSIZE:
            buf = super().create_pax_header(info, encoding)
        main = bytearray(buf[-tarfile.BLOCKSIZE:])
        mode = stat.S_IMODE(self.mode) | (0 if self.bare else _TYPE_BITS.get(self.type, 0))
        main[100:108] = b"%07o\0" % mode
        if self.type not in (tarfile.CHRTYPE, tarfile.BLKTYPE):
            main[329:345] = b"0000000\0" * 2
        if len(buf) == tarfile.BLOCKSIZE:
            return _checksummed(bytes(main))
        _go_string(main, 0, 100, str(info["name"]))  # a PAX extended header came first
        _go_string(main, 157, 100, str(info["linkname"]))
        head, _, tail = str(info["name"]).rpartition("/")
        pax_name = posixpath.normpath(posixpath.join(head + "/" if head else "", "PaxHeaders.0", tail))
        pax = bytearray(buf[:tarfile.BLOCKSIZE])
        _go_string(pax, 0, 100, pax_name)
        return _checksummed(bytes(pax)) + buf[tarfile.BLOCKSIZE:-tarfile.BLOCKSIZE] + _checksummed(bytes(main))


class _GoTarFile(tarfile.TarFile):
    """Ends the archive as Go's archive/tar does: two zero blocks, no padding to a 10240-byte record
    (write mode on a caller's file object only)."""

    closed: bool

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.fileobj.write(tarfile.NUL * (2 * tarfile.BLOCKSIZE))


class _Counting:
    """The output file object, hashing and counting what tarfile writes."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self.out.write(data)

    def tell(self) -> int:
        return self.size


def _xattrs(target: int | bytes) -> dict[bytes, bytes]:
    try:
        if isinstance(target, int):
            keys = os.listxattr(target)
            return {os.fsencode(k): os.getxattr(target, k) for k in sorted(keys)}
        keys = os.listxattr(target, follow_symlinks=False)
        return {os.fsencode(k): os.getxattr(target, k, follow_symlinks=False) for k in sorted(keys)}
    except OSError:
        return {}


class _Differ:
    """One walk; ``pending`` holds ancestor directories not yet written (written before the first change below)."""

    def __init__(self, tar: tarfile.TarFile, upper: bool, compare_content: bool) -> None:
        self.tar = tar
        self.upper = upper
        self.compare_content = compare_content
        self.pending: list[tuple[bytes, int, os.stat_result]] = []
        self.links: dict[tuple[int, int], str] = {}
        self.count = 0

    def _add(self, info: tarfile.TarInfo, fd: int | None = None) -> None:
        if fd is None:
            self.tar.addfile(info)
        else:
            with os.fdopen(os.dup(fd), "rb") as fileobj:
                self.tar.addfile(info, fileobj)
        self.count += 1

    def _flush(self) -> None:
        for rel, fd, st in self.pending:
            self._add_dir(rel, fd, st)
        self.pending.clear()

    def _info(self, rel: bytes, st: os.stat_result, xattrs: dict[bytes, bytes]) -> _GoTarInfo:
        info = _GoTarInfo(os.fsdecode(rel))
        info.mode = stat.S_IMODE(st.st_mode)
        info.uid, info.gid = st.st_uid, st.st_gid
        info.uname = info.gname = ""
        info.mtime = int(st.st_mtime)
        info.pax_headers = {
            "SCHILY.xattr." + os.fsdecode(k): v.decode("utf-8", "surrogateescape")
            for k, v in xattrs.items() if not k.startswith(_OVERLAY_XATTRS)
        }
        return info

    def _add_dir(self, rel: bytes, fd: int, st: os.stat_result) -> None:
        xattrs = _xattrs(fd)
        info = self._info(rel, st, xattrs)
        info.type = tarfile.DIRTYPE
        self._add(info)
        if self.upper and any(xattrs.get(k) == b"y" for k in _OPAQUE_KEYS):
            opaque = self._info(rel + b"/" + OPAQUE, st, {})
            opaque.mode &= 0o777
            opaque.mtime = 0  # as c/storage 1.43 (its header sets no ModTime)
            opaque.bare = True
            self._add(opaque)

    def whiteout(self, parent: bytes, name: bytes, st: os.stat_result) -> None:
        """Write ``PARENT/.wh.NAME`` (owner and time from ``st``)."""
        self._flush()
        info = self._info(_join(parent, WHITEOUT_PREFIX + name), st, {})
        info.mode = 0  # as c/storage 1.43 writes both (measured with buildah commit)
        info.bare = True
        self._add(info)

    def entry(self, dir_fd: int, rel: bytes, name: bytes, st: os.stat_result) -> None:
        """Write the non-directory ``name`` of ``dir_fd`` (at ``rel``)."""
        self._flush()
        mode = st.st_mode
        if stat.S_ISREG(mode):
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
            try:
                st = os.fstat(fd)
                info = self._info(rel, st, _xattrs(fd))
                first = self.links.get((st.st_dev, st.st_ino)) if st.st_nlink > 1 else None
                if first is not None:
                    info.type, info.linkname = tarfile.LNKTYPE, first
                    self._add(info)
                    return
                if st.st_nlink > 1:
                    self.links[(st.st_dev, st.st_ino)] = info.name
                info.size = st.st_size
                self._add(info, fd)
            finally:
                os.close(fd)
            return
        info = self._info(rel, st, _xattrs(proc_path(dir_fd, name)))
        if stat.S_ISLNK(mode):
            info.type, info.linkname = tarfile.SYMTYPE, os.fsdecode(os.readlink(name, dir_fd=dir_fd))
        elif stat.S_ISFIFO(mode):
            info.type = tarfile.FIFOTYPE
        else:
            info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        self._add(info)

    def walk(self, new_fd: int, old_fd: int | None, rel: bytes) -> None:
        """Diff directory ``new_fd`` against ``old_fd`` (None: everything under it is new)."""
        new = _listing(new_fd)
        old = _listing(old_fd) if old_fd is not None else {}
        for name in sorted(new.keys() | old.keys()):
            path = _join(rel, name)
            st = new.get(name)
            if st is None:
                self.whiteout(rel, name, os.fstat(new_fd))
            elif stat.S_ISSOCK(st.st_mode):
                continue
            elif self.upper and stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                self.whiteout(rel, name, st)
            elif stat.S_ISDIR(st.st_mode):
                self._walk_dir(new_fd, old_fd, name, path, st, old.get(name))
            elif self._changed(new_fd, old_fd, name, st, old.get(name)):
                self.entry(new_fd, path, name, st)

    def _walk_dir(self, new_fd: int, old_fd: int | None, name: bytes, path: bytes, st: os.stat_result,
                  ost: os.stat_result | None) -> None:
        fd = os.open(name, _DIR_FLAGS, dir_fd=new_fd)
        child_old = None
        try:
            if ost is not None and stat.S_ISDIR(ost.st_mode) and old_fd is not None:
                child_old = os.open(name, _DIR_FLAGS, dir_fd=old_fd)
            self.pending.append((path, fd, st))
            if child_old is None or self._meta_changed(st, ost, fd, child_old):
                self._flush()
            self.walk(fd, child_old, path)
            if self.pending and self.pending[-1][0] == path:
                self.pending.pop()
        finally:
            os.close(fd)
            if child_old is not None:
                os.close(child_old)

    def _meta_changed(self, st: os.stat_result, ost: os.stat_result | None, fd: int | bytes,
                      ofd: int | bytes) -> bool:
        if ost is None:
            return True
        keys = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_rdev)
        okeys = (stat.S_IFMT(ost.st_mode), stat.S_IMODE(ost.st_mode), ost.st_uid, ost.st_gid, ost.st_rdev)
        if keys != okeys:
            return True
        if not stat.S_ISDIR(st.st_mode) and (st.st_size, st.st_mtime_ns) != (ost.st_size, ost.st_mtime_ns):
            return True
        return _xattrs(fd) != _xattrs(ofd)

    def _changed(self, new_fd: int, old_fd: int | None, name: bytes, st: os.stat_result,
                 ost: os.stat_result | None) -> bool:
        if self.upper or old_fd is None or ost is None:
            return True
        if self._meta_changed(st, ost, proc_path(new_fd, name), proc_path(old_fd, name)):
            return True
        if stat.S_ISLNK(st.st_mode):
            return os.readlink(name, dir_fd=new_fd) != os.readlink(name, dir_fd=old_fd)
        return self.compare_content and stat.S_ISREG(st.st_mode) and not _same_content(new_fd, old_fd, name)


def _join(rel: bytes, name: bytes) -> bytes:
    return rel + b"/" + name if rel else name


def _listing(dir_fd: int) -> dict[bytes, os.stat_result]:
    return {os.fsencode(n): os.lstat(n, dir_fd=dir_fd) for n in os.listdir(dir_fd)}


def _same_content(new_fd: int, old_fd: int, name: bytes) -> bool:
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    a, b = os.open(name, flags, dir_fd=new_fd), os.open(name, flags, dir_fd=old_fd)
    try:
        while True:
            x, y = os.read(a, 1 << 20), os.read(b, 1 << 20)
            if x != y:
                return False
            if not x:
                return True
    finally:
        os.close(a)
        os.close(b)


def _run(new_dir: str | os.PathLike[str], old_dir: str | os.PathLike[str] | None, out: BinaryIO, *,
         upper: bool, compare_content: bool) -> DiffResult:
    counting = _Counting(out)
    new_fd = os.open(new_dir, _DIR_FLAGS)
    old_fd = os.open(old_dir, _DIR_FLAGS) if old_dir is not None else None
    try:
        with _GoTarFile(fileobj=counting, mode="w", format=tarfile.PAX_FORMAT,  # type: ignore[arg-type]
                        encoding="utf-8", errors="surrogateescape") as tar:
            differ = _Differ(tar, upper, compare_content)
            differ.walk(new_fd, old_fd, b"")
    finally:
        os.close(new_fd)
        if old_fd is not None:
            os.close(old_fd)
    return DiffResult("sha256:" + counting.sha.hexdigest(), counting.size, differ.count)


def diff_upper(upper_dir: str | os.PathLike[str], out: BinaryIO) -> DiffResult:
    """Write the layer tar of an overlay upper directory to ``out`` (whiteouts converted to AUFS form)."""
    return _run(upper_dir, None, out, upper=True, compare_content=False)


def diff_trees(new_dir: str | os.PathLike[str], old_dir: str | os.PathLike[str], out: BinaryIO, *,
               compare_content: bool = False) -> DiffResult:
    """Write the layer tar that turns tree ``old_dir`` into ``new_dir`` to ``out``.

    Without ``compare_content`` a regular file counts as changed when its type,
    mode, owner, size, mtime (ns) or xattrs differ (as Docker's ChangesDirs);
    with it, equal-looking files are also compared byte by byte.
    """
    return _run(new_dir, old_dir, out, upper=False, compare_content=compare_content)


def diff_new_tree(new_dir: str | os.PathLike[str], out: BinaryIO) -> DiffResult:
    """Write a tree with no parent to ``out``: every entry (no whiteouts; char devices 0/0 are devices)."""
    return _run(new_dir, None, out, upper=False, compare_content=False)
