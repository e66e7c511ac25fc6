"""The ``dir:`` transport: an image as plain files in a directory, as skopeo 1.9 reads and writes it.

``dir:PATH`` (the whole text is the path, colons included). The files:

    version                      "Directory Transport Version: 1.1\\n"
    manifest.json                the top-level manifest (any type), as given
    <hex>                        each blob (config and layers), named by its digest's hex
    <hex>.manifest.json          each child manifest of an index
    signature-<n>                signatures of the top-level manifest (n from 1)
    <hex>.signature-<n>          signatures of a child manifest

- Source: reads any manifest type; a child manifest is verified against its
  instance digest; blobs are not verified (the copy engine does).
  ``LocalImageNotFound`` when PATH or its ``manifest.json`` is missing.
- Destination: refuses a non-empty directory without the ``version`` file
  above (it may hold someone's data), like containers/image. Files are
  written, verified, into a staging directory inside PATH; ``commit``
  removes the previous image (everything else in PATH) and moves the new
  files in, ``manifest.json`` last. Without ``commit`` the staging directory
  is removed and PATH keeps what it held (a PATH this destination made is
  removed again). Layers are stored as they come: decompressing is the
  copy engine's option, not the transport's.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pallet.oci._fsutil import fsync_dir
from pallet.oci.digest import Digest
from pallet.oci.errors import BlobUnknown, LocalImageNotFound, TransportError
from pallet.oci.manifest import parse_manifest
from pallet.oci.transports._local import (
    check_manifest_digest,
    manifest_media_type,
    os_failure,
    require_path,
    resolved_path,
    write_verified,
)
from pallet.oci.transports.base import (
    BlobInfo,
    ImageDestination,
    ImageReference,
    ImageSource,
    ImageTransport,
    SystemContext,
)

VERSION_FILE = "version"
VERSION = b"Directory Transport Version: 1.1\n"
MANIFEST_FILE = "manifest.json"
_STAGING_PREFIX = ".pallet-dir-"


def blob_file(digest: Digest) -> str:
    """The file name of a blob: its digest's hex (the algorithm is not written, as containers/image)."""
    return digest.encoded


def manifest_file(instance_digest: Digest | None) -> str:
    return MANIFEST_FILE if instance_digest is None else f"{instance_digest.encoded}.manifest.json"


def signature_file(number: int, instance_digest: Digest | None) -> str:
    """The file of the ``number``-th signature (counted from 1)."""
    prefix = "" if instance_digest is None else f"{instance_digest.encoded}."
    return f"{prefix}signature-{number}"


class DirectoryTransport(ImageTransport):
    """``dir:PATH``."""

    name = "dir"

    def parse_reference(self, text: str) -> DirectoryReference:
        return DirectoryReference(require_path(self.name, text))


@dataclass(frozen=True, eq=False)
class DirectoryReference(ImageReference):
    """The image in the directory ``path`` (as typed)."""

    path: str

    @property
    def transport(self) -> ImageTransport:
        return TRANSPORT

    def string_within_transport(self) -> str:
        return self.path

    def policy_configuration_identity(self) -> str:
        return resolved_path(self.path)

    def new_source(self, context: SystemContext) -> DirectorySource:
        return DirectorySource.open(self)

    def new_destination(self, context: SystemContext) -> DirectoryDestination:
        return DirectoryDestination.create(self)


class DirectorySource(ImageSource):
    """Reads the files of a ``dir:`` image; each ``get_blob`` opens its own file (thread-safe)."""

    def __init__(self, reference: DirectoryReference) -> None:
        self._reference = reference
        self._root = Path(reference.path)

    @classmethod
    def open(cls, reference: DirectoryReference) -> DirectorySource:
        root = Path(reference.path)
        if not root.is_dir():
            raise LocalImageNotFound(f"no image at {reference}: {root} is not a directory")
        if not (root / MANIFEST_FILE).is_file():
            raise LocalImageNotFound(f"no image at {reference}: {root} holds no {MANIFEST_FILE}")
        return cls(reference)

    @property
    def reference(self) -> ImageReference:
        return self._reference

    def get_manifest(self, instance_digest: Digest | None = None) -> tuple[bytes, str]:
        path = self._root / manifest_file(instance_digest)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise LocalImageNotFound(
                f"no manifest {instance_digest or ''} in {self._reference}: {path} is missing"
            ) from None
        except OSError as error:
            raise os_failure(f"read {path}", error) from error
        if instance_digest is not None:
            check_manifest_digest(raw, instance_digest)
        return raw, manifest_media_type(raw)

    def get_blob(self, info: BlobInfo) -> tuple[BinaryIO, int]:
        if info.digest is None:
            raise TransportError(f"{self._reference}: a blob can only be read by digest")
        path = self._root / blob_file(info.digest)
        try:
            stream = path.open("rb")
        except FileNotFoundError:
            raise BlobUnknown(str(info.digest), str(self._root)) from None
        except OSError as error:
            raise os_failure(f"open {path}", error) from error
        return stream, os.fstat(stream.fileno()).st_size

    def has_threadsafe_get_blob(self) -> bool:
        return True

    def get_signatures(self, instance_digest: Digest | None = None) -> list[bytes]:
        signatures: list[bytes] = []
        while True:
            path = self._root / signature_file(len(signatures) + 1, instance_digest)
            try:
                signatures.append(path.read_bytes())
            except FileNotFoundError:
                return signatures
            except OSError as error:
                raise os_failure(f"read {path}", error) from error


