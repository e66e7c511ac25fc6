"""The exceptions of pallet.storage: one tree, raised by every module of the lib.

Callers branch on the leaves; CLIs map the root to exit codes once. This
module imports only :mod:`pallet.oci.errors` (cheap: no third-party import),
so that "image not found" from the store is also the oci lib's
``ImageNotFound`` and a CLI maps both the same way.

    StorageError                    the root of every error of pallet.storage
    ├── ConfigError                 storage.conf or STORAGE_OPTS cannot be read or is inconsistent
    │   └── DriverConflict          the configured driver differs from the driver dirs already on disk
    ├── LockError                   a lock file cannot be opened, taken or written
    │   ├── LockBusy                a non-blocking attempt found the lock held by another process
    │   └── LockNotHeld             unlock or a token write without holding the lock in that mode
    ├── CorruptRecords              a records file (layers.json, ...) is not what containers/storage writes
    ├── InvalidID                   not 64 lowercase hex digits
    ├── InvalidBigDataKey           an empty big-data key
    ├── NotFound                    a record named by ID, name or prefix does not exist
    │   ├── LayerNotFound
    │   ├── ImageNotFound           (also pallet.oci.errors.ImageNotFound)
    │   └── ContainerNotFound
    ├── AmbiguousID                 an ID prefix matches more than one record
    ├── DuplicateName               a name that another record of the same kind already holds
    ├── DuplicateID                 an ID that a record of the same kind already has
    ├── InUse                       a record something else still references cannot be deleted
    │   ├── LayerInUse              a parent, an image's layer or a container's layer
    │   └── ImageInUse              an image a container uses
    └── DiffMismatch                an applied layer diff does not have the announced digest

(The graph drivers' errors hang below StorageError too: :mod:`pallet.storage.drivers.errors`.)
"""

from __future__ import annotations

from pallet.oci import errors as oci_errors

_MAX_SHOWN = 200  # user input quoted in a message is cut to this many characters


def _shown(text: str) -> str:
    """``text`` quoted for a message, cut short: hostile input must not make huge messages."""
    return repr(text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "...")


class StorageError(Exception):
    """The root of every error raised by pallet.storage."""


class ConfigError(StorageError):
    """storage.conf, STORAGE_DRIVER or STORAGE_OPTS cannot be read or is inconsistent."""


class DriverConflict(ConfigError):
    """The configured driver differs from the driver directories already in the graph root."""


class LockError(StorageError):
    """A lock file cannot be opened, locked or written (``path`` names it)."""

    def __init__(self, path: str, why: str) -> None:
        self.path = path
        self.why = why
        super().__init__(f"lock {path}: {why}")


class LockBusy(LockError):
    """A non-blocking attempt found the lock held (by another process, or by another thread here)."""


class LockNotHeld(LockError):
    """Unlock, or a last-write token update, without holding the lock in the needed mode."""


class CorruptRecords(StorageError):
    """A records file does not parse, or parses to something containers/storage would not write."""

    def __init__(self, path: str, why: str) -> None:
        self.path = path
        self.why = why
        super().__init__(f"{path}: {why}")


class InvalidID(StorageError, ValueError):
    """An ID that is not 64 lowercase hex digits."""

    def __init__(self, value: str) -> None:
        self.value = value
        super().__init__(f"invalid ID {_shown(value)}: want 64 lowercase hex digits")


class InvalidBigDataKey(StorageError, ValueError):
    """A big-data key that cannot name a file (empty)."""


class NotFound(StorageError):
    """No record of the kind asked for has this ID, name or unique ID prefix."""

    kind = "record"

    def __init__(self, wanted: str) -> None:
        self.wanted = wanted
        super().__init__(f"{self.kind} not known: {_shown(wanted)}")


class LayerNotFound(NotFound):
    """No layer has this ID, name or ID prefix."""

    kind = "layer"


class ImageNotFound(NotFound, oci_errors.ImageNotFound):
    """No image has this ID, name or ID prefix (also ``pallet.oci.errors.ImageNotFound``)."""

    kind = "image"


class ContainerNotFound(NotFound):
    """No container has this ID, name, layer ID or ID prefix."""

    kind = "container"


class AmbiguousID(StorageError):
    """An ID prefix that more than one record starts with."""

    def __init__(self, prefix: str, count: int) -> None:
        self.prefix = prefix
        self.count = count
        super().__init__(f"ID prefix {_shown(prefix)} is ambiguous: {count} records match")


class DuplicateName(StorageError):
    """A name that another record of the same kind already holds."""

    def __init__(self, name: str, holder: str) -> None:
        self.name = name
        self.holder = holder
        super().__init__(f"name {_shown(name)} is already in use by {holder}")


class DuplicateID(StorageError):
    """An ID that a record of the same kind already has."""

    def __init__(self, record_id: str) -> None:
        self.record_id = record_id
        super().__init__(f"ID {record_id} is already in use")


class InUse(StorageError):
    """A record that something else still references cannot be deleted."""


class LayerInUse(InUse):
    """A layer still referenced (as a parent, an image's layer or a container's layer) cannot be deleted."""

    def __init__(self, layer_id: str, holder: str) -> None:
        self.layer_id = layer_id
        self.holder = holder
        super().__init__(f"layer {layer_id} is in use by {holder}")


class ImageInUse(InUse):
    """An image that a container uses cannot be deleted."""

    def __init__(self, image_id: str, container_id: str) -> None:
        self.image_id = image_id
        self.container_id = container_id
        super().__init__(f"image {image_id} is in use by container {container_id}")


class DiffMismatch(StorageError):
    """The applied diff does not have the uncompressed digest the caller announced."""
