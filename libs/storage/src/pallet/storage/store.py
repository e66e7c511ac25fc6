"""The store: a containers/storage 1.43 graph root and run root, read and written under its locks.

    store = Store.open(options, driver)
    with store.writing() as w:          # layers.lock, images.lock, containers.lock (W), in that order
        layer = w.create_layer("", blob)
        w.create_image(image_id, layer.id, ["localhost/x:1"], "{}", [("manifest", data)])
    with store.reading() as r:          # the same locks (R)
        r.images()

Format doc sections 1.2/1.3 (layout), 2.3 (layer create/delete), 4 (images)
and 6 (locks). Contracts of the views: every call needs the ``with`` block
it came from to be open (the locks are held only there); on entry the
records are reloaded when the lock token (layers: or the layers.json mtime)
changed since our last load; every save is followed by a fresh token; a
write view first deletes layers left incomplete by a killed process, as a
Go read-write load does; a read view hides them. ``storage.lock`` is
created but never written (a token there means "driver state changed").
"""

from __future__ import annotations

import contextlib
import copy
import os
import shutil
import threading
from collections.abc import Iterator, Sequence
from typing import BinaryIO

from pallet.storage import records
from pallet.storage.config import StoreOptions, resolve_driver
from pallet.storage.drivers import Driver, new_driver
from pallet.storage.errors import ConfigError, StorageError
from pallet.storage.image_store import ImageStore
from pallet.storage.layer_store import LayerDriver, LayerInUse, LayerStore
from pallet.storage.lockfile import LockFile, get_lockfile
from pallet.storage.records import Container, Image, Layer
from pallet.storage.tarengine import ApplyOptions

__all__ = ["GraphDriverLayers", "ImageInUse", "LayerDriver", "LayerInUse", "ReadView", "Store", "WriteView"]


class ImageInUse(StorageError):
    """An image that a container uses cannot be deleted."""

    def __init__(self, image_id: str, container_id: str) -> None:
        self.image_id = image_id
        self.container_id = container_id
        super().__init__(f"image {image_id} is in use by container {container_id}")


class GraphDriverLayers:
    """A :class:`pallet.storage.drivers.Driver` seen through the store's small LayerDriver protocol."""

    def __init__(self, driver: Driver) -> None:
        self.driver = driver
        self.name = driver.name
        self.whiteouts = driver.whiteout_form

    def create(self, layer_id: str, parent: str) -> str:
        """Make the layer's directory on ``parent`` ("" for a base) and return where to apply its diff."""
        self.driver.create(layer_id, parent or None)
        return self.driver.layer_dir(layer_id)

    def remove(self, layer_id: str) -> None:
        """Delete the layer's directory; idempotent."""
        self.driver.remove(layer_id)

    def diff_roots(self, layer_id: str) -> Sequence[str]:
        """The layer's own diff directory: tar-split names only files of this layer."""
        return [self.driver.layer_dir(layer_id)]


