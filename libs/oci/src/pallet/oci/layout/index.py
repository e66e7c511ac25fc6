"""``index.json`` and refs: parsing, and the pure edits behind ``OciLayout``'s ref methods.

A ref is the ``org.opencontainers.image.ref.name`` annotation of an entry of
``index.json``'s ``manifests``. Entries without it are kept (they are images
too, and they keep their blobs from garbage collection) but cannot be resolved
by name. Edits follow containers/image (skopeo, podman) so that a layout
written by either tool reads the same in the other:

- naming an entry takes the name away from any other entry that had it; that
  entry stays, unnamed, with its other annotations, unless another entry
  still lists its digest (then it is dropped: an image is listed once);
- an unnamed entry with the digest of the new one is replaced by it, and an
  unnamed new entry whose digest is already listed changes nothing (adding
  the same image twice does not duplicate it);
- removing a ref drops the entries that carry it (as ``skopeo delete`` and
  umoci do); their blobs stay until ``OciLayout.gc()``.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from pallet.oci import mediatypes
from pallet.oci.digest import Digest
from pallet.oci.errors import InvalidLayout, InvalidRefName, ManifestError
from pallet.oci.manifest import parse_index
from pallet.oci.spec.image import Descriptor, ImageIndex

REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"

# image-spec annotations.md: ref ::= component ("/" component)*,
# component ::= alphanum (separator alphanum)*, separator ::= [-._:@+] | "--".
_COMPONENT = r"[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*"
_REF_NAME = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")


@dataclass(frozen=True, slots=True)
class LayoutIndex:
    """``index.json`` as read: the exact bytes and the parsed index (unknown fields kept)."""

    raw: bytes
    index: ImageIndex

    @property
    def digest(self) -> Digest:
        """The sha256 digest of the raw bytes."""
        return Digest.from_bytes(self.raw)


def is_valid_ref_name(name: str) -> bool:
    """True when ``name`` follows the image-spec grammar of ``ref.name``."""
    return _REF_NAME.fullmatch(name) is not None


def check_ref_name(name: str) -> None:
    """Raise InvalidRefName unless ``name`` follows the spec's grammar."""
    if not is_valid_ref_name(name):
        raise InvalidRefName(
            name,
            "an OCI ref name is components of [A-Za-z0-9] joined by one of -._:@+ or --, separated by /",
        )


def parse_index_json(raw: bytes, where: str) -> LayoutIndex:
    """Parse ``index.json``; InvalidLayout (naming the field) when it is not an OCI image index.

    The cause (``__cause__``) is the MalformedManifest or UnsupportedMediaType
    that ``pallet.oci.manifest.parse_index`` raised.
    """
    try:
        model = parse_index(raw, mediatypes.OCI_INDEX).model
    except ManifestError as error:
        raise InvalidLayout(f"{where}/index.json: {error}") from error
    if not isinstance(model, ImageIndex):  # parse_index with OCI_INDEX declared gives an ImageIndex
        raise InvalidLayout(f"{where}/index.json: not an OCI image index")
    return LayoutIndex(raw, model)


def empty_index() -> ImageIndex:
    """The index of a new layout: no manifests."""
    return ImageIndex.model_validate({"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX, "manifests": []})


def index_json_bytes(index: ImageIndex) -> bytes:
    """The bytes written to ``index.json``: compact JSON, unknown fields kept."""
    return index.to_json_bytes()


def with_manifests(index: ImageIndex, manifests: tuple[Descriptor, ...]) -> ImageIndex:
    """``index`` with other entries (and ``mediaType`` set, as the spec recommends)."""
    return index.model_copy(update={"manifests": manifests, "media_type": mediatypes.OCI_INDEX})


def ref_name_of(descriptor: Descriptor) -> str | None:
    """The entry's ref name, or None when it has none."""
    return (descriptor.annotations or {}).get(REF_NAME_ANNOTATION) or None


def named(descriptor: Descriptor, ref_name: str | None) -> Descriptor:
    """``descriptor`` with its ref annotation set to ``ref_name`` (removed for None).

    Other annotations are kept; an annotation map left empty is dropped.
    """
    annotations = dict(descriptor.annotations or {})
    annotations.pop(REF_NAME_ANNOTATION, None)
    if ref_name is not None:
        annotations[REF_NAME_ANNOTATION] = ref_name
    return descriptor.model_copy(update={"annotations": annotations or None})


def find_ref(manifests: tuple[Descriptor, ...], ref_name: str) -> Descriptor | None:
    """The first entry named ``ref_name`` (as containers/image resolves), or None."""
    for entry in manifests:
        if ref_name_of(entry) == ref_name:
            return entry
    return None


def ref_names(manifests: tuple[Descriptor, ...]) -> list[str]:
    """The names of the entries, in index order, each once."""
    names = (ref_name_of(entry) for entry in manifests)
    return list(dict.fromkeys(name for name in names if name is not None))


def add_entry(manifests: tuple[Descriptor, ...], descriptor: Descriptor) -> tuple[Descriptor, ...]:
    """The entries after adding ``descriptor`` (named or not); see the module's rules."""
    ref_name = ref_name_of(descriptor)
    if ref_name is None:
        listed = any(entry.digest == descriptor.digest for entry in manifests)
        return manifests if listed else (*manifests, descriptor)
    entries = list(manifests)
    lost_name = {position for position, entry in enumerate(entries) if ref_name_of(entry) == ref_name}
    for position in lost_name:
        entries[position] = named(entries[position], None)
    for position, entry in enumerate(entries):
        if entry.digest == descriptor.digest and ref_name_of(entry) is None:
            entries[position] = descriptor
            break
    else:
        entries.append(descriptor)
    return _drop_redundant(entries, lost_name)


def _drop_redundant(entries: list[Descriptor], lost_name: set[int]) -> tuple[Descriptor, ...]:
    """``entries`` without those that lost their name while another entry still lists their digest."""
    listed = Counter(entry.digest for entry in entries)
    kept: list[Descriptor] = []
    for position, entry in enumerate(entries):
        if position in lost_name and ref_name_of(entry) is None and listed[entry.digest] > 1:
            listed[entry.digest] -= 1
            continue
        kept.append(entry)
    return tuple(kept)


def drop_ref(manifests: tuple[Descriptor, ...], ref_name: str) -> tuple[Descriptor, ...]:
    """The entries without those named ``ref_name``."""
    return tuple(entry for entry in manifests if ref_name_of(entry) != ref_name)


def drop_digest(manifests: tuple[Descriptor, ...], digest: Digest) -> tuple[Descriptor, ...]:
    """The entries without those (named or not) of ``digest``."""
    return tuple(entry for entry in manifests if entry.digest != digest)
