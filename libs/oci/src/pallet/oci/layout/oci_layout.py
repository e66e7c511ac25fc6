"""``OciLayout``: an OCI image layout directory (image-spec 1.1, "OCI Image Layout").

    <root>/oci-layout          {"imageLayoutVersion":"1.0.0"}
    <root>/index.json          an OCI image index; its entries are the layout's images
    <root>/blobs/<alg>/<hex>   content-addressed blobs
    <root>/.pallet-tmp/        files being written (Pallet's own; empty when idle)

Invariants kept by every method:

- a file under ``blobs/`` is complete and verified (see ``blobs.py``);
- ``index.json`` is replaced atomically (temp file, fsync, rename), and only
  with entries whose every required blob the layout holds: a layout never
  points at missing blobs (non-distributable layers with URLs excepted);
- nothing is cached: each call reads the files again, so that several
  processes (and skopeo) can share a layout. Pallet processes serialise
  their ``index.json`` updates and ``gc`` with an ``flock`` on the root
  directory; other tools do not take it.
"""

from __future__ import annotations

import json
import os
import stat
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pallet.oci.digest import Digest
from pallet.oci.errors import BlobInUse, BlobUnknown, InvalidLayout, LayoutError, RefUnknown, UnsupportedMediaType
from pallet.oci.layout import graph
from pallet.oci.layout._files import (
    TEMP_DIR_NAME,
    locked,
    make_dirs,
    os_error,
    read_file,
    write_atomically,
)
from pallet.oci.layout.blobs import BlobSource, BlobStore, StoredBlob, as_digest
from pallet.oci.layout.index import (
    LayoutIndex,
    add_entry,
    check_ref_name,
    drop_digest,
    drop_ref,
    empty_index,
    find_ref,
    index_json_bytes,
    named,
    parse_index_json,
    ref_name_of,
    ref_names,
    with_manifests,
)
from pallet.oci.spec.image import Descriptor, ImageIndex

OCI_LAYOUT_FILE = "oci-layout"
INDEX_FILE = "index.json"
IMAGE_LAYOUT_VERSION = "1.0.0"

#: Entries of a directory that ``create`` may find there without refusing it.
_LAYOUT_ENTRIES = frozenset({OCI_LAYOUT_FILE, INDEX_FILE, "blobs", TEMP_DIR_NAME})

#: Temp files older than this (seconds since their last write) are stale for ``gc``.
DEFAULT_TEMP_MAX_AGE = 3600.0


@dataclass(frozen=True, slots=True)
class GcReport:
    """What ``OciLayout.gc`` removed."""

    removed_blobs: tuple[StoredBlob, ...]
    removed_temp_files: tuple[Path, ...]
    temp_bytes_freed: int

    @property
    def removed_digests(self) -> tuple[Digest, ...]:
        return tuple(blob.digest for blob in self.removed_blobs)

    @property
    def blob_bytes_freed(self) -> int:
        return sum(blob.size for blob in self.removed_blobs)

    @property
    def bytes_freed(self) -> int:
        """Blobs and temp files together."""
        return self.blob_bytes_freed + self.temp_bytes_freed