def _touch(path: str, mode: int) -> None:
    """Create ``path`` empty if missing (never truncate: a lock file holds a token)."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, mode))


class Store:
    """One graph root + run root + driver. One Store per process and root is enough; it is thread-safe."""

    def __init__(self, options: StoreOptions, driver: LayerDriver) -> None:
        self.options = options
        self.driver = driver
        prefix = driver.name
        root = options.graph_root
        self.layers_dir = os.path.join(root, f"{prefix}-layers")
        self.images_dir = os.path.join(root, f"{prefix}-images")
        self.containers_dir = os.path.join(root, f"{prefix}-containers")
        self._layers = LayerStore(self.layers_dir, get_lockfile(os.path.join(self.layers_dir, "layers.lock")), driver)
        self._images = ImageStore(self.images_dir, get_lockfile(os.path.join(self.images_dir, "images.lock")))
        self._containers_lock = get_lockfile(os.path.join(self.containers_dir, "containers.lock"))
        self._containers: list[Container] = []
        self._containers_token: bytes | None = None
        self._mutex = threading.RLock()  # one thread at a time reloads or changes the cached records

    @classmethod
    def open(cls, options: StoreOptions, driver: LayerDriver | None = None) -> Store:
        """Create the layout (section 1.2/1.3) where missing and return the store. Idempotent.

        ``driver`` None: the driver :func:`resolve_driver` names, from :mod:`pallet.storage.drivers`.
        """
        if driver is None:
            name = resolve_driver(options)
            driver = GraphDriverLayers(new_driver(name, options.graph_root, rootless=options.rootless))
        if options.driver and options.driver != driver.name:
            raise ConfigError(f"store configured for driver {options.driver!r}, opened with {driver.name!r}")
        store = cls(options, driver)
        store._make_layout()
        return store

    def _make_layout(self) -> None:
        root, run = self.options.graph_root, self.options.run_root
        for directory in (root, run, os.path.join(root, "mounts"), os.path.join(root, "tmp"), self.layers_dir,
                          self.images_dir, self.containers_dir, os.path.join(run, f"{self.driver.name}-layers"),
                          os.path.join(run, f"{self.driver.name}-containers")):
            os.makedirs(directory, 0o700, exist_ok=True)
        for lock in (os.path.join(root, "storage.lock"), os.path.join(root, "userns.lock"), self._layers.lock.path,
                     self._images.lock.path, self._containers_lock.path,
                     os.path.join(run, f"{self.driver.name}-layers", "mountpoints.lock")):
            _touch(lock, 0o644)
        backend = os.path.join(root, "defaultNetworkBackend")
        if not os.path.exists(backend):
            records.atomic_write(backend, b"netavark" if shutil.which("netavark") else b"cni", 0o644)

    def _locks(self) -> tuple[LockFile, LockFile, LockFile]:
        """The record locks in the documented order (6.3): layers, images, containers."""
        return self._layers.lock, self._images.lock, self._containers_lock

    @contextlib.contextmanager
    def reading(self) -> Iterator[ReadView]:
        """Hold layers/images/containers locks for reading; records reloaded if changed. Incomplete layers hidden."""
        with contextlib.ExitStack() as stack:
            for lock in self._locks():
                stack.enter_context(lock.reading())
            with self._mutex:
                self._reload()
                yield ReadView(self)

    @contextlib.contextmanager
    def writing(self) -> Iterator[WriteView]:
        """Hold the same locks for writing; reload if changed, then delete layers left incomplete."""
        with contextlib.ExitStack() as stack:
            for lock in self._locks():
                stack.enter_context(lock.writing())
            with self._mutex:
                self._reload()
                self._layers.delete_incomplete()
                try:
                    yield WriteView(self)
                except BaseException:
                    self._forget()  # the cache may hold a change that was not saved: reload next time
                    raise

    def _forget(self) -> None:
        self._layers.forget()
        self._images.forget()
        self._containers_token = None

    def _reload(self) -> None:
        self._layers.reload_if_changed()
        self._images.reload_if_changed()
        if self._containers_lock.modified_since(self._containers_token):
            self._containers_token = self._containers_lock.last_write()
            self._containers = records.load_records(Container, os.path.join(self.containers_dir, "containers.json"))

    # -- one-call conveniences ----------------------------------------------------------------------

    def images(self) -> list[Image]:
        """A snapshot of every image (read locks taken and released)."""
        with self.reading() as view:
            return view.images()

    def lookup_image(self, wanted: str) -> Image:
        """An image by ID, name or unique ID prefix (read locks taken and released)."""
        with self.reading() as view:
            return view.lookup_image(wanted)


class ReadView:
    """What can be done under the read locks. Valid only inside its ``with`` block. All calls are idempotent.

    Records handed out are copies: changing them changes nothing in the store.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._layers = store._layers
        self._images = store._images

    def layers(self) -> list[Layer]:
        """Every complete layer."""
        return copy.deepcopy(self._layers.visible())

    def layer(self, wanted: str) -> Layer:
        """A complete layer by ID, name or unique ID prefix."""
        return copy.deepcopy(self._layers.get(wanted))

    def images(self) -> list[Image]:
        """Every image, in images.json order."""
        return copy.deepcopy(self._images.images)

    def containers(self) -> list[Container]:
        """Every container record (ours, podman's, buildah's)."""
        return copy.deepcopy(self._store._containers)

    def lookup_image(self, wanted: str) -> Image:
        """An image by ID (``sha256:`` allowed), exact name or unique ID prefix (ImageNotFound, AmbiguousID)."""
        return copy.deepcopy(self._images.get(wanted))

    def image_big_data(self, wanted: str, key: str) -> bytes:
        """The big data stored under ``key`` for an image."""
        return self._images.big_data(self._images.get(wanted), key)

    def layer_diff(self, wanted: str, out: BinaryIO) -> tuple[str, int]:
        """The layer's original uncompressed tar, rebuilt from tar-split into ``out``; (digest, size)."""
        return self._layers.diff(wanted, out)

    def image_size(self, wanted: str) -> int:
        """An image's size as c/storage's ImageSize counts it: its layer chains, then its big data.

        Each layer of the chains under the top layer and the mapped top layers
        counts once, with its recorded uncompressed size (rebuilt from tar-split
        and measured when that size is unknown); then every big-data item.
        """
        image = self._images.get(wanted)
        queue = [layer_id for layer_id in [image.top_layer, *image.mapped_top_layers] if layer_id]
        visited: set[str] = set()
        size = 0
        while queue:
            layer_id = queue.pop()
            if layer_id in visited:
                continue
            visited.add(layer_id)
            layer = self._layers.get(layer_id)
            if layer.uncompressed_digest and layer.uncompressed_size >= 0:
                size += layer.uncompressed_size
            else:
                with open(os.devnull, "wb") as sink:
                    size += self._layers.diff(layer.id, sink)[1]
            if layer.parent:
                queue.append(layer.parent)
        return size + sum(image.big_data_sizes.get(key, 0) for key in image.big_data_names)


