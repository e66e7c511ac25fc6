"""The container half of the store: containers.json, container big data and the per-container directories.

Format doc section 5. Every method expects the caller (the
:class:`~pallet.storage.store.Store` views) to hold ``containers.lock`` in
the mode it states; none takes a lock itself. Layout::

    <graphroot>/<driver>-containers/containers.json     the records (1.43 writes only this file)
    <graphroot>/<driver>-containers/<id>/<big data>     named as makeBigDataBaseName names them
    <graphroot>/<driver>-containers/<id>/userdata/      podman's config.json, buildah's buildah.json
    <runroot>/<driver>-containers/<id>/userdata/        podman's run state (conmon.pid, hosts, ...)

``volatile-containers.json`` (c/storage 1.45+, risk R6: beside
containers.json, or in the run root with ``transient_store``) is read when
present, and each record read from it is written back to it, so a newer Go's
containers are neither lost nor moved; records we create go to
containers.json, the only file 1.43 reads.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Mapping, Sequence
from typing import Any

from pallet.storage import records
from pallet.storage.errors import DuplicateID, DuplicateName, InvalidID
from pallet.storage.lockfile import LockFile
from pallet.storage.records import Container, IDMap

MAIN_FILE = "containers.json"
VOLATILE_FILE = "volatile-containers.json"


def _dedupe(names: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(name for name in names if name))


class ContainerStore:
    """containers.json (and any volatile-containers.json) of one store, cached with the lock token."""

    def __init__(self, directory: str, run_directory: str, lock: LockFile) -> None:
        self.directory = directory
        self.run_directory = run_directory
        self.lock = lock
        self.path = os.path.join(directory, MAIN_FILE)
        self.containers: list[Container] = []
        self._files = [self.path, os.path.join(directory, VOLATILE_FILE), os.path.join(run_directory, VOLATILE_FILE)]
        self._origin: dict[str, str] = {}  # container ID -> the file it was read from (absent: containers.json)
        self._token: bytes | None = None

    # -- loading and saving ---------------------------------------------------------------------------

    def reload_if_changed(self) -> bool:
        """Reload when the lock token changed since our last load or save (lock held). A record in two
        files is taken from the first (containers.json, then the volatile files)."""
        if not self.lock.modified_since(self._token):
            return False
        self._token = self.lock.last_write()
        loaded: list[Container] = []
        self._origin = {}
        for path in self._files:
            for container in records.load_records(Container, path) if os.path.exists(path) else []:
                if container.id not in self._origin:
                    self._origin[container.id] = path
                    loaded.append(container)
        self.containers = loaded
        return True

    def forget(self) -> None:
        """Drop the cached token so that the next reload_if_changed reads the files again."""
        self._token = None

    def save(self) -> None:
        """Write containers.json (and each volatile file that holds or held records) atomically, then a
        fresh token (write lock held)."""
        by_file: dict[str, list[Container]] = {path: [] for path in self._files}
        for container in self.containers:
            by_file[self._origin.get(container.id, self.path)].append(container)
        records.check_records(self.containers)  # names and IDs unique across the files, as Go's load wants
        for path, items in by_file.items():
            if path == self.path or items or os.path.exists(path):
                records.save_records(path, items)
        self._token = self.lock.record_write()

    def get(self, wanted: str) -> Container:
        """A container by ID, name, layer ID or unique ID prefix (ContainerNotFound, AmbiguousID)."""
        return records.find_container(self.containers, wanted)

    # -- paths -----------------------------------------------------------------------------------------

    def container_dir(self, container_id: str) -> str:
        """``<graphroot>/<driver>-containers/<id>/userdata`` (c/storage's ContainerDirectory)."""
        return os.path.join(self.directory, container_id, "userdata")

    def run_dir(self, container_id: str) -> str:
        """``<runroot>/<driver>-containers/<id>/userdata`` (c/storage's ContainerRunDirectory)."""
        return os.path.join(self.run_directory, container_id, "userdata")

    # -- writes (write lock held) ----------------------------------------------------------------------

    def check_new(self, container_id: str, names: Sequence[str]) -> None:
        """Refuse an invalid or used ID (InvalidID, DuplicateID) and a held name (DuplicateName)."""
        if not records.valid_id(container_id):
            raise InvalidID(container_id)
        for container in self.containers:
            if container.id == container_id:
                raise DuplicateID(container_id)
            for name in names:
                if name in container.names:
                    raise DuplicateName(name, f"container {container.id}")

    def create(self, container_id: str, names: Sequence[str], image: str, layer: str, metadata: str,
               flags: Mapping[str, Any], uid_map: Sequence[IDMap], gid_map: Sequence[IDMap]) -> Container:
        """Add the record, save, then make both ``userdata`` directories (0700). Not idempotent."""
        wanted = _dedupe(names)
        self.check_new(container_id, wanted)
        container = Container(id=container_id, names=wanted, image=image, layer=layer, metadata=metadata,
                              created=records.now_time(), flags=dict(flags), uid_map=list(uid_map),
                              gid_map=list(gid_map))
        self.containers.append(container)
        try:
            self.save()
        except BaseException:
            self.containers.remove(container)
            raise
        for directory in (self.container_dir(container_id), self.run_dir(container_id)):
            os.makedirs(directory, 0o700, exist_ok=True)
        return container

    def set_big_data(self, container: Container, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` in ``<id>/`` (digest: sha256 of the bytes), then save. Idempotent."""
        directory = os.path.join(self.directory, container.id)
        os.makedirs(directory, 0o700, exist_ok=True)
        records.atomic_write(os.path.join(directory, records.big_data_file_name(key)), data)
        if key not in container.big_data_names:
            container.big_data_names.append(key)
        container.big_data_sizes[key] = len(data)
        container.big_data_digests[key] = "sha256:" + hashlib.sha256(data).hexdigest()
        self.save()

    def big_data(self, container: Container, key: str) -> bytes:
        """The bytes stored under ``key`` (FileNotFoundError when absent). Read-only."""
        with open(os.path.join(self.directory, container.id, records.big_data_file_name(key)), "rb") as handle:
            return handle.read()

    def set_names(self, container: Container, names: Sequence[str]) -> None:
        """Replace the container's names; a name another container holds is refused (DuplicateName)."""
        wanted = _dedupe(names)
        for other in self.containers:
            held = next((name for name in wanted if other is not container and name in other.names), None)
            if held is not None:
                raise DuplicateName(held, f"container {other.id}")
        container.names = wanted
        self.save()

    def set_metadata(self, container: Container, metadata: str) -> None:
        """Replace the container's opaque metadata string, then save. Idempotent."""
        container.metadata = metadata
        self.save()

    def orphan_dirs(self) -> list[str]:
        """``<id>/`` directories (graph root and run root) of containers no record names (lock held)."""
        known = {container.id for container in self.containers}
        found: list[str] = []
        for directory in (self.directory, self.run_directory):
            try:
                names = sorted(os.listdir(directory))
            except FileNotFoundError:
                continue
            found += [os.path.join(directory, name) for name in names
                      if records.valid_id(name) and name not in known and os.path.isdir(os.path.join(directory, name))]
        return found

    def delete(self, container: Container) -> None:
        """Drop the record and save, then remove ``<id>/`` under the graph root and the run root.

        The record goes first: a process killed after it leaves only
        directories nobody names, never a record whose directories are gone.
        """
        self.containers.remove(container)
        self._origin.pop(container.id, None)
        self.save()
        for directory in (self.directory, self.run_directory):
            shutil.rmtree(os.path.join(directory, container.id), ignore_errors=True)
