"""The ``oci:`` transport: an image in an OCI image layout directory, as skopeo 1.9 reads and writes it.

``oci:PATH[:REF]``: PATH is the layout's directory, REF the
``org.opencontainers.image.ref.name`` of an entry of its ``index.json``.
PATH ends at the first colon (a path cannot hold one; a ref name may).

- Source: REF selects the first entry of that name (an image manifest or an
  index); without REF the layout must hold exactly one entry (named or not),
  else ``AmbiguousImage``. ``LocalImageNotFound`` when PATH does not exist
  or holds no image, ``RefUnknown`` when REF is not there (both
  ``ImageNotFound``). Manifests are verified against their descriptors;
  blobs are not (the copy engine does).
- Destination: stores OCI manifests and indexes only (as containers/image:
  the copy engine converts Docker manifests); ``ManifestTypeRejected``
  otherwise. Blobs are verified and stored atomically as they come; a
  child manifest is stored as a blob; the top-level manifest is stored as a
  blob and ``commit`` adds it to ``index.json`` (named REF, or unnamed
  without REF). Before ``commit`` no entry of ``index.json`` names the
  image; blobs written by an uncommitted destination stay until ``gc``.
- Delete: drops the entry named REF (or the only entry) and garbage-collects
  the blobs nothing else in the layout reaches.

The layout's own invariants (verified blobs, atomic ``index.json`` updates
under a lock) come from ``pallet.oci.layout.OciLayout``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

from pallet.oci import mediatypes
from pallet.oci.digest import Digest
from pallet.oci.errors import (
    AmbiguousImage,
    LocalImageNotFound,
    ManifestTypeRejected,
    TransportError,
    UnsupportedMediaType,
)
from pallet.oci.layout import OciLayout
from pallet.oci.manifest import parse_manifest
from pallet.oci.spec.image import Descriptor
from pallet.oci.transports._local import resolved_path, split_path_and_ref
from pallet.oci.transports.base import (
    BlobInfo,
    ImageDestination,
    ImageReference,
    ImageSource,
    ImageTransport,
    SystemContext,
)

#: What an ``oci:`` destination stores, preferred first (containers/image's list).
OCI_DESTINATION_TYPES = (mediatypes.OCI_MANIFEST, mediatypes.OCI_INDEX)


class OciLayoutTransport(ImageTransport):
    """``oci:PATH[:REF]``."""

    name = "oci"

    def parse_reference(self, text: str) -> OciLayoutReference:
        parts = split_path_and_ref(self.name, text)
        return OciLayoutReference(parts.path, parts.ref)


@dataclass(frozen=True, eq=False)
class OciLayoutReference(ImageReference):
    """An image in the layout at ``path`` (as typed), named ``ref`` ("" for the only image / unnamed)."""

    path: str
    ref: str = ""

    @property
    def transport(self) -> ImageTransport:
        return TRANSPORT

    def string_within_transport(self) -> str:
        return f"{self.path}:{self.ref}"

    def policy_configuration_identity(self) -> str:
        """The layout's resolved absolute directory (REF is not part of it, as in containers/image)."""
        return resolved_path(self.path)

    def new_source(self, context: SystemContext) -> OciLayoutSource:
        return OciLayoutSource.open(self, Path(self.path), self.ref)

    def new_destination(self, context: SystemContext) -> OciLayoutDestination:
        destination = OciLayoutDestination.create(self, Path(self.path), self.ref)
        destination.compress_plain_layers = not context.oci_accept_uncompressed_layers
        return destination

    def delete(self, context: SystemContext) -> None:
        """Drop the image's entry from ``index.json`` and garbage-collect unreachable blobs."""
        layout = open_existing_layout(Path(self.path), self)
        if self.ref:
            layout.remove_ref(self.ref)
        else:
            layout.remove_manifest(select_image(layout, "", self).digest)
        layout.gc()


def open_existing_layout(root: Path, reference: ImageReference) -> OciLayout:
    """The layout at ``root``; LocalImageNotFound when there is nothing there, InvalidLayout when it is no layout."""
    if not root.exists():
        raise LocalImageNotFound(f"no image at {reference}: {root} does not exist")
    return OciLayout.open(root)


def select_image(layout: OciLayout, ref_name: str, reference: ImageReference) -> Descriptor:
    """The ``index.json`` entry the reference names.

    With ``ref_name``: the first entry of that name (RefUnknown if none).
    Without: the only entry (LocalImageNotFound if none, AmbiguousImage if
    several). UnsupportedMediaType when the entry is not a manifest or index.
    """
    if ref_name:
        entry = layout.resolve(ref_name)
    else:
        entries = layout.manifests()
        if not entries:
            raise LocalImageNotFound(f"no image at {reference}: {layout.root}/index.json lists no image")
        if len(entries) > 1:
            refs = ", ".join(layout.list_refs()) or "none named"
            raise AmbiguousImage(
                f"{layout.root} holds {len(entries)} images: choose one with oci:PATH:REF (refs: {refs})"
            )
        entry = entries[0]
    if not (mediatypes.is_manifest(entry.media_type) or mediatypes.is_index(entry.media_type)):
        raise UnsupportedMediaType(entry.media_type, context=f"{reference} index.json entry")
    return entry