class DirectoryDestination(ImageDestination):
    """Writes into a staging directory inside PATH; ``commit`` replaces PATH's image with it.

    ``put_blob`` is safe from several threads (a temp file per blob).
    """

    def __init__(self, reference: DirectoryReference, staging: Path, made_root: bool) -> None:
        self._reference = reference
        self._root = Path(reference.path)
        self._staging: Path | None = staging
        self._made_root = made_root

    @classmethod
    def create(cls, reference: DirectoryReference) -> DirectoryDestination:
        """Check PATH may be written (TransportError otherwise), make it if missing, and a staging directory in it."""
        root = Path(reference.path)
        made_root = not root.exists()
        try:
            if made_root:
                root.mkdir(mode=0o755, parents=True)
            else:
                _check_overwritable(root, reference)
            staging = Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=root))
        except OSError as error:
            raise os_failure(f"initialize {reference}", error) from error
        return cls(reference, staging, made_root)

    @property
    def reference(self) -> ImageReference:
        return self._reference

    def supports_signatures(self) -> bool:
        return True

    def has_threadsafe_put_blob(self) -> bool:
        return True

    def try_reusing_blob(self, info: BlobInfo, *, can_substitute: bool = False) -> BlobInfo | None:
        if info.digest is None:
            return None
        try:
            size = (self._staged() / blob_file(info.digest)).stat().st_size
        except FileNotFoundError:
            return None
        if info.size >= 0 and size != info.size:
            return None
        return BlobInfo(info.digest, size, info.media_type, info.urls, info.annotations)

    def put_blob(self, stream: BinaryIO, info: BlobInfo, *, is_config: bool = False) -> BlobInfo:
        staging = self._staged()
        try:
            return write_verified(stream, info, staging, lambda digest: staging / blob_file(digest))
        except OSError as error:
            raise os_failure(f"write a blob to {self._reference}", error) from error

    def put_manifest(self, raw: bytes, media_type: str, instance_digest: Digest | None = None) -> None:
        """Store any manifest type; a child must hash to ``instance_digest`` (DigestMismatch)."""
        if instance_digest is not None:
            check_manifest_digest(raw, instance_digest)
        parse_manifest(raw, media_type or None)  # refuse what no reader could use
        self._write_staged(manifest_file(instance_digest), raw)

    def put_signatures(self, signatures: list[bytes], instance_digest: Digest | None = None) -> None:
        for number, signature in enumerate(signatures, start=1):
            self._write_staged(signature_file(number, instance_digest), signature)

    def commit(self) -> None:
        """Replace PATH's previous image (all its other content) with the staged files, ``manifest.json`` last."""
        staging = self._staged()
        if not (staging / MANIFEST_FILE).exists():
            raise TransportError(f"{self._reference}: commit without a top-level manifest")
        try:
            _remove_all_but(self._root, staging.name)
            _write_file(self._root / VERSION_FILE, VERSION)
            for entry in sorted(staging.iterdir()):
                if entry.name != MANIFEST_FILE:
                    os.replace(entry, self._root / entry.name)
            os.replace(staging / MANIFEST_FILE, self._root / MANIFEST_FILE)
            staging.rmdir()
            fsync_dir(self._root)
        except OSError as error:
            raise os_failure(f"commit {self._reference}", error) from error
        self._staging = None
        self._made_root = False

    def close(self) -> None:
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None
        if self._made_root:
            try:
                self._root.rmdir()  # only when empty: nobody else wrote there meanwhile
            except OSError:
                pass
            self._made_root = False

    def _staged(self) -> Path:
        if self._staging is None:
            raise TransportError(f"{self._reference}: the destination is closed or committed")
        return self._staging

    def _write_staged(self, name: str, data: bytes) -> None:
        try:
            _write_file(self._staged() / name, data)
        except OSError as error:
            raise os_failure(f"write {name} to {self._reference}", error) from error


def _check_overwritable(root: Path, reference: DirectoryReference) -> None:
    """TransportError unless ``root`` is an empty directory or holds a ``dir:`` image (its version file)."""
    if not root.is_dir():
        raise TransportError(f"{reference}: {root} exists and is not a directory")
    if not any(root.iterdir()):
        return
    try:
        version = (root / VERSION_FILE).read_bytes()
    except FileNotFoundError:
        version = None
    if version != VERSION:
        raise TransportError(
            f"{reference}: {root} is not empty and is not a containers image directory (no {VERSION_FILE} file "
            "of this transport): refusing to overwrite what it holds"
        )


def _remove_all_but(root: Path, keep: str) -> None:
    for entry in root.iterdir():
        if entry.name == keep:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _write_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same directory, fsync, rename)."""
    fd, temp_name = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp_name, 0o644)
        os.replace(temp_name, path)
    except BaseException:
        try:
            os.unlink(temp_name)
        except OSError:
            pass
        raise


TRANSPORT = DirectoryTransport()
