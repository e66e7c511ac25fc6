"""The ``oci-archive:`` transport: an OCI image layout in a tar file, as skopeo 1.9 reads and writes it.

``oci-archive:PATH[:REF]``: PATH is the tar file, REF a ref name of the
layout inside (parsed and resolved as for ``oci:``).

- Source: the archive (tar, possibly gzip/bzip2/xz compressed) is extracted
  into a new directory under ``SystemContext.tmp_dir`` (or the system's),
  refusing absolute names, ``..``, links and special files
  (``UnsafeArchive``); the image is then read as from ``oci:``. The
  directory is removed on ``close``. ``LocalImageNotFound`` when PATH does
  not exist.
- Destination: a new layout in a temp directory receives the image as an
  ``oci:`` destination would; ``commit`` tars it (sorted, mtime 0, owner
  0:0) into a temp file beside PATH and renames it over PATH (a pipe or
  device is written into instead): an existing archive is replaced whole
  (as skopeo does: it keeps no other image).
  Without ``commit`` PATH is untouched.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pallet.oci.digest import Digest
from pallet.oci.errors import LocalImageNotFound
from pallet.oci.layout import OciLayout
from pallet.oci.transports._local import AtomicOutput, make_temp_dir, resolved_path, split_path_and_ref
from pallet.oci.transports._tar import safe_extract, write_tree_tar
from pallet.oci.transports.base import (
    BlobInfo,
    ImageDestination,
    ImageReference,
    ImageSource,
    ImageTransport,
    SystemContext,
)
from pallet.oci.transports.oci_layout import OCI_DESTINATION_TYPES, OciLayoutDestination, OciLayoutSource

#: Pallet's own temp directory inside a layout: never archived.
_LAYOUT_TEMP_DIR = ".pallet-tmp"


class OciArchiveTransport(ImageTransport):
    """``oci-archive:PATH[:REF]``."""

    name = "oci-archive"

    def parse_reference(self, text: str) -> OciArchiveReference:
        parts = split_path_and_ref(self.name, text)
        return OciArchiveReference(parts.path, parts.ref)


@dataclass(frozen=True, eq=False)
class OciArchiveReference(ImageReference):
    """An image in the OCI archive at ``path``, named ``ref`` ("" for the only image / unnamed)."""

    path: str
    ref: str = ""

    @property
    def transport(self) -> ImageTransport:
        return TRANSPORT

    def string_within_transport(self) -> str:
        return f"{self.path}:{self.ref}"

    def policy_configuration_identity(self) -> str:
        """The archive's resolved absolute path (REF is not part of it, as in containers/image)."""
        return resolved_path(self.path)

    def new_source(self, context: SystemContext) -> OciArchiveSource:
        return OciArchiveSource.open(self, context)

    def new_destination(self, context: SystemContext) -> OciArchiveDestination:
        return OciArchiveDestination.create(self, context)


class OciArchiveSource(ImageSource):
    """An ``oci:`` source on the archive extracted into a temp directory (removed on close)."""

    def __init__(self, reference: ImageReference, inner: OciLayoutSource, staging: Path) -> None:
        self._reference = reference
        self._inner = inner
        self._staging: Path | None = staging

    @classmethod
    def open(cls, reference: OciArchiveReference, context: SystemContext) -> OciArchiveSource:
        archive = Path(reference.path)
        if not archive.exists():
            raise LocalImageNotFound(f"no image at {reference}: {archive} does not exist")
        staging = make_temp_dir(context, "oci-archive")
        try:
            layout_dir = staging / "layout"
            layout_dir.mkdir()
            safe_extract(archive, layout_dir)
            inner = OciLayoutSource.open(reference, layout_dir, reference.ref)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return cls(reference, inner, staging)

    @property
    def reference(self) -> ImageReference:
        return self._reference

    def get_manifest(self, instance_digest: Digest | None = None) -> tuple[bytes, str]:
        return self._inner.get_manifest(instance_digest)

    def get_blob(self, info: BlobInfo) -> tuple[BinaryIO, int]:
        return self._inner.get_blob(info)

    def has_threadsafe_get_blob(self) -> bool:
        return True

    def close(self) -> None:
        self._inner.close()
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None


class OciArchiveDestination(ImageDestination):
    """An ``oci:`` destination on a temp layout; ``commit`` turns it into the archive at PATH."""

    def __init__(
        self, reference: OciArchiveReference, inner: OciLayoutDestination, staging: Path, context: SystemContext
    ) -> None:
        self._reference = reference
        self._inner = inner
        self._staging: Path | None = staging
        self._context = context

    @classmethod
    def create(cls, reference: OciArchiveReference, context: SystemContext) -> OciArchiveDestination:
        staging = make_temp_dir(context, "oci-archive")
        try:
            layout = OciLayout.create(staging / "layout")
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        inner = OciLayoutDestination(reference, layout, reference.ref)
        inner.compress_plain_layers = not context.oci_accept_uncompressed_layers
        return cls(reference, inner, staging, context)

    @property
    def reference(self) -> ImageReference:
        return self._reference

    def supported_manifest_types(self) -> tuple[str, ...]:
        return OCI_DESTINATION_TYPES

    def desired_layer_compression(self) -> str | None:
        return self._inner.desired_layer_compression()

    def accepts_foreign_layer_urls(self) -> bool:
        return True

    def has_threadsafe_put_blob(self) -> bool:
        return True

    def try_reusing_blob(self, info: BlobInfo, *, can_substitute: bool = False) -> BlobInfo | None:
        return self._inner.try_reusing_blob(info, can_substitute=can_substitute)

    def put_blob(self, stream: BinaryIO, info: BlobInfo, *, is_config: bool = False) -> BlobInfo:
        return self._inner.put_blob(stream, info, is_config=is_config)

    def put_manifest(self, raw: bytes, media_type: str, instance_digest: Digest | None = None) -> None:
        self._inner.put_manifest(raw, media_type, instance_digest)

    def commit(self) -> None:
        """Name the image in the temp layout, then replace PATH with its tar atomically."""
        self._inner.commit()
        out = AtomicOutput.create(Path(self._reference.path), self._context)
        try:
            write_tree_tar(self._inner.layout.root, out.file, skip=frozenset({_LAYOUT_TEMP_DIR}))
            out.publish()
        finally:
            out.discard()

    def close(self) -> None:
        self._inner.close()
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None


TRANSPORT = OciArchiveTransport()