class OciLayout:
    """An OCI image layout on disk. Get one with ``create`` or ``open``.

    Digests may be given as ``Digest`` or as ``"algorithm:hex"`` strings
    (InvalidDigest for a malformed one). Filesystem failures raise
    ``LayoutError`` saying what was being done.
    """

    def __init__(self, root: Path) -> None:
        """Use ``create`` or ``open``: this does not check the directory."""
        self.root = root
        self._blobs = BlobStore(root)

    def __repr__(self) -> str:
        return f"OciLayout({str(self.root)!r})"

    # --- opening -------------------------------------------------------------

    @classmethod
    def create(cls, path: str | os.PathLike[str]) -> OciLayout:
        """Make a new empty layout at ``path`` (and its parents), or open the one there.

        Idempotent: an existing valid layout is opened unchanged. Refuses
        (InvalidLayout) a directory that holds other files, or an invalid
        ``oci-layout``. Completes a layout whose creation was interrupted.
        """
        root = Path(path)
        if root.exists() and not root.is_dir():
            raise InvalidLayout(f"{root} is not a directory")
        make_dirs(root, f"create layout {root}")
        with locked(root, f"lock layout {root}"):
            if not (root / OCI_LAYOUT_FILE).exists():
                _populate(root)
        return cls.open(root)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> OciLayout:
        """Open the layout at ``path``; InvalidLayout unless ``oci-layout`` and ``index.json`` are valid."""
        root = Path(path)
        if not root.is_dir():
            raise InvalidLayout(f"{root} is not a directory")
        _check_layout_file(root)
        layout = cls(root)
        layout.index()
        return layout

    # --- blobs ---------------------------------------------------------------

    def put_blob(
        self,
        source: BlobSource,
        expected_digest: Digest | str | None = None,
        expected_size: int | None = None,
        *,
        algorithm: str = "sha256",
    ) -> StoredBlob:
        """Store a blob from bytes or a stream, verified while it streams; returns its digest and size.

        Constant memory (``CHUNK_SIZE`` at a time). Atomic: on any failure
        (SizeMismatch, DigestMismatch, LayoutError, an error of ``source``)
        nothing is left in ``blobs/``. Idempotent: a blob already held (of
        ``expected_size``, if given) is not read again (``written`` False).
        Without ``expected_digest`` the digest is computed with ``algorithm``.
        """
        digest = None if expected_digest is None else as_digest(expected_digest)
        return self._blobs.put(source, digest, expected_size, algorithm)

    def open_blob(self, digest: Digest | str) -> BinaryIO:
        """The blob's file for reading (close it). Not verified: wrap it in VerifyingReader to check it."""
        return self._blobs.open(as_digest(digest))

    def read_blob(self, digest: Digest | str, expected_size: int | None = None) -> bytes:
        """The whole blob in memory, verified (DigestMismatch, SizeMismatch). For manifests and configs."""
        return self._blobs.read(as_digest(digest), expected_size)

    def has_blob(self, digest: Digest | str) -> bool:
        return self._blobs.size(as_digest(digest)) is not None

    def blob_size(self, digest: Digest | str) -> int:
        """The stored size; BlobUnknown when the layout does not hold the blob."""
        parsed = as_digest(digest)
        size = self._blobs.size(parsed)
        if size is None:
            raise BlobUnknown(str(parsed), str(self.root))
        return size

    def verify_blob(self, digest: Digest | str) -> StoredBlob:
        """Re-hash a stored blob: DigestMismatch when it was corrupted on disk, BlobUnknown when missing."""
        return self._blobs.verify(as_digest(digest))

    def delete_blob(self, digest: Digest | str) -> bool:
        """Remove a blob nothing in ``index.json`` reaches; True if it was there (idempotent).

        Refuses (BlobInUse) a blob an image of the layout still needs:
        remove the ref first, or use ``gc``.
        """
        parsed = as_digest(digest)
        with self._lock("delete blob"):
            if parsed in graph.reachable(self.index().index.manifests, self._blobs):
                raise BlobInUse(str(parsed), f"{self.root}/index.json")
            return self._blobs.delete(parsed) is not None

    def blobs(self) -> list[Digest]:
        """Every blob the layout holds (sha256 and sha512), sorted."""
        return sorted(self._blobs.digests())

    # --- index.json and refs -------------------------------------------------

    def index(self) -> LayoutIndex:
        """``index.json`` as it is now: raw bytes and the parsed index (unknown fields kept).

        InvalidLayout when it is missing or is not a valid OCI image index.
        """
        try:
            raw = read_file(self.root / INDEX_FILE, f"read {self.root}/{INDEX_FILE}")
        except FileNotFoundError:
            raise InvalidLayout(f"{self.root}/{INDEX_FILE} is missing") from None
        return parse_index_json(raw, str(self.root))

    def manifests(self) -> tuple[Descriptor, ...]:
        """Every entry of ``index.json``, named or not, in order."""
        return self.index().index.manifests

    def add_manifest(self, descriptor: Descriptor, ref_name: str | None = None) -> Descriptor:
        """Add an image (manifest or index) to ``index.json``, named ``ref_name``; returns the entry written.

        ``ref_name`` defaults to the descriptor's own ``ref.name`` annotation;
        it must follow the spec's grammar (InvalidRefName). The name moves:
        an entry that had it loses it (see ``index.py``). Raises BlobUnknown
        unless the layout holds the manifest and, recursively, every blob it
        needs; the manifest itself is verified against the descriptor.
        UnsupportedMediaType when the descriptor is not a manifest or index.
        """
        name = ref_name if ref_name is not None else ref_name_of(descriptor)
        if name is not None:
            check_ref_name(name)
        if not graph.has_children(descriptor):
            raise UnsupportedMediaType(descriptor.media_type, context="index.json entry")
        entry = named(descriptor, name)
        with self._lock("update index.json"):
            graph.check_complete(entry, self._blobs)
            current = self.index().index
            self._write_index(with_manifests(current, add_entry(current.manifests, entry)))
        return entry

    def list_refs(self) -> list[str]:
        """The ref names of ``index.json``, in index order, each once."""
        return ref_names(self.manifests())

    def resolve(self, ref_name: str) -> Descriptor:
        """The entry named ``ref_name`` (the first, if a foreign tool wrote several); RefUnknown if none."""
        entry = find_ref(self.manifests(), ref_name)
        if entry is None:
            raise RefUnknown(ref_name, str(self.root))
        return entry

    def remove_ref(self, ref_name: str) -> None:
        """Drop the entries named ``ref_name`` from ``index.json``; RefUnknown if none.

        Blobs stay until ``gc``.
        """
        with self._lock("update index.json"):
            current = self.index().index
            remaining = drop_ref(current.manifests, ref_name)
            if len(remaining) == len(current.manifests):
                raise RefUnknown(ref_name, str(self.root))
            self._write_index(with_manifests(current, remaining))

    def remove_manifest(self, digest: Digest | str) -> int:
        """Drop every entry (named or not) of ``digest``; how many were dropped (idempotent)."""
        parsed = as_digest(digest)
        with self._lock("update index.json"):
            current = self.index().index
            remaining = drop_digest(current.manifests, parsed)
            dropped = len(current.manifests) - len(remaining)
            if dropped:
                self._write_index(with_manifests(current, remaining))
        return dropped

    # --- garbage collection --------------------------------------------------

    def gc(self, temp_max_age: float = DEFAULT_TEMP_MAX_AGE) -> GcReport:
        """Remove every blob ``index.json`` does not reach, and temp files older than ``temp_max_age`` s.

        Reachability follows indexes, manifests, configs, layers and subjects.
        If a reachable manifest cannot be read or parsed, raises before
        removing anything. A blob another process has stored but not yet
        added to ``index.json`` is unreachable: its ``add_manifest`` will
        then fail with BlobUnknown rather than leave the layout incomplete.
        """
        with self._lock("garbage-collect"):
            keep = graph.reachable(self.index().index.manifests, self._blobs)
            removed: list[StoredBlob] = []
            for digest in list(self._blobs.digests()):
                if digest not in keep:
                    size = self._blobs.delete(digest)
                    if size is not None:
                        removed.append(StoredBlob(digest, size))
            temp_files, temp_bytes = self._remove_stale_temp_files(temp_max_age)
        return GcReport(tuple(removed), temp_files, temp_bytes)

    # --- internals -----------------------------------------------------------

    def _lock(self, action: str) -> AbstractContextManager[None]:
        return locked(self.root, f"{action} in {self.root}: lock")

    def _write_index(self, index: ImageIndex) -> None:
        path = self.root / INDEX_FILE
        write_atomically(path, index_json_bytes(index), self._blobs.temp_dir, f"write {path}")

    def _remove_stale_temp_files(self, max_age: float) -> tuple[tuple[Path, ...], int]:
        temp_dir = self._blobs.temp_dir
        try:
            entries = sorted(temp_dir.iterdir())
        except FileNotFoundError:
            return (), 0
        except OSError as error:
            raise os_error(f"list {temp_dir}", error) from error
        cutoff = time.time() - max_age
        removed: list[Path] = []
        freed = 0
        for entry in entries:
            try:
                status = entry.lstat()
                if not stat.S_ISREG(status.st_mode) or status.st_mtime > cutoff:
                    continue
                entry.unlink()
            except FileNotFoundError:
                continue
            except OSError as error:
                raise os_error(f"remove stale temp file {entry}", error) from error
            removed.append(entry)
            freed += status.st_size
        return tuple(removed), freed