class OciLayoutSource(ImageSource):
    """Reads the image an ``index.json`` entry names; the entry is chosen once, when opened.

    ``get_blob`` opens a new file per call: safe from several threads.
    """

    def __init__(self, reference: ImageReference, layout: OciLayout, descriptor: Descriptor) -> None:
        self._reference = reference
        self._layout = layout
        self._descriptor = descriptor

    @classmethod
    def open(cls, reference: ImageReference, root: Path, ref_name: str) -> OciLayoutSource:
        layout = open_existing_layout(root, reference)
        return cls(reference, layout, select_image(layout, ref_name, reference))

    @property
    def reference(self) -> ImageReference:
        return self._reference

    @property
    def descriptor(self) -> Descriptor:
        """The ``index.json`` entry read (its digest is the top-level manifest's)."""
        return self._descriptor

    def get_manifest(self, instance_digest: Digest | None = None) -> tuple[bytes, str]:
        """The top-level manifest (verified against its entry) or a child (verified against ``instance_digest``)."""
        if instance_digest is None:
            raw = self._layout.read_blob(self._descriptor.digest, self._descriptor.size)
            declared = self._descriptor.media_type
            return raw, mediatypes.base_media_type(declared) or parse_manifest(raw).media_type
        raw = self._layout.read_blob(instance_digest)
        return raw, parse_manifest(raw).media_type

    def get_blob(self, info: BlobInfo) -> tuple[BinaryIO, int]:
        """The blob's file as stored (BlobUnknown when missing; URLs of foreign layers are not fetched)."""
        if info.digest is None:
            raise TransportError(f"{self._reference}: a blob can only be read by digest")
        stream = self._layout.open_blob(info.digest)
        return stream, os.fstat(stream.fileno()).st_size

    def has_threadsafe_get_blob(self) -> bool:
        return True


class OciLayoutDestination(ImageDestination):
    """Writes one image (or index) into a layout; ``commit`` names it in ``index.json``.

    ``put_blob`` is safe from several threads (each blob streams into its own
    temp file); manifests and ``commit`` are called from one thread.
    """

    def __init__(self, reference: ImageReference, layout: OciLayout, ref_name: str) -> None:
        self._reference = reference
        self._layout = layout
        self._ref_name = ref_name
        self._top: Descriptor | None = None
        #: False with skopeo's --dest-oci-accept-uncompressed-layers: plain layers stay plain.
        self.compress_plain_layers = True

    @classmethod
    def create(cls, reference: ImageReference, root: Path, ref_name: str) -> OciLayoutDestination:
        """Open the layout at ``root``, creating it (and parents) if needed.

        InvalidLayout when ``root`` is a non-empty directory that is not a layout.
        """
        return cls(reference, OciLayout.create(root), ref_name)

    @property
    def reference(self) -> ImageReference:
        return self._reference

    @property
    def layout(self) -> OciLayout:
        return self._layout

    def supported_manifest_types(self) -> tuple[str, ...]:
        return OCI_DESTINATION_TYPES

    def desired_layer_compression(self) -> str | None:
        """gzip, as containers/image's ``types.Compress`` asks of uncompressed layers (unless told not to)."""
        return "gzip" if self.compress_plain_layers else None

    def accepts_foreign_layer_urls(self) -> bool:
        return True

    def has_threadsafe_put_blob(self) -> bool:
        return True

    def try_reusing_blob(self, info: BlobInfo, *, can_substitute: bool = False) -> BlobInfo | None:
        if info.digest is None or not self._layout.has_blob(info.digest):
            return None
        size = self._layout.blob_size(info.digest)
        if info.size >= 0 and size != info.size:
            return None  # corrupt or not what was meant: put_blob will replace it
        return replace(info, size=size)

    def put_blob(self, stream: BinaryIO, info: BlobInfo, *, is_config: bool = False) -> BlobInfo:
        expected_size = info.size if info.size >= 0 else None
        stored = self._layout.put_blob(stream, info.digest, expected_size)
        return replace(info, digest=stored.digest, size=stored.size)

    def put_manifest(self, raw: bytes, media_type: str, instance_digest: Digest | None = None) -> None:
        """Store a manifest blob (verified against ``instance_digest`` for a child); the top one is named at commit."""
        parsed = parse_manifest(raw, media_type or None)
        if parsed.media_type not in OCI_DESTINATION_TYPES:
            raise ManifestTypeRejected(
                parsed.media_type, OCI_DESTINATION_TYPES, "oci: layouts store OCI manifests and indexes only"
            )
        if instance_digest is not None:
            self._layout.put_blob(raw, instance_digest, len(raw))
            return
        self._layout.put_blob(raw, parsed.digest, len(raw))
        self._top = parsed.descriptor()

    def commit(self) -> None:
        """Add the top-level manifest to ``index.json`` (BlobUnknown if the image is incomplete)."""
        if self._top is None:
            raise TransportError(f"{self._reference}: commit without a top-level manifest")
        self._layout.add_manifest(self._top, self._ref_name or None)


TRANSPORT = OciLayoutTransport()
