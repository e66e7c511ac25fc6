"""The store: a containers/storage 1.43 graph root and run root, read and written under its locks.

    store = Store.open(options, driver)
    with store.writing() as w:          # layers, mountpoints, images, containers locks (W), in that order
        layer = w.create_layer("", blob)
        w.create_image(image_id, layer.id, ["localhost/x:1"], "{}", [("manifest", data)])
        c = w.create_container(image_id, names=["c1"])     # a read-write layer on the image + the record
    path = store.mount("c1")            # storage.lock, then the write locks; counted in mountpoints.json
    store.unmount("c1")
    with store.reading() as r:          # the same locks (R)
        r.images(), r.containers(), r.disk_usage()

Format doc sections 1.2/1.3 (layout), 2.3 (layer create/delete), 4 (images),
5 (containers) and 6 (locks). Contracts of the views: every call needs the ``with`` block
it came from to be open (the locks are held only there); on entry the
records are reloaded when the lock token (layers: or the layers.json mtime)
changed since our last load; every save is followed by a fresh token; a
write view first deletes layers left incomplete by a killed process, as a
Go read-write load does, and finishes what a killed container create or
delete left (a layer flagged ``pallet-pending-container``: completed when its
container's record names it, else deleted); a read view hides both kinds.
``storage.lock`` is taken (W) only around a mount, as c/storage does, and
never written (a token there means "driver state changed").
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import os
import shutil
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, BinaryIO

from pallet.storage import records
from pallet.storage.config import StoreOptions, resolve_driver
from pallet.storage.container_diff import ContainerDiff, write_container_diff
from pallet.storage.container_store import ContainerStore
from pallet.storage.drivers import Driver, new_driver
from pallet.storage.errors import ConfigError, ContainerNotFound, ImageInUse, StorageError
from pallet.storage.image_store import ImageStore
from pallet.storage.layer_store import LayerDriver, LayerInUse, LayerStore, MountingDriver
from pallet.storage.lockfile import LockFile, get_lockfile
from pallet.storage.mount_store import MountStore
from pallet.storage.records import Container, Image, Layer, Mountpoint
from pallet.storage.tarengine import ApplyOptions
from pallet.storage.usage import DiskUsage, changes_size, disk_usage, tree_size

__all__ = ["GraphDriverLayers", "ImageInUse", "LayerDriver", "LayerInUse", "MountingDriver", "ReadView", "Store",
           "WriteView"]


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

    def mount(self, layer_id: str, mount_label: str, readonly: bool, options: Sequence[str] | None) -> str:
        """Mount the layer's root filesystem (vfs: its directory) and return the path; ``options``
        (a container's MountOpts) replace the configured mount options."""
        return self.driver.mount(layer_id, mount_label or None, readonly=readonly, options=options)

    def unmount(self, layer_id: str) -> None:
        """Undo :meth:`mount` (nothing to do when it is not mounted)."""
        self.driver.unmount(layer_id)


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
        run_layers = os.path.join(options.run_root, f"{prefix}-layers")
        self._mounts = MountStore(run_layers, get_lockfile(os.path.join(run_layers, "mountpoints.lock")))
        self._containers = ContainerStore(self.containers_dir, os.path.join(options.run_root, f"{prefix}-containers"),
                                          get_lockfile(os.path.join(self.containers_dir, "containers.lock")))
        self._storage_lock = get_lockfile(os.path.join(root, "storage.lock"))
        self._mutex = threading.RLock()  # one thread at a time reloads or changes the cached records

    @classmethod
    def open(cls, options: StoreOptions, driver: LayerDriver | None = None) -> Store:
        """Create the layout (section 1.2/1.3) where missing and return the store. Idempotent.

        ``driver`` None: the driver :func:`resolve_driver` names, from :mod:`pallet.storage.drivers`,
        with storage.conf's ``mountopt``.
        """
        if driver is None:
            name = resolve_driver(options)
            mountopt = dataclasses.replace(options, driver=name).mountopt or ""
            driver = GraphDriverLayers(new_driver(name, options.graph_root, rootless=options.rootless,
                                                  mount_options=[opt for opt in mountopt.split(",") if opt]))
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
        for lock in (self._storage_lock.path, os.path.join(root, "userns.lock"), self._layers.lock.path,
                     self._images.lock.path, self._containers.lock.path, self._mounts.lock.path):
            _touch(lock, 0o644)
        backend = os.path.join(root, "defaultNetworkBackend")
        if not os.path.exists(backend):
            records.atomic_write(backend, b"netavark" if shutil.which("netavark") else b"cni", 0o644)

    def _locks(self) -> tuple[LockFile, LockFile, LockFile, LockFile]:
        """The record locks in the documented order (6.3): layers, mountpoints, images, containers."""
        return self._layers.lock, self._mounts.lock, self._images.lock, self._containers.lock

    @contextlib.contextmanager
    def reading(self) -> Iterator[ReadView]:
        """Hold layers/mountpoints/images/containers locks for reading; records reloaded if changed.
        Incomplete layers are hidden."""
        with contextlib.ExitStack() as stack:
            for lock in self._locks():
                stack.enter_context(lock.reading())
            with self._mutex:
                self._reload()
                yield ReadView(self)

    @contextlib.contextmanager
    def writing(self) -> Iterator[WriteView]:
        """Hold the same locks for writing; reload if changed, then delete layers left incomplete
        (a container's layer left incomplete by a create cut off after its record was saved is completed)."""
        with contextlib.ExitStack() as stack:
            for lock in self._locks():
                stack.enter_context(lock.writing())
            with self._mutex:
                self._reload()
                self._layers.delete_incomplete()
                self._layers.resolve_pending()
                try:
                    yield WriteView(self)
                except BaseException:
                    self._forget()  # the cache may hold a change that was not saved: reload next time
                    raise

    def _forget(self) -> None:
        self._layers.forget()
        self._mounts.forget()
        self._images.forget()
        self._containers.forget()

    def _reload(self) -> None:
        self._layers.reload_if_changed()
        self._mounts.reload_if_changed()
        self._images.reload_if_changed()
        self._containers.reload_if_changed()
        self._layers.owners = {container.id: container.layer for container in self._containers.containers}

    # -- one-call conveniences ----------------------------------------------------------------------

    def images(self) -> list[Image]:
        """A snapshot of every image (read locks taken and released)."""
        with self.reading() as view:
            return view.images()

    def lookup_image(self, wanted: str) -> Image:
        """An image by ID, name or unique ID prefix (read locks taken and released)."""
        with self.reading() as view:
            return view.lookup_image(wanted)

    def containers(self) -> list[Container]:
        """A snapshot of every container (read locks taken and released)."""
        with self.reading() as view:
            return view.containers()

    def lookup_container(self, wanted: str) -> Container:
        """A container by ID, name, layer ID or unique ID prefix (read locks taken and released)."""
        with self.reading() as view:
            return view.container(wanted)

    def mount(self, wanted: str, mount_label: str = "", *, readonly: bool = False) -> str:
        """Mount a container's layer (or a layer) as c/storage's Store.Mount does: ``storage.lock``, then the
        write locks; counted in mountpoints.json. Returns the path (the same one for a second mount)."""
        with self._storage_lock.writing(), self.writing() as view:
            return view.mount(wanted, mount_label, readonly=readonly)

    def unmount(self, wanted: str, *, force: bool = False) -> bool:
        """One mount fewer (``force``: all); really unmounted at zero. True while it stays mounted."""
        with self.writing() as view:
            return view.unmount(wanted, force=force)

    def container_diff(self, wanted: str, out: BinaryIO, compression: str = "none") -> ContainerDiff:
        """The diff of a container's read-write layer written to ``out`` (read locks held throughout, nothing
        mounted); see :meth:`ReadView.container_diff`."""
        with self.reading() as view:
            return view.container_diff(wanted, out, compression)


class ReadView:
    """What can be done under the read locks. Valid only inside its ``with`` block. All calls are idempotent.

    Records handed out are copies: changing them changes nothing in the store.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._layers = store._layers
        self._mounts = store._mounts
        self._images = store._images
        self._containers = store._containers

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
        return copy.deepcopy(self._containers.containers)

    def container(self, wanted: str) -> Container:
        """A container by ID, name, layer ID or unique ID prefix (ContainerNotFound, AmbiguousID)."""
        return copy.deepcopy(self._containers.get(wanted))

    def container_big_data(self, wanted: str, key: str) -> bytes:
        """The big data stored under ``key`` for a container (FileNotFoundError when absent)."""
        return self._containers.big_data(self._containers.get(wanted), key)

    def container_dir(self, wanted: str) -> str:
        """``<graphroot>/<driver>-containers/<id>/userdata`` of a container."""
        return self._containers.container_dir(self._containers.get(wanted).id)

    def container_run_dir(self, wanted: str) -> str:
        """``<runroot>/<driver>-containers/<id>/userdata`` of a container."""
        return self._containers.run_dir(self._containers.get(wanted).id)

    def lookup_image(self, wanted: str) -> Image:
        """An image by ID (``sha256:`` allowed), exact name or unique ID prefix (ImageNotFound, AmbiguousID)."""
        return copy.deepcopy(self._images.get(wanted))

    def image_big_data(self, wanted: str, key: str) -> bytes:
        """The big data stored under ``key`` for an image."""
        return self._images.big_data(self._images.get(wanted), key)

    def layer_diff(self, wanted: str, out: BinaryIO) -> tuple[str, int]:
        """The layer's original uncompressed tar, rebuilt from tar-split into ``out``; (digest, size)."""
        return self._layers.diff(wanted, out)

    def container_diff(self, wanted: str, out: BinaryIO, compression: str = "none") -> ContainerDiff:
        """The layer tar of a container's changes (for commit) written to ``out``; its diff_id and sizes.

        ``wanted``: a container (ID, name, layer ID, prefix) or a layer. As
        c/storage's Diff of a layer without tar-split: overlay reads the upper
        directory directly (0/0 char devices and the opaque xattr become
        ``.wh.`` entries), vfs compares the tree with its parent's. Nothing is
        mounted or unmounted and the mount counts stay as they are, so a
        mounted container can be diffed (stop it first for a consistent
        result). ``compression``: ``"none"``, ``"gzip"`` or ``"zstd"``,
        streamed. Deterministic: the same tree gives the same bytes. An
        image's layer is diffed the same way; :meth:`layer_diff` gives its
        original tar instead. Read-only and idempotent.

        Locks: the view's four read locks, for the whole stream (c/storage
        holds only ``layers.lock`` while its Diff streams, and ``storage.lock``
        while it sets up, for a naive diff's mounts; we mount nothing). A
        rootless store is read in podman's user namespace, as for every other
        call (:mod:`pallet.storage.userns`): outside it, owners would be host
        IDs and the container's other users' files unreadable.
        """
        return write_container_diff(self._layers.driver, self._layer_of(wanted), out, compression)

    def mounts(self) -> list[Mountpoint]:
        """The mounted layers (mountpoints.json: layer ID, path, count)."""
        return copy.deepcopy(self._mounts.mounts)

    def mount_count(self, wanted: str) -> int:
        """How many times a container's layer (or a layer) is mounted; 0 when it is not."""
        return self._mounts.count(self._layer_of(wanted).id)

    def _layer_of(self, wanted: str) -> Layer:
        """The layer ``wanted`` names: a container's (by ID, name, layer ID or prefix), else a layer."""
        try:
            wanted = self._containers.get(wanted).layer
        except ContainerNotFound:
            pass
        return self._layers.get(wanted)

    def disk_usage(self) -> DiskUsage:
        """Sizes per image, container and layer, and what a prune would reclaim (see :mod:`pallet.storage.usage`)."""
        by_id = {layer.id: layer for layer in self._layers.visible()}

        def rw_size(layer: Layer) -> int:
            tree = self._layers.driver.diff_roots(layer.id)[0]
            if self._layers.driver.name == "vfs" and layer.parent in by_id:
                return changes_size(tree, self._layers.driver.diff_roots(layer.parent)[0])
            return tree_size(tree)

        return disk_usage(list(by_id.values()), self._images.images, self._containers.containers, rw_size,
                          lambda layer_id: self._mounts.count(layer_id) > 0)

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
        if parent and any(c.layer == self._layers.get(parent).id for c in self._containers.containers):
            raise LayerInUse(parent, "a container (a container's layer cannot be a parent)")
        return self._layers.create(parent, diff, layer_id=layer_id, names=names,
                                   uncompressed_digest=uncompressed_digest, options=options)

    def delete_layer(self, wanted: str) -> None:
        """Delete a layer nothing references (LayerInUse otherwise), unmounted first. Not idempotent (LayerNotFound)."""
        self._drop_layer(self._layers.get(wanted).id, self._holders())

    def _drop_layer(self, layer_id: str, holders: dict[str, str]) -> None:
        """Unmount the layer fully (as c/storage's Delete does), then delete it (LayerInUse, LayerNotFound)."""
        layer = self._layers.check_deletable(layer_id, holders)
        if self._mounts.count(layer.id):
            self._unmount_layer(layer.id, force=True)
        self._layers.delete(layer.id, holders)

    def _holders(self, ignore: Image | None = None) -> dict[str, str]:
        """Layer ID -> the first image or container that references it (``ignore`` not counted)."""
        held: dict[str, str] = {}
        for image in self._images.images:
            if image is not ignore:
                for layer_id in [image.top_layer, *image.mapped_top_layers]:
                    held.setdefault(layer_id, f"image {image.id}")
        for container in self._containers.containers:
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
        user = next((c for c in self._containers.containers if c.image == image.id), None)
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
            self._drop_layer(layer_id, holders)
            removed.append(layer_id)
            layer_id = layer.parent
        return removed

    # -- containers -------------------------------------------------------------------------------------

    def create_container(self, image: str, *, container_id: str | None = None, names: Sequence[str] = (),
                         metadata: str = "", mount_label: str = "", process_label: str = "",
                         mount_opts: Sequence[str] = (), volatile: bool = False,
                         flags: Mapping[str, Any] | None = None) -> Container:
        """A container on ``image`` ("" for scratch): a read-write layer on the image's top layer plus the record.

        As c/storage 1.43's CreateContainer: the layer has a random ID, no
        names and the mount label; the record's flags hold ``MountLabel`` and
        ``ProcessLabel`` (both or neither given: ConfigError), ``MountOpts``
        and ``Volatile`` when set. Both ``userdata`` directories are made.
        ID-mapped containers (uidmap/gidmap, an ID-mapped copy of the image's
        top layer) are not made here.
        Crash safety (:meth:`LayerStore.create_empty`): the layer is
        ``incomplete`` until its directory is made, then flagged
        ``pallet-pending-container`` until the record is saved. A process
        killed at any point leaves no container without its layer (for Go
        too), and no layer our views show that no container names.
        Not idempotent (DuplicateID, DuplicateName; ImageNotFound).
        """
        if bool(mount_label) != bool(process_label):
            raise ConfigError("ProcessLabel and MountLabel must either not be specified or both specified")
        top = self._images.get(image) if image else None
        new_id = container_id or records.random_id()
        self._containers.check_new(new_id, names)
        all_flags: dict[str, Any] = dict(flags or {})
        all_flags.update(MountLabel=mount_label, ProcessLabel=process_label)
        if mount_opts:
            all_flags["MountOpts"] = list(mount_opts)
        if volatile:
            all_flags["Volatile"] = True
        layer = self._layers.create_empty(top.top_layer if top else "", new_id, mount_label=mount_label)
        try:
            container = self._containers.create(new_id, names, top.id if top else "", layer.id, metadata,
                                                all_flags, (), ())
        except BaseException:
            self._layers.discard(layer)
            raise
        self._layers.complete(layer)
        return copy.deepcopy(container)

    def delete_container(self, wanted: str) -> None:
        """Delete a container: its layer (unmounted first), its record, its directories. Not idempotent.

        Order: the layer is flagged ``pallet-pending-container`` and saved,
        the record goes, then the layer (section 2.3). A process killed
        before the record went leaves the container whole (the flag is
        cleared by our next write view); one killed after it, a layer our
        views hide and our next write view deletes (Go keeps it as an
        unreferenced layer). A container whose layer is gone is still
        deleted, as c/storage does.
        """
        container = self._containers.get(wanted)
        layer = next((item for item in self._layers.layers if item.id == container.layer), None)
        if layer is not None:
            if self._mounts.count(layer.id):
                self._unmount_layer(layer.id, force=True)
            self._layers.mark_pending(layer, container.id)
        self._containers.delete(container)
        if layer is not None:
            self._layers.delete(layer.id, self._holders())

    def set_container_big_data(self, wanted: str, key: str, data: bytes) -> None:
        """Store (or replace) one big-data item of a container. Idempotent."""
        self._containers.set_big_data(self._containers.get(wanted), key, data)

    def set_container_names(self, wanted: str, names: Sequence[str]) -> None:
        """Replace a container's names (DuplicateName if another container holds one). Idempotent."""
        self._containers.set_names(self._containers.get(wanted), names)

    def set_container_metadata(self, wanted: str, metadata: str) -> None:
        """Replace a container's metadata string. Idempotent."""
        self._containers.set_metadata(self._containers.get(wanted), metadata)

    # -- mounts -----------------------------------------------------------------------------------------

    def mount(self, wanted: str, mount_label: str = "", *, readonly: bool = False) -> str:
        """Mount a container's layer (or a layer) and return the path; a second mount counts and returns it again.

        Prefer :meth:`Store.mount`, which also holds ``storage.lock`` as c/storage
        does. The label defaults to the container's ``MountLabel`` flag, else the
        layer's; a container's ``MountOpts`` flag replaces the configured mount
        options. Not idempotent: every call is one more mount (undo with :meth:`unmount`).
        """
        layer = self._layer_of(wanted)
        driver = self._layers.driver
        if not isinstance(driver, MountingDriver):
            raise StorageError(f"the {driver.name} driver given to this store cannot mount")
        label, options = self._container_mount_flags(wanted)
        path = driver.mount(layer.id, mount_label or label or layer.mount_label, readonly, options)
        self._mounts.add(layer.id, path)
        return path

    def _container_mount_flags(self, wanted: str) -> tuple[str, list[str] | None]:
        """A container's ``MountLabel`` and ``MountOpts`` flags ("" and None for a layer or when unset)."""
        try:
            flags = self._containers.get(wanted).flags
        except ContainerNotFound:
            return "", None
        label, options = flags.get("MountLabel"), flags.get("MountOpts")
        return (label if isinstance(label, str) else "",
                [str(option) for option in options] if isinstance(options, list) and options else None)

    def unmount(self, wanted: str, *, force: bool = False) -> bool:
        """One mount fewer of a container's layer, a layer or a mount path; unmounted for real at zero.

        ``force``: unmounted whatever the count. Returns True while it stays
        mounted. Unmounting what is not mounted does nothing (False).
        """
        found = self._mounts.by_path(wanted) if os.path.isabs(wanted) else None
        return self._unmount_layer(found.id if found else self._layer_of(wanted).id, force=force)

    def _unmount_layer(self, layer_id: str, *, force: bool) -> bool:
        count = self._mounts.count(layer_id)
        if count > 1 and not force:
            return self._mounts.drop(layer_id) > 0
        if count:
            driver = self._layers.driver
            if isinstance(driver, MountingDriver):
                driver.unmount(layer_id)
            self._mounts.drop(layer_id, force=True)
        return False

    # -- prune ------------------------------------------------------------------------------------------

    def prune_container_dirs(self) -> list[str]:
        """Remove the ``<id>/`` directories (graph root and run root) of containers no record names, as a
        delete cut off after its record went leaves them. Returns the paths. Idempotent."""
        found = self._containers.orphan_dirs()
        for path in found:
            shutil.rmtree(path, ignore_errors=True)
        return found

    def prune_layers(self) -> list[str]:
        """Delete every layer nothing references: not in an image's chain, not a container's layer or its
        parents, not mounted. (Incomplete layers went when this view was opened.) Returns the IDs, children
        first. Idempotent."""
        doomed = set(self.disk_usage().unreferenced_layers)
        removed: list[str] = []
        while doomed:
            parents = {layer.parent for layer in self._layers.layers}
            leaves = [layer_id for layer_id in doomed if layer_id not in parents]
            if not leaves:
                break
            for layer_id in sorted(leaves):
                self._layers.delete(layer_id, {})
                removed.append(layer_id)
                doomed.discard(layer_id)
        return removed
