"""The vfs graph driver: ``<graphroot>/vfs/dir/<id>`` is a complete copy of the parent plus the layer.

As containers/storage 1.43's vfs driver: ``vfs/`` and ``vfs/dir/`` are 0700;
a base layer's directory is 0555, a child's starts as a full copy of its
parent (:func:`pallet.storage.drivers._copy.copy_tree`: owners, modes,
xattrs, hard links, device nodes, times, the root dir's own metadata
included). Whiteouts in a layer tar are applied as deletions
(``WhiteoutFormat.VFS``). There is no ``l/``, ``link``, ``lower``, work or
merged; "mounting" returns the directory and nothing is mounted.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from pallet.storage.drivers._copy import copy_tree
from pallet.storage.drivers._fs import check_id, make_dir, remove_tree
from pallet.storage.drivers.errors import LayerExists, LayerMissing, UnsupportedStore
from pallet.storage.tarengine import WhiteoutFormat

BASE_MODE = 0o555


class VfsDriver:
    """Full copies per layer. ``home`` is ``<graphroot>/vfs`` (made, with ``dir/``, on construction)."""

    name = "vfs"
    whiteout_form = WhiteoutFormat.VFS

    def __init__(self, home: str | os.PathLike[str]) -> None:
        self.home = os.path.abspath(os.fspath(home))
        os.makedirs(self.home, mode=0o700, exist_ok=True)
        make_dir(os.path.join(self.home, "dir"), 0o700, exist_ok=True)

    def layer_dir(self, layer_id: str) -> str:
        """``<home>/dir/<id>``: the layer's full tree, where its tar is applied."""
        return os.path.join(self.home, "dir", check_id(layer_id))

    def exists(self, layer_id: str) -> bool:
        """Whether the layer's directory exists."""
        return os.path.isdir(self.layer_dir(layer_id))

    def create(self, layer_id: str, parent: str | None = None) -> None:
        """Make the layer's directory: empty (0555) for a base layer, else a full copy of ``parent``.

        LayerExists, LayerMissing (parent). A failed copy removes the new directory.
        """
        path = self.layer_dir(layer_id)
        if parent and not self.exists(parent):
            raise LayerMissing(parent, "the parent layer does not exist")
        try:
            make_dir(path, BASE_MODE)
        except FileExistsError as exc:
            raise LayerExists(layer_id, "a vfs layer directory with this ID exists already") from exc
        if not parent:
            return
        try:
            copy_tree(self.layer_dir(parent), path)
        except BaseException:
            remove_tree(path)
            raise

    def remove(self, layer_id: str) -> None:
        """Remove the layer's directory (a missing one is not an error)."""
        remove_tree(self.layer_dir(layer_id))

    def mount(self, layer_id: str, mount_label: str | None = None, *, readonly: bool = False,
              options: Sequence[str] | None = None) -> str:
        """The layer's directory (nothing is mounted; label and ``readonly`` are ignored, as containers/storage does).

        ``options`` other than ``ro``: UnsupportedStore ("vfs driver does not support mount options", as 1.43).
        """
        if any(option != "ro" for option in options or ()):
            raise UnsupportedStore(layer_id, "vfs driver does not support mount options")
        if not self.exists(layer_id):
            raise LayerMissing(layer_id, "no such vfs layer")
        return self.layer_dir(layer_id)

    def unmount(self, layer_id: str) -> None:
        """Nothing to do (checks the ID)."""
        check_id(layer_id)

    def metadata(self, layer_id: str) -> dict[str, str]:
        """Empty, as containers/storage's vfs Metadata (podman shows no GraphDriver.Data for vfs)."""
        if not self.exists(layer_id):
            raise LayerMissing(layer_id, "no such vfs layer")
        return {}
