"""The overlay graph driver, laid out exactly as containers/storage 1.43 lays it out.

``<home>`` is ``<graphroot>/overlay``::

    <home>/.has-mount-program   "false" (native kernel overlay; "true" pins a store to fuse-overlayfs: refused)
    <home>/l/<short>            symlink -> ../<id>/diff (26 base32 chars; the dir is 0755)
    <home>/<id>/                0700
        diff/                   the layer's contents; 0555 for a base layer, else the parent's diff mode
        link                    the 26-char short name, no newline (0644)
        lower                   children only: l/<parent short>[:<parent's lower>], nearest first (0644)
        empty/                  base layers only: the lowerdir when the layer is mounted alone (0700)
        work/ merged/           0700, for every layer

Mounting (containers/storage ``get()``): ``lowerdir=<home>/l/<short>:...`` (the
short links, unresolved), ``upperdir=<id>/diff,workdir=<id>/work``, then the
configured options, ``userxattr`` when rootless (the mount is made inside the
caller's user namespace) and ``context="<label>"`` for a mount label. When
that string does not fit in a page, the same paths relative to ``<home>`` are
used and the mount is made from a child whose cwd is ``<home>``. Mount
counts are the Store's job: :meth:`OverlayDriver.mount` of a layer already
mounted returns its path without mounting again, and :meth:`unmount` always
unmounts (MNT_DETACH) and removes ``merged/``, as containers/storage does.
Before the first mount the home is made a private bind mount of itself, as
containers/storage's init does; "mounted" means mounted and visible at the
path (a mount that a later bind of the home hides does not count).

Not done: fuse-overlayfs (``mount_program``), ``diffN`` extra lowers, idmapped
mounts, composefs, the run-root feature-probe cache.
"""

from __future__ import annotations

import base64
import errno
import os
import re
import stat
from collections.abc import Sequence

from pallet.storage.drivers import _mount
from pallet.storage.drivers._fs import check_id, make_dir, remove_tree, write_file
from pallet.storage.drivers.errors import (
    DriverError, LayerBusy, LayerExists, LayerMissing, MaxDepthExceeded, MountFailed, UnsupportedStore,
)
from pallet.storage.tarengine import WhiteoutFormat

LINK_DIR = "l"
LINK_LENGTH = 26
MAX_DEPTH = 128
BASE_DIFF_MODE = 0o555
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
_SHORT_NAME = re.compile(r"[A-Z2-7]{26}")


def new_short_name() -> str:
    """A fresh short link name: 17 random bytes, base32 (A-Z2-7), cut to 26 characters."""
    return base64.b32encode(os.urandom(17)).decode("ascii")[:LINK_LENGTH]


