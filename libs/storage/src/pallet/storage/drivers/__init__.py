"""The graph drivers: where layer trees live on disk, and how a layer is mounted.

    Driver                      the protocol the Store uses (below)
    OverlayDriver (overlay.py)  native kernel overlay, containers/storage 1.43's layout; rootful or rootless
    VfsDriver (vfs.py)          a full copy per layer
    new_driver(name, graphroot) the driver named as storage.conf names it ("overlay2" is "overlay")

A driver keeps no records and no mount counts: layers.json and
mountpoints.json, their locks and the ``incomplete`` protocol are the Store's.
The Store calls ``create``, applies the layer tar into ``layer_dir(id)`` with
``tarengine.apply_layer(..., ApplyOptions(whiteouts=driver.whiteout_form))``,
and calls ``remove`` to undo. Errors: :mod:`pallet.storage.drivers.errors`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Protocol

from pallet.storage.drivers.errors import UnsupportedStore
from pallet.storage.drivers.overlay import OverlayDriver
from pallet.storage.drivers.vfs import VfsDriver
from pallet.storage.tarengine import WhiteoutFormat


class Driver(Protocol):
    """A graph driver. IDs are 64 lowercase hex digits (anything else: DriverError, never a path).

    - ``create(id, parent)``: make the layer's directory (a child of ``parent``);
      LayerExists, LayerMissing (parent). Not atomic: the Store holds the layer
      ``incomplete`` and calls ``remove`` on failure.
    - ``remove(id)``: delete everything of the layer; a missing layer is fine.
    - ``layer_dir(id)``: where the layer's diff is applied (overlay ``diff/``, vfs the full tree).
    - ``whiteout_form``: how ``apply_layer`` writes whiteouts for this driver.
    - ``mount(id, mount_label, readonly=False, options=None)``: the path of the layer's root filesystem, mounted
      if needed (``readonly``: an image mount; ``options``: a container's MountOpts, replacing the
      configured ones); mounting what is mounted returns the path (the Store counts).
    - ``unmount(id)``: undo ``mount`` (no-op when not mounted).
    - ``exists(id)``, ``metadata(id)`` (podman's GraphDriver.Data).
    """

    @property
    def name(self) -> str: ...

    @property
    def whiteout_form(self) -> WhiteoutFormat: ...

    def create(self, layer_id: str, parent: str | None = None) -> None: ...

    def remove(self, layer_id: str) -> None: ...

    def layer_dir(self, layer_id: str) -> str: ...

    def mount(self, layer_id: str, mount_label: str | None = None, *, readonly: bool = False,
              options: Sequence[str] | None = None) -> str: ...

    def unmount(self, layer_id: str) -> None: ...

    def exists(self, layer_id: str) -> bool: ...

    def metadata(self, layer_id: str) -> dict[str, str]: ...


def new_driver(name: str, graphroot: str | os.PathLike[str], *, rootless: bool = False,
               mount_options: Sequence[str] = ()) -> Driver:
    """The driver ``name`` ("overlay", "overlay2", "vfs") with its home under ``graphroot``; UnsupportedStore."""
    if name in ("overlay", "overlay2"):
        return OverlayDriver(os.path.join(graphroot, "overlay"), rootless=rootless, mount_options=mount_options)
    if name == "vfs":
        return VfsDriver(os.path.join(graphroot, "vfs"))
    raise UnsupportedStore("", f"storage driver {name!r} is not supported (overlay, vfs)")


__all__ = ["Driver", "OverlayDriver", "VfsDriver", "new_driver"]
