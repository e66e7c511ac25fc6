"""What a layout's manifests reference: completeness checks and reachability.

An entry of ``index.json`` is a root. An image manifest (OCI or Docker)
references its config and layers; an index (OCI index or Docker manifest
list) references its manifests, which are followed in turn. An OCI manifest
or index may also have a ``subject`` (the manifest it is a signature,
SBOM... of): it is kept when present but not required to be.

Manifests are read through the blob store, so each one is checked against
the size and digest of the descriptor that reached it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pallet.oci import mediatypes
from pallet.oci.digest import Digest
from pallet.oci.errors import BlobUnknown, SizeMismatch
from pallet.oci.layout.blobs import BlobStore
from pallet.oci.manifest import parse_manifest
from pallet.oci.spec.docker import DockerManifestList
from pallet.oci.spec.image import Descriptor, ImageIndex, ImageManifest

__all__ = ["Children", "check_complete", "children_of", "reachable"]


@dataclass(frozen=True, slots=True)
class Children:
    """The descriptors a manifest or index references."""

    required: tuple[Descriptor, ...]
    """Config and layers of a manifest, entries of an index: the layout must hold them."""
    subject: Descriptor | None = None
    """The manifest this one refers to; kept if present, not required."""


def has_children(descriptor: Descriptor) -> bool:
    """True when the descriptor is a manifest or index whose blob references others."""
    media_type = descriptor.media_type
    return mediatypes.is_manifest(media_type) or mediatypes.is_index(media_type) or mediatypes.is_schema1(media_type)


def children_of(descriptor: Descriptor, raw: bytes) -> Children:
    """The references of the manifest or index ``raw`` that ``descriptor`` describes.

    Raises MalformedManifest, UnsupportedMediaType or Schema1Unsupported (from
    ``pallet.oci.manifest.parse_manifest``) when the blob cannot be read as
    its media type.
    """
    model = parse_manifest(raw, descriptor.media_type).model
    if isinstance(model, ImageIndex):
        return Children(model.manifests, model.subject)
    if isinstance(model, DockerManifestList):
        return Children(model.manifests)
    if isinstance(model, ImageManifest):
        return Children((model.config, *model.layers), model.subject)
    return Children((model.config, *model.layers))


def may_be_absent(descriptor: Descriptor) -> bool:
    """True for a non-distributable layer with URLs: tools (skopeo) may leave it out of a layout."""
    return mediatypes.is_nondistributable(descriptor.media_type) and bool(descriptor.urls)


def check_complete(descriptor: Descriptor, blobs: BlobStore) -> None:
    """Raise unless the layout holds every blob ``descriptor`` needs, recursively.

    Manifests and indexes are read and verified (SizeMismatch,
    DigestMismatch); other blobs must be present (BlobUnknown) with the size
    their descriptor gives (SizeMismatch). Non-distributable layers with URLs
    may be absent; subjects are not required.
    """
    pending = [(descriptor, "index.json")]
    seen: set[Digest] = set()
    while pending:
        current, parent = pending.pop()
        if current.digest in seen:
            continue
        seen.add(current.digest)
        if has_children(current):
            raw = _read_manifest(current, blobs, parent)
            children = children_of(current, raw)
            parent_name = f"{current.media_type} {current.digest}"
            pending.extend((child, parent_name) for child in reversed(children.required))  # in document order
        else:
            _check_present(current, blobs, parent)


def reachable(roots: Iterable[Descriptor], blobs: BlobStore) -> set[Digest]:
    """The digests of every blob reachable from ``roots`` (held by the layout or not).

    A manifest the layout does not hold ends its branch. A manifest that is
    held but cannot be read raises (DigestMismatch, MalformedManifest...): its
    references are unknown, so no caller may assume anything is unreachable.
    """
    pending = list(roots)
    found: set[Digest] = set()
    while pending:
        current = pending.pop()
        if current.digest in found:
            continue
        found.add(current.digest)
        if not has_children(current) or blobs.size(current.digest) is None:
            continue
        children = children_of(current, blobs.read(current.digest, current.size))
        pending.extend(children.required)
        if children.subject is not None:
            pending.append(children.subject)
    return found


def _where(blobs: BlobStore, parent: str) -> str:
    return f"{blobs.root} (referenced by {parent})"


def _read_manifest(descriptor: Descriptor, blobs: BlobStore, parent: str) -> bytes:
    if blobs.size(descriptor.digest) is None:
        raise BlobUnknown(str(descriptor.digest), _where(blobs, parent))
    return blobs.read(descriptor.digest, descriptor.size)


def _check_present(descriptor: Descriptor, blobs: BlobStore, parent: str) -> None:
    size = blobs.size(descriptor.digest)
    if size is None:
        if may_be_absent(descriptor):
            return
        raise BlobUnknown(str(descriptor.digest), _where(blobs, parent))
    if size != descriptor.size:
        raise SizeMismatch(descriptor.size, size)
