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
from pallet.storage.errors import DuplicateID, DuplicateName, InvalidID, StorageError
from pallet.storage.lockfile import LockFile
from pallet.storage.records import Layer
from pallet.storage.tarengine import ApplyOptions, WhiteoutFormat, apply_layer, reassemble

COMPRESSION_CODES = {"none": 0, "bzip2": 1, "gzip": 2, "xz": 3, "zstd": 4}
# A flag beside "incomplete" on a container's layer whose files are whole: the create (or our delete)
# of container <value> was cut off while the container's record may exist (Go keeps unknown flags).
PENDING_CONTAINER = "pallet-pending-container"


class LayerInUse(StorageError):
    """A layer still referenced (as a parent, an image's layer or a container's layer) cannot be deleted."""

    def __init__(self, layer_id: str, holder: str) -> None:
        self.layer_id = layer_id
        self.holder = holder
        super().__init__(f"layer {layer_id} is in use by {holder}")


class DiffMismatch(StorageError):
    """The applied diff does not have the uncompressed digest the caller announced."""


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
        """The complete layers (an incomplete one is a cut-off create or delete, never shown)."""
        return [layer for layer in self.layers if not layer.incomplete]

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
        """A layer without a diff on ``parent`` (a container's read-write layer), left ``incomplete``.

        As c/storage creates a container's layer (``Put`` with no diff): no
        tar-split, no digests, no names. The record is saved flagged
        ``incomplete`` before the driver makes the directory, and stays so
        until the caller calls :meth:`complete` once the record of
        ``container_id`` is saved (flag :data:`PENDING_CONTAINER`): a process
        killed before that leaves a layer every read-write load deletes, one
        killed after it a layer :meth:`delete_incomplete` completes. A failure
        here removes it again. Not idempotent.
        """
        parent_id = self.get(parent).id if parent else ""
        layer = Layer(id=layer_id or records.random_id(), parent=parent_id, mount_label=mount_label,
                      created=records.now_time(), flags={"incomplete": True, PENDING_CONTAINER: container_id})
        self._check_new(layer)
        self.layers.append(layer)
        self.save()
        try:
            self.driver.create(layer.id, parent_id)
        except BaseException:
            self.discard(layer)
            raise
        return layer

    def complete(self, layer: Layer) -> None:
        """Clear the ``incomplete`` flag of a layer made by :meth:`create_empty` and save. Idempotent."""
        if layer.flags.pop("incomplete", None) is not None:
            layer.flags.pop(PENDING_CONTAINER, None)
            self.save()

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
        layer = records.find_layer(self.layers, layer_id)
        child = next((other for other in self.layers if other.parent == layer.id), None)
        if child is not None:
            raise LayerInUse(layer.id, f"layer {child.id}")
        if layer.id in holders:
            raise LayerInUse(layer.id, holders[layer.id])
        self._delete_record(layer)

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

    def delete_incomplete(self, containers: Mapping[str, str] | None = None) -> list[str]:
        """Delete every layer flagged incomplete, as a c/storage read-write load does (write lock held).

        ``containers`` maps container IDs to their layer IDs. An incomplete
        layer flagged :data:`PENDING_CONTAINER` for a container whose record
        exists and names it has whole files (a create cut off after the
        record was saved, or our delete before the record went): it is
        completed instead. (An incomplete layer without that flag may be
        half deleted, by Go or by us, and goes.) Idempotent. Returns the IDs
        removed. Children first, so a parent is never removed under a child.
        """
        owners = containers or {}
        kept = [layer for layer in self.layers if layer.incomplete
                and owners.get(str(layer.flags.get(PENDING_CONTAINER))) == layer.id]
        for layer in kept:
            del layer.flags["incomplete"]
            del layer.flags[PENDING_CONTAINER]
        if kept:
            self.save()
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
