"""The four record kinds of containers/storage 1.43 as dataclasses (format doc sections 2.1, 4.1, 5).

Field names are Python's; the JSON keys and the rules for each field are
in :mod:`pallet.storage.records.codec`. ``extra`` keeps unknown keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

from pallet.storage.records.ids import ZERO_TIME

@dataclass
class IDMap:
    """One ID mapping range (``container_id``, ``host_id``, ``size``)."""

    container_id: int
    host_id: int
    size: int


@dataclass
class Layer:
    """One layers.json record. ``compression``: 0 none, 1 bzip2, 2 gzip, 3 xz, 4 zstd."""

    id: str
    names: list[str] = field(default_factory=list)
    parent: str = ""
    metadata: str = ""
    mount_label: str = ""
    created: str = ZERO_TIME
    compressed_digest: str = ""
    compressed_size: int = 0
    uncompressed_digest: str = ""
    uncompressed_size: int = 0
    compression: int = 0
    uids: list[int] = field(default_factory=list)
    gids: list[int] = field(default_factory=list)
    flags: dict[str, Any] = field(default_factory=dict)
    uid_map: list[IDMap] = field(default_factory=list)
    gid_map: list[IDMap] = field(default_factory=list)
    big_data_names: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def incomplete(self) -> bool:
        """True when a create or delete of this layer was cut off (section 2.3)."""
        return self.flags.get("incomplete") is True


@dataclass
class Image:
    """One images.json record."""

    id: str
    digest: str = ""
    names: list[str] = field(default_factory=list)
    names_history: list[str] = field(default_factory=list)
    top_layer: str = ""
    mapped_top_layers: list[str] = field(default_factory=list)
    metadata: str = ""
    big_data_names: list[str] = field(default_factory=list)
    big_data_sizes: dict[str, int] = field(default_factory=dict)
    big_data_digests: dict[str, str] = field(default_factory=dict)
    created: str = ZERO_TIME
    flags: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def digests(self) -> list[str]:
        """``digest`` plus every distinct manifest-key big-data digest (Go's in-memory ``Digests``)."""
        found = [self.digest] if self.digest else []
        for key in self.big_data_names:
            value = self.big_data_digests.get(key, "")
            if key.startswith("manifest") and value and value not in found:
                found.append(value)
        return found


@dataclass
class Container:
    """One containers.json record."""

    id: str
    names: list[str] = field(default_factory=list)
    image: str = ""
    layer: str = ""
    metadata: str = ""
    big_data_names: list[str] = field(default_factory=list)
    big_data_sizes: dict[str, int] = field(default_factory=dict)
    big_data_digests: dict[str, str] = field(default_factory=dict)
    created: str = ZERO_TIME
    uid_map: list[IDMap] = field(default_factory=list)
    gid_map: list[IDMap] = field(default_factory=list)
    flags: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Mountpoint:
    """One mountpoints.json record (run root): a layer mounted ``count`` times at ``path``."""

    id: str
    path: str = ""
    count: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


Record = Layer | Image | Container | Mountpoint
R = TypeVar("R", Layer, Image, Container, Mountpoint)
