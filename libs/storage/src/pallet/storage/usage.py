"""Disk usage at the storage level: what ``podman system df -v`` shows per image, container and layer.

Sizes are counted as containers/storage 1.43 counts them:

- a layer with a ``diff-digest`` is its ``diff-size`` (``layerStore.Size``);
- an image is the sizes of every layer of its chain (top and mapped top
  layers, then parents, each once) plus its big-data sizes (``store.ImageSize``,
  what ``podman images`` shows as Size); its shared size is that of the layers
  another image's chain also has; unique = size - shared;
- a container's read-write size is its layer's own changes: the file sizes
  (not blocks; directories not counted; a hard-linked inode once) of the
  overlay upper directory (``directory.Size``), or for vfs the files added or
  changed against the parent's full copy (``archive.ChangesSize``).

Where podman 4.3's ``system df`` differs (measured): its per-image shared size
is that of a *parent image* (libimage compares image histories; two images
merely sharing a base layer show 0 shared there, here the base layer's size),
and its images total adds every image's size, so shared layers count twice;
``images_size`` here counts each layer once, as the disk does. Per-image
``size`` and the container count are the same.

Read-only; the caller holds the read locks (a :class:`~pallet.storage.store.ReadView`).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from pallet.storage.records import Container, Image, Layer


@dataclass(frozen=True)
class LayerUsage:
    """One layer: its size and who uses it (images whose chain has it, the container whose layer it is)."""

    id: str
    parent: str
    size: int
    images: tuple[str, ...] = ()
    container: str = ""


@dataclass(frozen=True)
class ImageUsage:
    """One image: ``size`` = chain + big data; ``shared_size`` is in other images' chains too."""

    id: str
    names: tuple[str, ...]
    size: int
    shared_size: int
    unique_size: int
    containers: int


@dataclass(frozen=True)
class ContainerUsage:
    """One container: the size of its read-write layer's own changes."""

    id: str
    names: tuple[str, ...]
    image: str
    layer: str
    rw_size: int


@dataclass(frozen=True)
class DiskUsage:
    """The whole store. ``images_size`` counts each layer once; ``reclaimable`` is the unique size of
    images no container uses plus the size of layers nothing references."""

    images: tuple[ImageUsage, ...] = ()
    containers: tuple[ContainerUsage, ...] = ()
    layers: tuple[LayerUsage, ...] = ()
    images_size: int = 0
    containers_size: int = 0
    reclaimable: int = 0
    unreferenced_layers: tuple[str, ...] = field(default=())


def tree_size(top: str) -> int:
    """The sum of ``st_size`` of every non-directory under ``top`` (each inode once), as Go's directory.Size."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for path in _walk(top):
        info = os.lstat(path)
        if (info.st_dev, info.st_ino) in seen or stat.S_ISDIR(info.st_mode):
            continue
        seen.add((info.st_dev, info.st_ino))
        total += info.st_size
    return total


def changes_size(tree: str, parent: str) -> int:
    """The sizes of the non-directories in ``tree`` that ``parent`` lacks or has differently (mode,
    owner, size, mtime, device), each inode once: Go's naive ChangesDirs + ChangesSize."""
    seen: set[int] = set()
    total = 0
    for path in _walk(tree):
        info = os.lstat(path)
        if stat.S_ISDIR(info.st_mode) or info.st_ino in seen:
            continue
        try:
            old = os.lstat(os.path.join(parent, os.path.relpath(path, tree)))
        except FileNotFoundError:
            old = None
        if old is None or _key(old) != _key(info):
            if info.st_nlink > 1:
                seen.add(info.st_ino)
            total += info.st_size
    return total


def _key(info: os.stat_result) -> tuple[int, ...]:
    return info.st_mode, info.st_uid, info.st_gid, info.st_size, info.st_mtime_ns, info.st_rdev


def _walk(top: str) -> Iterable[str]:
    """Every path under ``top`` (not ``top`` itself), symlinks never followed; a missing ``top``: none."""
    for root, dirs, files in os.walk(top, followlinks=False):
        for name in dirs + files:
            yield os.path.join(root, name)


def _chain(top_layers: Sequence[str], by_id: dict[str, Layer]) -> list[str]:
    """The layer IDs of an image's chain: its top (and mapped) layers, then their parents, each once."""
    found: list[str] = []
    queue = [layer_id for layer_id in top_layers if layer_id]
    while queue:
        layer_id = queue.pop(0)
        if layer_id in found or layer_id not in by_id:
            continue
        found.append(layer_id)
        queue.append(by_id[layer_id].parent)
    return found


def disk_usage(layers: Sequence[Layer], images: Sequence[Image], containers: Sequence[Container],
               rw_size: Callable[[Layer], int], referenced: Callable[[str], bool]) -> DiskUsage:
    """The usage of a store from its records; ``rw_size`` measures a layer without a diff-digest (a
    container's), ``referenced`` tells whether a layer is kept by something outside the records (a mount)."""
    by_id = {layer.id: layer for layer in layers}
    sizes = {layer.id: layer.uncompressed_size if layer.uncompressed_digest else rw_size(layer) for layer in layers}
    chains = {image.id: _chain([image.top_layer, *image.mapped_top_layers], by_id) for image in images}
    users: dict[str, list[str]] = {}
    for image_id, chain in chains.items():
        for layer_id in chain:
            users.setdefault(layer_id, []).append(image_id)
    owner = {container.layer: container.id for container in containers}
    image_usage = []
    for image in images:
        chain = chains[image.id]
        big = sum(image.big_data_sizes.get(key, 0) for key in image.big_data_names)
        size = sum(sizes[layer_id] for layer_id in chain) + big
        shared = sum(sizes[layer_id] for layer_id in chain if len(users[layer_id]) > 1)
        image_usage.append(ImageUsage(image.id, tuple(image.names), size, shared, size - shared,
                                      sum(1 for container in containers if container.image == image.id)))
    container_usage = tuple(ContainerUsage(c.id, tuple(c.names), c.image, c.layer, sizes.get(c.layer, 0))
                            for c in containers)
    kept = {layer_id for chain in chains.values() for layer_id in chain}
    kept |= {layer_id for layer_id in _chain([*owner, *(lid for lid in by_id if referenced(lid))], by_id)}
    unreferenced = tuple(layer.id for layer in layers if layer.id not in kept)
    images_size = sum(sizes[layer_id] for layer_id in {lid for chain in chains.values() for lid in chain})
    images_size += sum(usage.size - sum(sizes[lid] for lid in chains[usage.id]) for usage in image_usage)
    return DiskUsage(
        images=tuple(image_usage),
        containers=container_usage,
        layers=tuple(LayerUsage(layer.id, layer.parent, sizes[layer.id], tuple(users.get(layer.id, ())),
                                owner.get(layer.id, "")) for layer in layers),
        images_size=images_size,
        containers_size=sum(usage.rw_size for usage in container_usage),
        reclaimable=sum(u.unique_size for u in image_usage if not u.containers) + sum(sizes[i] for i in unreferenced),
        unreferenced_layers=unreferenced,
    )
