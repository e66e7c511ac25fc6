"""The layer half of the store: layers.json, tar-split files and the driver's layer directories.

Format doc sections 2.1-2.4. Every method here expects the caller (the
:class:`~pallet.storage.store.Store` views) to hold ``layers.lock`` in the
mode it states; none takes a lock itself. The graph driver is reached only
through the small :class:`LayerDriver` protocol, so any driver (the real
overlay/vfs package, or a stand-in) can be plugged in.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from typing import BinaryIO, Protocol, runtime_checkable

from pallet.storage import records
from pallet.storage.errors import DiffMismatch, DuplicateID, DuplicateName, InvalidID, LayerInUse
from pallet.storage.lockfile import LockFile
from pallet.storage.records import Layer
from pallet.storage.tarengine import ApplyOptions, WhiteoutFormat, apply_layer, reassemble

__all__ = ["COMPRESSION_CODES", "PENDING_CONTAINER", "DiffMismatch", "LayerDriver", "LayerInUse", "LayerStore",
           "MountingDriver"]

COMPRESSION_CODES = {"none": 0, "bzip2": 1, "gzip": 2, "xz": 3, "zstd": 4}
# The flag a container's (complete) layer carries while the container's record is being created or
# deleted; its value is the container ID. Go keeps flags it does not know and never acts on this one.
PENDING_CONTAINER = "pallet-pending-container"


class LayerDriver(Protocol):
    """What the store needs from a graph driver (``name``: ``vfs``, ``overlay``; names the directories).

    ``create`` makes the (empty, or for vfs parent-copy) directory of a new
    layer and returns the path to apply the diff into; ``remove`` is
    idempotent (a missing layer is not an error); ``diff_roots`` lists the
    directories tar-split reassembly reads from, the layer's own first.
    """

    name: str
    whiteouts: WhiteoutFormat

    def create(self, layer_id: str, parent: str) -> str: ...

    def remove(self, layer_id: str) -> None: ...

    def diff_roots(self, layer_id: str) -> Sequence[str]: ...


@runtime_checkable
class MountingDriver(Protocol):
    """A LayerDriver that can also mount: ``mount`` returns the layer's root filesystem path (mounting
    what is mounted returns the same path; the store counts), ``unmount`` undoes it (idempotent)."""

    def mount(self, layer_id: str, mount_label: str, readonly: bool, options: Sequence[str] | None) -> str: ...

    def unmount(self, layer_id: str) -> None: ...


class _CountingReader(io.RawIOBase):
    """A raw reader over ``source`` that hashes (sha256) and counts every byte handed out."""

    def __init__(self, source: BinaryIO) -> None:
        self._source = source
        self.hasher = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._source.read(len(buffer))
        if not data:
            return 0
        memoryview(buffer)[: len(data)] = data
        self.hasher.update(data)
        self.size += len(data)
        return len(data)

    def drain(self) -> None:
        """Read (and count) the rest of the source: the compressed digest covers the whole blob."""
        while self._source.read(1 << 20):
            pass


class LayerStore:
    """layers.json of one graph root, with the driver, cached with its lock token and mtime."""

    def __init__(self, directory: str, lock: LockFile, driver: LayerDriver) -> None:
        self.directory = directory
        self.lock = lock
        self.driver = driver
        self.path = os.path.join(directory, "layers.json")
        self.layers: list[Layer] = []
        self.owners: Mapping[str, str] = {}  # container ID -> its layer ID: set by the Store after each reload
        self._token: bytes | None = None
        self._mtime: int | None = None

    # -- loading and saving (lock held by the caller) ----------------------------------------------

    def _file_mtime(self) -> int | None:
        try:
            return os.stat(self.path).st_mtime_ns
        except FileNotFoundError:
            return None

    def reload_if_changed(self) -> bool:
        """Reload when the token or the layers.json mtime changed since our last load or save (lock held)."""
        if not self.lock.modified_since(self._token) and self._file_mtime() == self._mtime:
            return False
        self._token = self.lock.last_write()
        self._mtime = self._file_mtime()
        self.layers = records.load_records(Layer, self.path)
        return True

    def forget(self) -> None:
        """Drop the cached token so that the next reload_if_changed reads the file again."""
        self._token = None

    def save(self) -> None:
        """Write layers.json atomically, then a fresh token (write lock held). Not idempotent for others: they reload."""
        records.save_records(self.path, self.layers)
        self._token = self.lock.record_write()
        self._mtime = self._file_mtime()

    def visible(self) -> list[Layer]:
        """The complete layers: an incomplete one is a cut-off create or delete, and one flagged
        :data:`PENDING_CONTAINER` for a container that does not name it a cut-off container create or
        delete; neither is ever shown."""
        return [layer for layer in self.layers if not layer.incomplete and not self._orphaned(layer)]

    def _orphaned(self, layer: Layer) -> bool:
        pending = layer.flags.get(PENDING_CONTAINER)
        return pending is not None and self.owners.get(str(pending)) != layer.id

    def get(self, wanted: str) -> Layer:
        """A complete layer by ID, name or unique ID prefix (LayerNotFound, AmbiguousID)."""
        return records.find_layer(self.visible(), wanted)

    def tar_split_path(self, layer_id: str) -> str:
        return os.path.join(self.directory, f"{layer_id}.tar-split.gz")

    # -- create (write lock held) -----------------------------------------------------------------

    def create(self, parent: str, diff: BinaryIO, *, layer_id: str | None = None, names: Sequence[str] = (),
               uncompressed_digest: str = "", created: str = "", options: ApplyOptions | None = None,
               on_started: Callable[[], None] | None = None) -> Layer:
        """Create a layer from ``diff`` (section 2.3) and return its completed record.

        The record is saved with ``flags.incomplete`` before any data is
        written; on any failure the layer is deleted again and the error
        re-raised. Not idempotent: an existing ID raises DuplicateID.
        ``uncompressed_digest``, when given, must equal the applied diff_id.
        """
        parent_id = self.get(parent).id if parent else ""
        layer = Layer(id=layer_id or records.random_id(), names=list(names), parent=parent_id,
                      created=created or records.now_time(), flags={"incomplete": True})
        self._check_new(layer)
        self.layers.append(layer)
        self.save()
        try:
            if on_started is not None:
                on_started()
            self._fill(layer, diff, uncompressed_digest, options)
        except BaseException:
            with contextlib.suppress(Exception):
                self._delete_files(layer.id)
                self.layers.remove(layer)
                self.save()
            raise
        del layer.flags["incomplete"]
        self.save()
        return layer

    def create_empty(self, parent: str, container_id: str, *, layer_id: str | None = None,
                     mount_label: str = "") -> Layer:
        """A layer without a diff on ``parent`` for container ``container_id``, flagged :data:`PENDING_CONTAINER`.

        As c/storage creates a container's layer (``Put`` with no diff): no
        tar-split, no digests, no names. The record is saved ``incomplete``
        (and pending) before the driver makes the directory, then saved
        complete but still pending; the caller saves the container's record
        and calls :meth:`complete`. A process killed before the directory is
        made leaves an incomplete layer every read-write load (Go's too)
        deletes; one killed before the container record is saved, a pending
        layer no container names, which our views hide and
        :meth:`resolve_pending` deletes (Go keeps it as an unreferenced
        layer); one killed after it, a layer :meth:`resolve_pending` completes.
        A failure here removes the layer again. Not idempotent.
        """
        parent_id = self.get(parent).id if parent else ""
        layer = Layer(id=layer_id or records.random_id(), parent=parent_id, mount_label=mount_label,
                      created=records.now_time(), flags={"incomplete": True, PENDING_CONTAINER: container_id})
        self._check_new(layer)
        self.layers.append(layer)
        self.save()
        try:
            self.driver.create(layer.id, parent_id)
            del layer.flags["incomplete"]
            self.save()
        except BaseException:
            self.discard(layer)
            raise
        return layer

    def complete(self, layer: Layer) -> None:
        """Clear the :data:`PENDING_CONTAINER` flag (the container's record is saved). Idempotent."""
        if layer.flags.pop(PENDING_CONTAINER, None) is not None:
            self.save()

    def mark_pending(self, layer: Layer, container_id: str) -> None:
        """Flag a container's layer :data:`PENDING_CONTAINER` before its container's record is deleted."""
        layer.flags[PENDING_CONTAINER] = container_id
        self.save()

    def resolve_pending(self) -> list[str]:
        """Finish what a killed container create or delete left (write lock held; :attr:`owners` current).

        A pending layer its container names is completed; one no container
        names is deleted (unless it has children: then only unflagged).
        Idempotent. Returns the IDs deleted.
        """
        removed: list[str] = []
        for layer in [layer for layer in self.layers if PENDING_CONTAINER in layer.flags and not layer.incomplete]:
            if not self._orphaned(layer) or any(other.parent == layer.id for other in self.layers):
                self.complete(layer)
            else:
                self._delete_record(layer)
                removed.append(layer.id)
        return removed

    def discard(self, layer: Layer) -> None:
        """Undo :meth:`create_empty`: the driver directory and the record go (errors suppressed: cleanup)."""
        with contextlib.suppress(Exception):
            self._delete_files(layer.id)
            if layer in self.layers:
                self.layers.remove(layer)
            self.save()

    def _check_new(self, layer: Layer) -> None:
        if not records.valid_id(layer.id):
            raise InvalidID(layer.id)
        for other in self.layers:
            if other.id == layer.id:
                raise DuplicateID(layer.id)
            for name in layer.names:
                if name in other.names:
                    raise DuplicateName(name, other.id)

    def _fill(self, layer: Layer, diff: BinaryIO, expected: str, options: ApplyOptions | None) -> None:
        """Make the driver dir, apply the diff writing tar-split, and fill in digests, sizes and id sets."""
        target = self.driver.create(layer.id, layer.parent)
        counted = _CountingReader(diff)
        opts = options or ApplyOptions(whiteouts=self.driver.whiteouts)
        fd = os.open(self.tar_split_path(layer.id), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as split:  # the tar-split writer gzips it
            result = apply_layer(io.BufferedReader(counted, 1 << 16), target, tar_split=split, options=opts)
        counted.drain()
        if expected and expected != result.diff_id:
            raise DiffMismatch(f"layer diff has digest {result.diff_id}, expected {expected}")
        layer.compressed_digest = "sha256:" + counted.hasher.hexdigest()
        layer.compressed_size = counted.size
        layer.uncompressed_digest = result.diff_id
        layer.uncompressed_size = result.size
        layer.compression = COMPRESSION_CODES.get(result.compression, 0)
        layer.uids = list(result.uids)
        layer.gids = list(result.gids)

    # -- delete (write lock held) -----------------------------------------------------------------

    def delete(self, layer_id: str, holders: dict[str, str]) -> None:
        """Delete one layer (section 2.3): flag incomplete and save, remove its files, drop the record.

        ``holders`` maps layer IDs to what references them outside layers.json
        (images, containers); a referenced layer or a parent raises LayerInUse.
        Not idempotent: an unknown layer raises LayerNotFound.
        """
        layer = self.check_deletable(layer_id, holders)
        self._delete_record(layer)

    def check_deletable(self, layer_id: str, holders: Mapping[str, str]) -> Layer:
        """The layer, if nothing holds it: LayerInUse for a parent or a layer in ``holders``; LayerNotFound."""
        layer = records.find_layer(self.layers, layer_id)
        child = next((other for other in self.layers if other.parent == layer.id), None)
        if child is not None:
            raise LayerInUse(layer.id, f"layer {child.id}")
        if layer.id in holders:
            raise LayerInUse(layer.id, holders[layer.id])
        return layer

    def _delete_record(self, layer: Layer) -> None:
        layer.flags["incomplete"] = True
        self.save()
        self._delete_files(layer.id)
        self.layers.remove(layer)
        self.save()

    def _delete_files(self, layer_id: str) -> None:
        """Remove the driver dir, the tar-split file and the big-data dir; missing ones are fine (idempotent)."""
        self.driver.remove(layer_id)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tar_split_path(layer_id))
        shutil.rmtree(os.path.join(self.directory, layer_id), ignore_errors=True)

    def delete_incomplete(self) -> list[str]:
        """Delete every layer flagged incomplete, as a c/storage read-write load does (write lock held).

        Idempotent. Returns the IDs removed. Children first, so a parent is never removed under a child.
        """
        removed: list[str] = []
        while True:
            parents = {layer.parent for layer in self.layers}
            doomed = [layer for layer in self.layers if layer.incomplete and layer.id not in parents]
            if not doomed:
                return removed
            for layer in doomed:
                self._delete_files(layer.id)
                self.layers.remove(layer)
                removed.append(layer.id)
            self.save()

    # -- reading (any lock mode) ------------------------------------------------------------------

    def diff(self, layer_id: str, out: BinaryIO) -> tuple[str, int]:
        """Write the layer's original uncompressed tar to ``out`` from tar-split; returns (digest, size).

        Read-only and idempotent. The digest equals the layer's diff-digest
        unless its files were changed (then TarSplitError).
        """
        layer = self.get(layer_id)
        with open(self.tar_split_path(layer.id), "rb") as split:  # gzip, read by reassemble
            return reassemble(split, list(self.driver.diff_roots(layer.id)), out)
