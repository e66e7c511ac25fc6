"""The image half of the store: images.json and image big data (format doc sections 4.1, 4.2).

Every method expects the caller to hold ``images.lock`` in the mode it
states; none takes a lock itself. Names are unique across images: giving an
image a name another image holds moves the name (as c/storage's
``updateNames`` does); creating an image with a held name is refused.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Sequence

from pallet.storage import records
from pallet.storage.errors import DuplicateID, DuplicateName, InvalidID
from pallet.storage.lockfile import LockFile
from pallet.storage.records import Image


def _dedupe(names: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(name for name in names if name))


def pulled_big_data(config_digest: str, config: bytes, manifest_digest: str, manifest: bytes,
                    list_digest: str = "", list_manifest: bytes = b"") -> list[tuple[str, bytes]]:
    """The big-data items of a pulled image in the order c/image 5.23 writes them (section 4.2).

    The config under its digest string, then the top-level list (when the
    pull went through one) under ``manifest-<list digest>``, then
    ``manifest-<digest>``, then ``manifest``. The first manifest item fills
    the image's ``digest``, so a multi-arch pull shows the list digest.
    """
    items = [(config_digest, config)]
    if list_digest and list_digest != manifest_digest:
        items.append((f"manifest-{list_digest}", list_manifest))
    items += [(f"manifest-{manifest_digest}", manifest), ("manifest", manifest)]
    return items


class ImageStore:
    """images.json of one graph root and the big-data directories beside it, cached with the lock token."""

    def __init__(self, directory: str, lock: LockFile) -> None:
        self.directory = directory
        self.lock = lock
        self.path = os.path.join(directory, "images.json")
        self.images: list[Image] = []
        self._token: bytes | None = None

    def reload_if_changed(self) -> bool:
        """Reload images.json when the lock token changed since our last load or save (lock held)."""
        if not self.lock.modified_since(self._token):
            return False
        self._token = self.lock.last_write()
        self.images = records.load_records(Image, self.path)
        return True

    def forget(self) -> None:
        """Drop the cached token so that the next reload_if_changed reads the file again."""
        self._token = None

    def save(self) -> None:
        """Write images.json atomically, then a fresh token (write lock held)."""
        records.save_records(self.path, self.images)
        self._token = self.lock.record_write()

    def get(self, wanted: str) -> Image:
        """An image by ID (``sha256:`` prefix allowed), name or unique ID prefix (ImageNotFound, AmbiguousID)."""
        if wanted.startswith("sha256:") and records.valid_id(wanted[7:]):
            wanted = wanted[7:]
        return records.find_image(self.images, wanted)

    # -- writes (write lock held) -------------------------------------------------------------------

    def create(self, image_id: str, top_layer: str, names: Sequence[str], metadata: str,
               big_data: Sequence[tuple[str, bytes]], created: str) -> Image:
        """Add an image record with its big data (items in the order given), in one save.

        The big-data files are written first and the record last, so a killed
        process never leaves an image without its manifest (podman 4.3's
        ``images`` fails on such an image); at worst an unreferenced
        ``<id>/`` directory stays, which a later create of that ID reuses.
        Not idempotent: an existing ID raises DuplicateID, a name held by
        another image DuplicateName (move it afterwards with add_names).
        """
        if not records.valid_id(image_id):
            raise InvalidID(image_id)
        if any(image.id == image_id for image in self.images):
            raise DuplicateID(image_id)
        wanted = _dedupe(names)
        for image in self.images:
            for name in wanted:
                if name in image.names:
                    raise DuplicateName(name, image.id)
        image = Image(id=image_id, names=wanted, names_history=list(reversed(wanted)), top_layer=top_layer,
                      metadata=metadata, created=created or records.now_time())
        for key, data in big_data:
            self._put_big_data(image, key, data)
        self.images.append(image)
        self.save()
        return image

    def set_big_data(self, image: Image, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` (file named as makeBigDataBaseName names it), then save. Idempotent."""
        self._put_big_data(image, key, data)
        self.save()

    def _put_big_data(self, image: Image, key: str, data: bytes) -> None:
        """Write the file and note it in the record (not saved). A ``manifest*`` key's digest is the
        manifest digest; the first such item fills ``digest`` when it is empty."""
        directory = os.path.join(self.directory, image.id)
        os.makedirs(directory, 0o700, exist_ok=True)
        records.atomic_write(os.path.join(directory, records.big_data_file_name(key)), data)
        value = "sha256:" + hashlib.sha256(data).hexdigest()
        if key not in image.big_data_names:
            image.big_data_names.append(key)
        image.big_data_sizes[key] = len(data)
        image.big_data_digests[key] = value
        if key.startswith("manifest") and not image.digest:
            image.digest = value

    def big_data(self, image: Image, key: str) -> bytes:
        """The bytes stored under ``key`` (FileNotFoundError when absent). Read-only."""
        with open(os.path.join(self.directory, image.id, records.big_data_file_name(key)), "rb") as handle:
            return handle.read()

    def set_names(self, image: Image, names: Sequence[str]) -> None:
        """Make ``names`` the image's names; each is taken from any other image holding it. Idempotent."""
        wanted = _dedupe(names)
        for other in self.images:
            if other is not image:
                other.names = [name for name in other.names if name not in wanted]
        image.names = wanted
        for name in wanted:
            image.names_history = _dedupe([name, *image.names_history])
        self.save()

    def add_names(self, image: Image, names: Sequence[str]) -> None:
        """Add ``names`` (moved from other images). Idempotent."""
        self.set_names(image, [*image.names, *names])

    def remove_names(self, image: Image, names: Sequence[str]) -> None:
        """Drop ``names`` from the image (its history keeps them). Idempotent."""
        self.set_names(image, [name for name in image.names if name not in names])

    def delete(self, image: Image) -> None:
        """Drop the record and its big-data directory, then save. Layers are the caller's business."""
        self.images.remove(image)
        self.save()
        shutil.rmtree(os.path.join(self.directory, image.id), ignore_errors=True)
