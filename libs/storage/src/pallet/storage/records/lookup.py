"""Finding a record as c/storage resolves a user's string: ID, name, (containers: layer ID), ID prefix."""

from __future__ import annotations

from collections.abc import Iterable

from pallet.storage.errors import AmbiguousID, ContainerNotFound, ImageNotFound, LayerNotFound, NotFound
from pallet.storage.records.model import Container, Image, Layer, R


def lookup(records: Iterable[R], wanted: str, not_found: type[NotFound] = NotFound, by_layer: bool = False) -> R:
    """The record ``wanted`` names, as c/storage resolves it: ID, then a name, (containers: then the
    layer ID), then a unique ID prefix. Raises ``not_found`` or :class:`AmbiguousID`."""
    items = list(records)
    for record in items:
        if record.id == wanted:
            return record
    if wanted:
        for record in items:
            if wanted in getattr(record, "names", ()):
                return record
        if by_layer:
            for record in items:
                if getattr(record, "layer", None) == wanted:
                    return record
    matches = [r for r in items if r.id.startswith(wanted)] if wanted and " " not in wanted else []
    if len(matches) > 1:
        raise AmbiguousID(wanted, len(matches))
    if not matches:
        raise not_found(wanted)
    return matches[0]


def find_layer(layers: Iterable[Layer], wanted: str) -> Layer:
    """A layer by ID, name or unique ID prefix (LayerNotFound, AmbiguousID)."""
    return lookup(layers, wanted, LayerNotFound)


def find_image(images: Iterable[Image], wanted: str) -> Image:
    """An image by ID, name or unique ID prefix (ImageNotFound, AmbiguousID)."""
    return lookup(images, wanted, ImageNotFound)


def find_container(containers: Iterable[Container], wanted: str) -> Container:
    """A container by ID, name, layer ID or unique ID prefix (ContainerNotFound, AmbiguousID)."""
    return lookup(containers, wanted, ContainerNotFound, by_layer=True)


def images_by_digest(images: Iterable[Image], digest: str) -> list[Image]:
    """The images whose digests (``digest`` plus manifest big-data digests) include ``digest``."""
    return [image for image in images if digest in image.digests]
