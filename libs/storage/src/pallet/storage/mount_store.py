"""Mount counts: ``<runroot>/<driver>-layers/mountpoints.json`` under ``mountpoints.lock`` (format doc 2.1, 6).

As containers/storage 1.43's layerStore Mount/Unmount: a mount of a layer
already mounted adds one to its count and returns the same path; an unmount
takes one off and really unmounts at zero; a forced unmount goes to zero at
once. Only layers with a count above zero are written. The caller holds
``layers.lock`` and then ``mountpoints.lock`` for writing (the Store's
views take both, in that order); none is taken here.
"""

from __future__ import annotations

import os

from pallet.storage import records
from pallet.storage.lockfile import LockFile
from pallet.storage.records import Mountpoint


class MountStore:
    """mountpoints.json of one run root, cached with the lock token."""

    def __init__(self, directory: str, lock: LockFile) -> None:
        self.directory = directory
        self.lock = lock
        self.path = os.path.join(directory, "mountpoints.json")
        self.mounts: list[Mountpoint] = []
        self._token: bytes | None = None

    def reload_if_changed(self) -> bool:
        """Reload when the lock token changed since our last load or save (lock held)."""
        if not self.lock.modified_since(self._token):
            return False
        self._token = self.lock.last_write()
        self.mounts = records.load_records(Mountpoint, self.path)
        return True

    def forget(self) -> None:
        """Drop the cached token so that the next reload_if_changed reads the file again."""
        self._token = None

    def save(self) -> None:
        """Write the entries with a count above zero atomically, then a fresh token (write lock held)."""
        self.mounts = [mount for mount in self.mounts if mount.count > 0]
        records.save_records(self.path, self.mounts)
        self._token = self.lock.record_write()

    def get(self, layer_id: str) -> Mountpoint | None:
        """The entry of a mounted layer (None: not mounted)."""
        return next((mount for mount in self.mounts if mount.id == layer_id and mount.count > 0), None)

    def by_path(self, path: str) -> Mountpoint | None:
        """The entry whose mount point is ``path`` (cleaned as Go's filepath.Clean does)."""
        clean = os.path.normpath(path)
        return next((mount for mount in self.mounts if mount.count > 0 and mount.path == clean), None)

    def count(self, layer_id: str) -> int:
        """How many times the layer is mounted (0: not)."""
        found = self.get(layer_id)
        return found.count if found else 0

    def add(self, layer_id: str, path: str) -> int:
        """One more mount of the layer at ``path``; saved. Returns the new count."""
        found = self.get(layer_id)
        if found is None:
            found = Mountpoint(id=layer_id, path=os.path.normpath(path), count=0)
            self.mounts.append(found)
        found.path = os.path.normpath(path)
        found.count += 1
        self.save()
        return found.count

    def drop(self, layer_id: str, *, force: bool = False) -> int:
        """One mount fewer (``force``: none left); saved. Returns the new count (0: unmount for real)."""
        found = self.get(layer_id)
        if found is None:
            return 0
        found.count = 0 if force else found.count - 1
        self.save()
        return found.count
