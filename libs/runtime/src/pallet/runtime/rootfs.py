"""The container's filesystem view, set up by the container process in its mount namespace.

Order (as crun): the host's mounts are made private (or what
``linux.rootfsPropagation`` says) so nothing propagates back; the rootfs is
bound onto itself; the config's mounts are made in order, each target
resolved inside the rootfs (:mod:`pallet.runtime.paths`); a tmpfs ``/dev``
gets the standard device nodes (created with mknod when the runtime may,
bound from the host's ``/dev`` inside a user namespace) and links; then
``pivot_root`` and, in the new root, the masked paths, the read-only paths
and a read-only root.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from pallet.oci.spec.runtime import LinuxDevice, Mount
from pallet.runtime import kernel as k
from pallet.runtime.bundle import Bundle
from pallet.runtime.errors import BundleError, KernelCallFailed
from pallet.runtime.mount_options import BIND_REMOUNT_FLAGS, PROPAGATION, parse_mount_options
from pallet.runtime.paths import make_target, open_in_root, resolve_in_root


@dataclass(frozen=True)
class StandardDevice:
    path: str
    major: int
    minor: int


STANDARD_DEVICES = (
    StandardDevice("/dev/null", 1, 3), StandardDevice("/dev/zero", 1, 5), StandardDevice("/dev/full", 1, 7),
    StandardDevice("/dev/tty", 5, 0), StandardDevice("/dev/random", 1, 8), StandardDevice("/dev/urandom", 1, 9),
)
DEV_LINKS = (
    ("/dev/fd", "/proc/self/fd"), ("/dev/stdin", "/proc/self/fd/0"), ("/dev/stdout", "/proc/self/fd/1"),
    ("/dev/stderr", "/proc/self/fd/2"), ("/dev/core", "/proc/kcore"), ("/dev/ptmx", "pts/ptmx"),
)

# statvfs f_flag bits -> the mount flags a bind remount must keep (locked inside a user namespace)
_KEPT_FLAGS = (
    (os.ST_RDONLY, k.MS_RDONLY), (os.ST_NOSUID, k.MS_NOSUID), (os.ST_NODEV, k.MS_NODEV),
    (os.ST_NOEXEC, k.MS_NOEXEC), (os.ST_NOATIME, k.MS_NOATIME), (os.ST_NODIRATIME, k.MS_NODIRATIME),
    (os.ST_RELATIME, k.MS_RELATIME),
)


def current_mount_flags(path: str) -> int:
    flags = os.statvfs(path).f_flag
    return sum(mount_flag for st_flag, mount_flag in _KEPT_FLAGS if flags & st_flag)


def remount_bind(path: str, flags: int) -> None:
    """Change the flags of the bind mount at ``path``, keeping the atime ones it has."""
    kept = current_mount_flags(path) & (k.MS_NOATIME | k.MS_NODIRATIME | k.MS_RELATIME)
    if flags & k.MS_STRICTATIME:
        kept &= ~k.MS_RELATIME
    k.mount(None, path, None, k.MS_BIND | k.MS_REMOUNT | flags | kept)


def remount_bind_recursive(path: str, flags: int) -> None:
    """:func:`remount_bind` of ``path`` and of every mount below it: the hierarchies of a bound
    ``/sys/fs/cgroup`` are mounts of their own, and a read-only top alone would leave them writable."""
    remount_bind(path, flags)
    for point in mounts_below(path):
        remount_bind(point, flags)


def mounts_below(path: str, mountinfo: str = "/proc/self/mountinfo") -> list[str]:
    """The mount points strictly below ``path`` in this mount namespace, parents first (``path`` may go
    through the rootfs's ``/proc/self/fd/N``: mountinfo has the real path)."""
    prefix = os.path.realpath(path).rstrip("/") + "/"
    with open(mountinfo, encoding="utf-8") as stream:
        points = [_unescape(line.split()[4]) for line in stream if line.strip()]
    return sorted({point for point in points if point.startswith(prefix)}, key=lambda point: (point.count("/"), point))


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    for code in ("040", "011", "012", "134"):
        field = field.replace("\\" + code, chr(int(code, 8)))
    return field


def bind_rootfs(bundle: Bundle) -> int:
    """Stop propagation to the host, bind the rootfs onto itself and return an ``O_PATH``
    descriptor of that bind mount. Call while the process still has the runtime's
    credentials (a container user may not be able to walk to the bundle)."""
    linux = bundle.config.linux
    propagation = (linux.rootfs_propagation if linux else None) or "rprivate"
    first = PROPAGATION[propagation] if "shared" not in propagation else k.MS_SLAVE | k.MS_REC
    k.mount(None, "/", None, first)
    rootfs = str(bundle.rootfs)
    k.mount(rootfs, rootfs, None, k.MS_BIND | k.MS_REC)
    if "shared" in propagation:
        k.mount(None, rootfs, None, PROPAGATION[propagation])
    return os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


@dataclass(frozen=True)
class RootfsBuilder:
    """Builds the rootfs of ``bundle`` through ``root_fd`` (from :func:`bind_rootfs`);
    ``in_user_namespace`` selects bind-mounted device nodes."""

    bundle: Bundle
    in_user_namespace: bool
    root_fd: int

    @property
    def root(self) -> Path:
        """The rootfs reached through its descriptor: no search permission is needed on the
        directories above it."""
        return Path(f"/proc/self/fd/{self.root_fd}")

    def prepare(self) -> None:
        """Everything before pivot_root after :func:`bind_rootfs`: the mounts and /dev."""
        linux = self.bundle.config.linux
        dev_is_tmpfs = False
        for mount in self.bundle.config.mounts or ():
            self.mount(mount)
            if os.path.normpath(mount.destination) == "/dev":
                dev_is_tmpfs = not parse_mount_options(mount.options, mount.type).bind
        if dev_is_tmpfs:
            self.populate_dev()
        for device in (linux.devices if linux else None) or ():
            self.make_device(device)

    def mount(self, mount: Mount) -> None:
        options = parse_mount_options(mount.options, mount.type)
        try:
            if options.bind:
                self._bind(mount, options.flags, options.recursive)
            elif mount.type == "cgroup":
                self._cgroup(mount, options.flags)
            else:
                self._new_filesystem(mount, options.flags, options.data)
            target = str(resolve_in_root(self.root, mount.destination))
            for propagation in options.propagation:
                k.mount(None, target, None, propagation)
        except KernelCallFailed as error:
            raise KernelCallFailed(error.call, error.errno, mount.destination, f"type {mount.type}") from None

    def _target_fd(self, destination: str, is_file: bool) -> tuple[int, str]:
        resolved = make_target(self.root, destination, is_file=is_file)
        fd = open_in_root(self.bundle.rootfs, resolved, destination)
        return fd, str(resolved)

    def _bind(self, mount: Mount, flags: int, recursive: bool) -> None:
        if not mount.source:
            raise BundleError(f"mount {mount.destination}: a bind mount needs a source")
        source = mount.source if os.path.isabs(mount.source) else str(self.bundle.path / mount.source)
        if not os.path.exists(source):
            raise BundleError(f"mount {mount.destination}: source {source}: no such file or directory")
        fd, target = self._target_fd(mount.destination, is_file=not os.path.isdir(source))
        try:
            k.mount(source, f"/proc/self/fd/{fd}", None, k.MS_BIND | (k.MS_REC if recursive else 0))
        finally:
            os.close(fd)
        if flags & BIND_REMOUNT_FLAGS:
            remount_bind(target, flags & BIND_REMOUNT_FLAGS)

    def _new_filesystem(self, mount: Mount, flags: int, data: str) -> None:
        fd, target = self._target_fd(mount.destination, is_file=False)
        try:
            # read-only is a property of this mount, not of the superblock (as crun does it)
            k.mount(mount.source or mount.type, f"/proc/self/fd/{fd}", mount.type, flags & ~k.MS_RDONLY, data or None)
            if flags & k.MS_RDONLY:
                remount_bind(target, flags & BIND_REMOUNT_FLAGS)
        except KernelCallFailed as error:
            if mount.type != "sysfs" or error.errno != errno.EPERM:
                raise
            # a user namespace that does not own the network namespace: bind the host's /sys
            k.mount("/sys", f"/proc/self/fd/{fd}", None, k.MS_BIND | k.MS_REC)
            remount_bind(target, flags & BIND_REMOUNT_FLAGS)
        finally:
            os.close(fd)

    def _cgroup(self, mount: Mount, flags: int) -> None:
        """The host's cgroup hierarchies, bound (the container's own cgroups come with cgroup support)."""
        fd, target = self._target_fd(mount.destination, is_file=False)
        try:
            k.mount("/sys/fs/cgroup", f"/proc/self/fd/{fd}", None, k.MS_BIND | k.MS_REC)
        finally:
            os.close(fd)
        remount_bind_recursive(target, flags & BIND_REMOUNT_FLAGS)

    def populate_dev(self) -> None:
        for device in STANDARD_DEVICES:
            self._device_node(device.path, stat.S_IFCHR, device.major, device.minor, 0o666, 0, 0)
        for link, target in DEV_LINKS:
            path = resolve_in_root(self.root, link)
            if not os.path.lexists(path):
                os.symlink(target, path)

    def make_device(self, device: LinuxDevice) -> None:
        kind = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}[device.type]
        mode = 0o666 if device.file_mode is None else device.file_mode & 0o7777
        self._device_node(device.path, kind, device.major, device.minor, mode, device.uid or 0, device.gid or 0)

    def _device_node(self, path: str, kind: int, major: int, minor: int, mode: int, uid: int, gid: int) -> None:
        if self.in_user_namespace and kind != stat.S_IFIFO:
            fd, target = self._target_fd(path, is_file=True)
            try:
                k.mount(path, f"/proc/self/fd/{fd}", None, k.MS_BIND)
            finally:
                os.close(fd)
            remount_bind(target, k.MS_NOSUID | k.MS_NOEXEC)
            return
        resolved = resolve_in_root(self.root, path)
        resolved.parent.mkdir(parents=True, exist_ok=True)
        if os.path.lexists(resolved):
            os.unlink(resolved)
        try:
            os.mknod(resolved, kind | mode, os.makedev(major, minor))
        except OSError as error:
            raise KernelCallFailed("mknod", error.errno or 0, path) from None
        os.chmod(resolved, mode)
        os.chown(resolved, uid, gid)

    def pivot(self) -> None:
        """Make the rootfs ``/``; the old root is detached without propagating to the host."""
        os.chdir(self.root)
        k.pivot_root(".", ".")
        k.mount(None, ".", None, k.MS_SLAVE | k.MS_REC)
        k.umount2(".", k.MNT_DETACH)
        os.chdir("/")