class WriteView(ReadView):
    """What can be done under the write locks. Each call saves what it changed and records a write."""

    def create_layer(self, parent: str, diff: BinaryIO, *, layer_id: str | None = None, names: Sequence[str] = (),
                     uncompressed_digest: str = "", options: ApplyOptions | None = None) -> Layer:
        """Create a layer from the (compressed or plain) tar ``diff`` on ``parent`` ("" for a base).

        Section 2.3: saved ``incomplete`` first, completed after the data is
        in; deleted again on failure. Not idempotent (DuplicateID).
        """
        if parent and any(c.layer == self._layers.get(parent).id for c in self._store._containers):
            raise LayerInUse(parent, "a container (a container's layer cannot be a parent)")
        return self._layers.create(parent, diff, layer_id=layer_id, names=names,
                                   uncompressed_digest=uncompressed_digest, options=options)

    def delete_layer(self, wanted: str) -> None:
        """Delete a layer nothing references (LayerInUse otherwise). Not idempotent (LayerNotFound)."""
        self._layers.delete(self._layers.get(wanted).id, self._holders())

    def _holders(self, ignore: Image | None = None) -> dict[str, str]:
        """Layer ID -> the first image or container that references it (``ignore`` not counted)."""
        held: dict[str, str] = {}
        for image in self._images.images:
            if image is not ignore:
                for layer_id in [image.top_layer, *image.mapped_top_layers]:
                    held.setdefault(layer_id, f"image {image.id}")
        for container in self._store._containers:
            held.setdefault(container.layer, f"container {container.id}")
        return held

    def create_image(self, image_id: str, top_layer: str, names: Sequence[str] = (), metadata: str = "",
                     big_data: Sequence[tuple[str, bytes]] = (), created: str = "") -> Image:
        """Create an image on ``top_layer`` ("" for none) with big data saved in the order given.

        Keys as c/image writes them: the config under its digest string, the
        manifest under ``manifest-<digest>`` and ``manifest``. Not idempotent
        (DuplicateID, DuplicateName for a name another image holds).
        """
        layer_id = self._layers.get(top_layer).id if top_layer else ""
        return self._images.create(image_id, layer_id, names, metadata, big_data, created)

    def set_image_big_data(self, wanted: str, key: str, data: bytes) -> None:
        """Store (or replace) one big-data item of an image. Idempotent."""
        self._images.set_big_data(self._images.get(wanted), key, data)

    def set_names(self, wanted: str, names: Sequence[str]) -> None:
        """Replace an image's names; names held by other images move here. Idempotent."""
        self._images.set_names(self._images.get(wanted), names)

    def add_names(self, wanted: str, names: Sequence[str]) -> None:
        """Add names to an image; names held by other images move here. Idempotent."""
        self._images.add_names(self._images.get(wanted), names)

    def remove_names(self, wanted: str, names: Sequence[str]) -> None:
        """Remove names from an image (absent names are ignored). Idempotent."""
        self._images.remove_names(self._images.get(wanted), names)

    def delete_image(self, wanted: str) -> list[str]:
        """Delete an image, then its layer chain down to the first layer something else uses.

        Refused (ImageInUse) while a container uses the image. Returns the
        deleted layer IDs, top first. Not idempotent (ImageNotFound).
        """
        image = self._images.get(wanted)
        user = next((c for c in self._store._containers if c.image == image.id), None)
        if user is not None:
            raise ImageInUse(image.id, user.id)
        self._images.delete(image)
        removed: list[str] = []
        holders = self._holders()
        for layer_id in [*image.mapped_top_layers, image.top_layer]:
            removed += self._delete_chain(layer_id, holders)
        return removed

    def _delete_chain(self, layer_id: str, holders: dict[str, str]) -> list[str]:
        removed: list[str] = []
        while layer_id and layer_id not in holders:
            layer = next((item for item in self._layers.layers if item.id == layer_id), None)
            if layer is None or any(other.parent == layer_id for other in self._layers.layers):
                break
            self._layers.delete(layer_id, holders)
            removed.append(layer_id)
            layer_id = layer.parent
        return removed