def _populate(root: Path) -> None:
    """Make the files of a new layout in ``root``; ``oci-layout`` last, so that a crash leaves no valid layout."""
    foreign = sorted(set(os.listdir(root)) - _LAYOUT_ENTRIES)
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise InvalidLayout(f"{root} is not empty and not an OCI image layout (it holds {shown})")
    temp_dir = root / TEMP_DIR_NAME
    make_dirs(root / "blobs" / "sha256", f"create layout {root}")
    if not (root / INDEX_FILE).exists():
        write_atomically(root / INDEX_FILE, index_json_bytes(empty_index()), temp_dir, f"create {root}/{INDEX_FILE}")
    layout_file = json.dumps({"imageLayoutVersion": IMAGE_LAYOUT_VERSION}, separators=(",", ":")).encode()
    write_atomically(root / OCI_LAYOUT_FILE, layout_file, temp_dir, f"create {root}/{OCI_LAYOUT_FILE}")


def _check_layout_file(root: Path) -> None:
    """InvalidLayout unless ``oci-layout`` is a JSON object with an ``imageLayoutVersion`` 1.x."""
    path = root / OCI_LAYOUT_FILE
    try:
        raw = read_file(path, f"read {path}")
    except FileNotFoundError:
        raise InvalidLayout(f"{root} is not an OCI image layout: {OCI_LAYOUT_FILE} is missing") from None
    try:
        document = json.loads(raw)
    except ValueError as error:
        raise InvalidLayout(f"{path} is not JSON: {error}") from error
    version = document.get("imageLayoutVersion") if isinstance(document, dict) else None
    if not isinstance(version, str):
        raise InvalidLayout(f"{path} has no imageLayoutVersion string")
    if version.split(".")[0] != "1":
        raise InvalidLayout(f"{path}: unsupported imageLayoutVersion {version!r} (1.x is supported)")