def mask_paths(paths: tuple[str, ...], host_null_tree: int) -> None:
    """After pivot_root: an empty read-only tmpfs over masked directories, the host's
    ``/dev/null`` over masked files (``host_null_tree``: its mount, cloned before the pivot,
    attached over the first masked file; the others bind that one)."""
    masked_file: str | None = None
    for path in paths:
        try:
            is_dir = os.path.isdir(path)
            if not os.path.lexists(path):
                continue
            if is_dir:
                k.mount("tmpfs", path, "tmpfs", 0, "size=0k")
            elif masked_file is None:
                clone = k.open_tree_clone("", host_null_tree)
                try:
                    k.move_mount_fd(clone, path)
                finally:
                    os.close(clone)
                masked_file = path
            else:
                k.mount(masked_file, path, None, k.MS_BIND)
            remount_bind(path, k.MS_RDONLY)
        except KernelCallFailed as error:
            if error.errno not in (errno.ENOENT, errno.EACCES):
                raise KernelCallFailed(error.call, error.errno, path, "masked path") from None


def make_readonly(paths: tuple[str, ...]) -> None:
    """After pivot_root: bind each existing path onto itself and remount it read-only."""
    for path in paths:
        if not os.path.lexists(path):
            continue
        k.mount(path, path, None, k.MS_BIND | k.MS_REC)
        remount_bind(path, k.MS_RDONLY | (current_mount_flags(path) & (k.MS_NOSUID | k.MS_NODEV | k.MS_NOEXEC)))


def make_root_readonly() -> None:
    remount_bind("/", k.MS_RDONLY | (current_mount_flags("/") & (k.MS_NOSUID | k.MS_NODEV | k.MS_NOEXEC)))