class OverlayDriver:
    """Native kernel overlay, rootful (``trusted.overlay.*``) or rootless (``userxattr``).

    ``home`` is ``<graphroot>/overlay``; it, ``l/`` and ``.has-mount-program``
    are made on construction. ``rootless`` picks the ``user.overlay.*``
    whiteout form and adds ``userxattr`` to mounts (construct it inside the
    user namespace that writes the store). ``mount_options`` are storage.conf's
    ``mountopt`` entries. Raises UnsupportedStore for a store pinned to
    fuse-overlayfs.
    """

    name = "overlay"

    def __init__(self, home: str | os.PathLike[str], *, rootless: bool = False,
                 mount_options: Sequence[str] = ()) -> None:
        self.home = os.path.abspath(os.fspath(home))
        self.rootless = rootless
        self.mount_options = tuple(mount_options)
        self.whiteout_form = WhiteoutFormat.OVERLAY_USERXATTR if rootless else WhiteoutFormat.OVERLAY
        self._init_home()

    def _init_home(self) -> None:
        """Make the home (0700), ``l/`` (0755) and the ``.has-mount-program`` flag ("false") if missing."""
        os.makedirs(self.home, mode=0o700, exist_ok=True)
        make_dir(os.path.join(self.home, LINK_DIR), 0o755, exist_ok=True)
        flag = os.path.join(self.home, ".has-mount-program")
        try:
            with open(flag, encoding="ascii") as file:
                pinned = file.read().strip() == "true"
        except FileNotFoundError:
            write_file(flag, "false", 0o600)
            return
        if pinned:
            raise UnsupportedStore("", f"{flag} says the store needs fuse-overlayfs, which pallet does not run")

    # ------------------------------------------------------------ paths

    def _dir(self, layer_id: str) -> str:
        return os.path.join(self.home, check_id(layer_id))

    def layer_dir(self, layer_id: str) -> str:
        """``<home>/<id>/diff``: where the layer's tar is applied (and a container's upperdir)."""
        return os.path.join(self._dir(layer_id), "diff")

    def exists(self, layer_id: str) -> bool:
        """Whether ``<home>/<id>`` exists."""
        return os.path.isdir(self._dir(layer_id))

    def short_name(self, layer_id: str) -> str:
        """The layer's ``link`` file (its 26-char short name); LayerMissing if it has none, DriverError if bad."""
        try:
            with open(os.path.join(self._dir(layer_id), "link"), encoding="ascii", errors="replace") as file:
                short = file.read().strip()
        except FileNotFoundError as exc:
            raise LayerMissing(layer_id, "no such overlay layer (no link file)") from exc
        if not _SHORT_NAME.fullmatch(short):
            raise DriverError(layer_id, "its link file does not hold a 26-char short name")
        return short

    def lowers(self, layer_id: str) -> list[str]:
        """The layer's ``lower`` entries (``l/<short>``, nearest parent first); [] for a base layer.

        Any other entry is a DriverError: it would end up in mount options.
        """
        try:
            with open(os.path.join(self._dir(layer_id), "lower"), encoding="ascii", errors="replace") as file:
                text = file.read().strip()
        except FileNotFoundError:
            return []
        entries = [entry for entry in text.split(":") if entry]
        for entry in entries:
            head, _, short = entry.partition("/")
            if head != LINK_DIR or not _SHORT_NAME.fullmatch(short):
                raise DriverError(layer_id, "its lower file holds an entry that is not l/<short name>")
        return entries

    # ------------------------------------------------------------ create / remove

    def create(self, layer_id: str, parent: str | None = None) -> None:
        """Make the layer's directory as containers/storage does; LayerExists, LayerMissing, MaxDepthExceeded.

        The parent's ``lower`` is read before anything is made, so a refused
        create leaves nothing behind. A failure half-way removes what was made.
        """
        layer = self._dir(layer_id)
        lower = self._lower_for(parent) if parent else None
        diff_mode = stat.S_IMODE(os.stat(self.layer_dir(parent)).st_mode) if parent else BASE_DIFF_MODE
        try:
            os.mkdir(layer, 0o700)
        except FileExistsError as exc:
            raise LayerExists(layer_id, "an overlay layer directory with this ID exists already") from exc
        try:
            self._populate(layer_id, layer, diff_mode, lower)
        except BaseException:
            self._remove_link(layer)
            remove_tree(layer)
            raise

    def _lower_for(self, parent: str) -> str:
        """The ``lower`` text of a child of ``parent``: ``l/<parent link>[:<parent lower>]``."""
        entries = [f"{LINK_DIR}/{self.short_name(parent)}", *self.lowers(parent)]
        if len(entries) > MAX_DEPTH:
            raise MaxDepthExceeded(parent, f"a child would have {len(entries)} lower layers (max {MAX_DEPTH})")
        return ":".join(entries)

    def _populate(self, layer_id: str, layer: str, diff_mode: int, lower: str | None) -> None:
        """diff/, empty/ (base), the short link and ``link``, work/, merged/, ``lower`` (child)."""
        make_dir(os.path.join(layer, "diff"), diff_mode)
        if lower is None:
            make_dir(os.path.join(layer, "empty"), 0o700)
        short = self._make_short_link(layer_id)
        write_file(os.path.join(layer, "link"), short, 0o644)
        make_dir(os.path.join(layer, "work"), 0o700)
        make_dir(os.path.join(layer, "merged"), 0o700)
        if lower is not None:
            write_file(os.path.join(layer, "lower"), lower, 0o644)

    def _make_short_link(self, layer_id: str) -> str:
        """Create ``l/<short>`` -> ``../<id>/diff`` under a fresh name (retried on a collision)."""
        while True:
            short = new_short_name()
            try:
                os.symlink(f"../{layer_id}/diff", os.path.join(self.home, LINK_DIR, short))
            except FileExistsError:
                continue
            return short

    def _remove_link(self, layer: str) -> None:
        """Remove ``l/<short>`` -> ``../<id>/diff`` for this layer.

        The name comes from the ``link`` file; if that is missing or bad, every
        entry of ``l/`` pointing at this layer is removed instead.
        """
        target = f"../{os.path.basename(layer)}/diff"
        links = os.path.join(self.home, LINK_DIR)
        try:
            with open(os.path.join(layer, "link"), encoding="ascii", errors="replace") as file:
                short = file.read().strip()
        except FileNotFoundError:
            short = ""
        names = [short] if _SHORT_NAME.fullmatch(short) else sorted(os.listdir(links))
        for name in names:
            path = os.path.join(links, name)
            try:
                if os.readlink(path) == target:
                    os.unlink(path)
            except OSError as exc:
                if exc.errno not in (errno.ENOENT, errno.EINVAL):
                    raise

    def remove(self, layer_id: str) -> None:
        """Remove the short link and the layer's directory; LayerBusy while ``merged/`` is mounted.

        Removing a layer that does not exist is not an error (as containers/storage).
        """
        layer = self._dir(layer_id)
        if _mount.is_mounted_here(os.path.join(layer, "merged")):
            raise LayerBusy(layer_id, "its merged directory is still mounted")
        self._remove_link(layer)
        remove_tree(layer)

    # ------------------------------------------------------------ mount

    def mount_data(self, layer_id: str, mount_label: str | None = None, *, relative: bool = False,
                   readonly: bool = False, options: Sequence[str] | None = None) -> str:
        """The overlay mount option string for the layer (absolute paths, or relative to the home).

        Read-write: ``lowerdir=<lowers>,upperdir=<id>/diff,workdir=<id>/work``; read-only (as
        ``podman image mount``): ``lowerdir=<id>/diff:<lowers>``. ``<lowers>`` are the ``l/`` short
        links, or ``<id>/empty`` for a base layer. Then the data words (not the mount(2) flags such
        as ``nodev``) of ``options`` (a container's MountOpts), else of the configured mount options.
        """
        base = "" if relative else self.home + "/"
        own = f"{base}{check_id(layer_id)}"
        lowers = [base + entry for entry in self.lowers(layer_id)] or [f"{own}/empty"]
        if readonly:
            words = [f"lowerdir={own}/diff:{':'.join(lowers)}"]
        else:
            words = [f"lowerdir={':'.join(lowers)}", f"upperdir={own}/diff", f"workdir={own}/work"]
        words += self._flags_and_data(options)[1]
        if self.rootless:
            words.append("userxattr")
        if mount_label:
            words.append(f'context="{mount_label}"')
        return ",".join(words)

    def _flags_and_data(self, options: Sequence[str] | None) -> tuple[int, list[str]]:
        """mount(2) flags and data words of ``options`` (None: the configured mount options)."""
        return _mount.parse_options(list(self.mount_options if options is None else options))

    def mount(self, layer_id: str, mount_label: str | None = None, *, readonly: bool = False,
              options: Sequence[str] | None = None) -> str:
        """Mount the layer on ``<id>/merged`` and return that path.

        Read-write (a container): upper = its diff. ``readonly`` (an image, as
        ``podman image mount``): its diff is the top lower, MS_RDONLY, no upper.
        ``options`` (a container's MountOpts) replace the configured mount
        options; words such as ``nodev`` or ``ro`` become mount(2) flags.

        Already mounted: the path is returned, nothing is mounted again (the
        Store counts). Needs CAP_SYS_ADMIN in the owner of the mount namespace
        (root, or the rootless user inside its user namespace). MountFailed.
        """
        if not self.exists(layer_id):
            raise LayerMissing(layer_id, "no such overlay layer")
        merged = os.path.join(self._dir(layer_id), "merged")
        make_dir(merged, 0o700, exist_ok=True)
        self._private_home()
        if _mount.is_mounted_here(merged):
            return merged
        data = self.mount_data(layer_id, mount_label, readonly=readonly, options=options)
        flags = (_mount.MS_RDONLY if readonly else 0) | self._flags_and_data(options)[0]
        try:
            if len(data) < _PAGE_SIZE:
                _mount.mount("overlay", merged, "overlay", data, flags)
            else:
                relative = self.mount_data(layer_id, mount_label, relative=True, readonly=readonly, options=options)
                _mount.mount_from(self.home, "overlay", f"{layer_id}/merged", "overlay", relative, flags)
        except OSError as exc:
            raise MountFailed(layer_id, f"mount overlay on {merged}: {exc.strerror}", exc.errno or 0) from exc
        return merged

    def _private_home(self) -> None:
        """Make the home a private mount of itself, as containers/storage's overlay init does (no
        ``skip_mount_home``): bound onto itself when it is not a mount point yet, then MS_PRIVATE.

        Done before our first mount, so that a c/storage process started
        later finds the home mounted already and never hides our mounts
        under a new bind mount of it (idempotent). MountFailed.
        """
        try:
            if not _mount.is_mountpoint(self.home):
                _mount.mount(self.home, self.home, "none", "", _mount.MS_BIND)
            _mount.mount("none", self.home, "none", "", _mount.MS_PRIVATE)
        except OSError as exc:
            raise MountFailed("", f"make {self.home} a private mount: {exc.strerror}", exc.errno or 0) from exc

    def unmount(self, layer_id: str) -> None:
        """Unmount ``<id>/merged`` (MNT_DETACH) if mounted, then remove that directory; MountFailed."""
        merged = os.path.join(self._dir(layer_id), "merged")
        if _mount.is_mounted_here(merged):
            try:
                _mount.umount(merged)
            except OSError as exc:
                raise MountFailed(layer_id, f"unmount {merged}: {exc.strerror}", exc.errno or 0) from exc
        try:
            os.rmdir(merged)
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.EBUSY, errno.ENOTEMPTY):
                raise
        self._release_home()

    def _release_home(self) -> None:
        """Undo the home's bind mount once nothing is mounted below it, as c/storage's Cleanup (Shutdown
        with no layer mounted) does; anything still mounted below keeps it. MountFailed."""
        if _mount.mounted_below(self.home) or not _mount.is_mountpoint(self.home):
            return
        try:
            _mount.umount(self.home)
        except OSError as exc:
            raise MountFailed("", f"unmount {self.home}: {exc.strerror}", exc.errno or 0) from exc

    def metadata(self, layer_id: str) -> dict[str, str]:
        """``podman inspect``'s GraphDriver.Data: WorkDir, MergedDir, UpperDir and (children) LowerDir.

        LowerDir is the parents' diff directories, resolved from the short links, joined by ``:``.
        """
        layer = self._dir(layer_id)
        if not self.exists(layer_id):
            raise LayerMissing(layer_id, "no such overlay layer")
        data = {"WorkDir": f"{layer}/work", "MergedDir": f"{layer}/merged", "UpperDir": f"{layer}/diff"}
        resolved = [self._resolve(entry) for entry in self.lowers(layer_id)]
        if resolved:
            data["LowerDir"] = ":".join(resolved)
        return data

    def _resolve(self, entry: str) -> str:
        """``l/<short>`` -> ``<home>/<id>/diff`` (through the symlink's text, never followed)."""
        target = os.readlink(os.path.join(self.home, entry))
        return os.path.normpath(os.path.join(self.home, LINK_DIR, target))
