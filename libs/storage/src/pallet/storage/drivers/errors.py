"""The exceptions of the graph drivers (under :class:`pallet.storage.errors.StorageError`).

    DriverError                 a driver operation failed (``layer`` names the layer, may be empty)
    ├── LayerExists             create() of an ID whose directory already exists
    ├── LayerMissing            an operation on (or a parent that is) a layer the driver does not have
    ├── MaxDepthExceeded        an overlay layer would have more than 128 lower layers
    ├── LayerBusy               remove() of a layer whose mount point is still mounted
    ├── MountFailed             mount(2)/umount2(2) failed (``errno`` set)
    └── UnsupportedStore        a store this driver cannot serve (pinned to fuse-overlayfs, bad mount option)
"""

from __future__ import annotations

from pallet.storage.errors import StorageError


class DriverError(StorageError):
    """A graph driver operation failed; ``layer`` is the layer ID concerned (may be empty)."""

    def __init__(self, layer: str, why: str) -> None:
        self.layer = layer
        self.why = why
        super().__init__(f"layer {layer}: {why}" if layer else why)


class LayerExists(DriverError):
    """create() of a layer whose directory already exists."""


class LayerMissing(DriverError):
    """The layer (or the parent named) has no directory in the driver."""


class MaxDepthExceeded(DriverError):
    """An overlay layer would have more lower layers than the kernel option string can hold (128)."""


class LayerBusy(DriverError):
    """remove() of a layer that is still mounted (the Store unmounts first)."""


class MountFailed(DriverError):
    """mount(2) or umount2(2) failed; ``errno`` is the error number."""

    def __init__(self, layer: str, why: str, errno: int) -> None:
        self.errno = errno
        super().__init__(layer, why)


class UnsupportedStore(DriverError):
    """A store this driver cannot serve (e.g. pinned to fuse-overlayfs), or an unsupported mount option."""
