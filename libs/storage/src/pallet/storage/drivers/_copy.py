"""A full copy of a layer tree, as containers/storage's DirCopy makes it for vfs.

Contract of :func:`copy_tree`: every entry of ``src`` is recreated under
``dst`` (which exists) with its type, contents, owner, mode (setuid, setgid and
sticky included), xattrs and times (ns); hard links within ``src`` stay hard
links; symlinks are copied, never followed; device nodes, fifos and sockets
are made with mknod (device nodes need privilege). ``dst`` itself gets
``src``'s owner, mode, xattrs and times. Directory times are set after their
contents. Walking is by directory fds (openat with O_NOFOLLOW), so a symlink
in the source can never lead the copy outside either tree.
"""

from __future__ import annotations

import os
import stat

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 1 << 30


def _proc(dir_fd: int, name: str) -> str:
    return f"/proc/self/fd/{dir_fd}/{name}"


def _copy_xattrs(src_dir: int, dst_dir: int, name: str) -> None:
    """Copy every xattr of ``name`` (not followed) from ``src_dir`` to ``dst_dir``."""
    source, target = _proc(src_dir, name), _proc(dst_dir, name)
    for key in os.listxattr(source, follow_symlinks=False):
        os.setxattr(target, key, os.getxattr(source, key, follow_symlinks=False), follow_symlinks=False)


def _copy_meta(st: os.stat_result, src_dir: int, dst_dir: int, name: str) -> None:
    """Owner, then mode (chown clears setuid), then xattrs (chown clears capabilities), then times."""
    os.chown(name, st.st_uid, st.st_gid, dir_fd=dst_dir, follow_symlinks=False)
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(_proc(dst_dir, name), stat.S_IMODE(st.st_mode))
    _copy_xattrs(src_dir, dst_dir, name)
    os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dst_dir, follow_symlinks=False)


def _copy_data(src_dir: int, dst_dir: int, name: str) -> None:
    """The contents of regular file ``name`` (copy_file_range, falling back to read/write)."""
    src = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src_dir)
    try:
        dst = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                      dir_fd=dst_dir)
        try:
            _pump(src, dst)
        finally:
            os.close(dst)
    finally:
        os.close(src)


def _pump(src: int, dst: int) -> None:
    """Copy ``src`` to ``dst`` to the end (in-kernel where the filesystem allows)."""
    try:
        while os.copy_file_range(src, dst, _CHUNK):
            pass
        return
    except OSError:
        os.lseek(src, 0, os.SEEK_SET)
        os.lseek(dst, 0, os.SEEK_SET)
        os.ftruncate(dst, 0)
    while chunk := os.read(src, 1 << 20):
        os.write(dst, chunk)


class _Copier:
    """One copy: the destination root fd and the hard links seen ((dev, ino) -> path under dst)."""

    def __init__(self, dst_root: int) -> None:
        self.dst_root = dst_root
        self.links: dict[tuple[int, int], str] = {}

    def copy_dir(self, src_dir: int, dst_dir: int, rel: str) -> None:
        """Copy the children of ``src_dir`` into ``dst_dir`` (``rel`` is its path under the root)."""
        for entry in sorted(os.listdir(src_dir)):
            st = os.lstat(entry, dir_fd=src_dir)
            path = f"{rel}/{entry}" if rel else entry
            if stat.S_ISDIR(st.st_mode):
                self._copy_subdir(src_dir, dst_dir, entry, path, st)
            elif st.st_nlink > 1 and (st.st_dev, st.st_ino) in self.links:
                os.link(self.links[(st.st_dev, st.st_ino)], entry, src_dir_fd=self.dst_root, dst_dir_fd=dst_dir,
                        follow_symlinks=False)
            else:
                self._copy_leaf(src_dir, dst_dir, entry, st)
                if st.st_nlink > 1:
                    self.links[(st.st_dev, st.st_ino)] = path

    def _copy_subdir(self, src_dir: int, dst_dir: int, name: str, path: str, st: os.stat_result) -> None:
        os.mkdir(name, 0o700, dir_fd=dst_dir)
        src = os.open(name, _DIR_FLAGS, dir_fd=src_dir)
        try:
            dst = os.open(name, _DIR_FLAGS, dir_fd=dst_dir)
            try:
                self.copy_dir(src, dst, path)
            finally:
                os.close(dst)
        finally:
            os.close(src)
        _copy_meta(st, src_dir, dst_dir, name)

    @staticmethod
    def _copy_leaf(src_dir: int, dst_dir: int, name: str, st: os.stat_result) -> None:
        kind = stat.S_IFMT(st.st_mode)
        if kind == stat.S_IFREG:
            _copy_data(src_dir, dst_dir, name)
        elif kind == stat.S_IFLNK:
            os.symlink(os.readlink(name, dir_fd=src_dir), name, dir_fd=dst_dir)
        else:
            os.mknod(name, kind | 0o600, st.st_rdev, dir_fd=dst_dir)
        _copy_meta(st, src_dir, dst_dir, name)


def copy_tree(src: str, dst: str) -> None:
    """Copy the tree at ``src`` into the existing directory ``dst`` (see the module contract)."""
    src_fd = os.open(src, _DIR_FLAGS)
    try:
        dst_fd = os.open(dst, _DIR_FLAGS)
        try:
            _Copier(dst_fd).copy_dir(src_fd, dst_fd, "")
            st = os.fstat(src_fd)
            os.fchown(dst_fd, st.st_uid, st.st_gid)
            os.fchmod(dst_fd, stat.S_IMODE(st.st_mode))
            for key in os.listxattr(src_fd):
                os.setxattr(dst_fd, key, os.getxattr(src_fd, key))
            os.utime(dst_fd, ns=(st.st_atime_ns, st.st_mtime_ns))
        finally:
            os.close(dst_fd)
    finally:
        os.close(src_fd)
