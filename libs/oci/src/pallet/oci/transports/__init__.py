"""Image transports: ``docker://``, ``oci:``, ``oci-archive:``, ``dir:``,
``docker-archive:``, and whatever other distributions register.

``default_transports()`` returns a ``Transports`` table with the built-in
transports and those of the ``pallet.oci.transports`` entry-point group
(``containers-storage`` from pallet-storage). Each transport's module is
imported only when that transport is first used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from pallet.oci.transports.base import (
    BlobInfo,
    ImageDestination,
    ImageReference,
    ImageSource,
    ImageTransport,
    ReusedBlob,
    SystemContext,
    Transports,
)

ENTRY_POINT_GROUP = "pallet.oci.transports"

# transport name -> module defining TRANSPORT
BUILTIN_TRANSPORTS = {
    "docker": "pallet.oci.transports.docker",
    "oci": "pallet.oci.transports.oci_layout",
    "oci-archive": "pallet.oci.transports.oci_archive",
    "dir": "pallet.oci.transports.directory",
    "docker-archive": "pallet.oci.transports.docker_archive",
}


def _module_loader(module: str) -> Callable[[], ImageTransport]:
    def load() -> ImageTransport:
        transport: ImageTransport = importlib.import_module(module).TRANSPORT
        return transport

    return load


def default_transports(*, plugins: bool = True) -> Transports:
    """A table of the built-in transports, plus the entry-point ones when ``plugins``
    (looked up only when a name is not built in)."""
    table = Transports(discover=_entry_point_transports if plugins else None)
    for name, module in BUILTIN_TRANSPORTS.items():
        table.register(name, _module_loader(module))
    return table


def _entry_point_transports() -> dict[str, Callable[[], ImageTransport]]:
    from importlib.metadata import entry_points

    return {entry.name: entry.load for entry in entry_points(group=ENTRY_POINT_GROUP)}


__all__ = [
    "BUILTIN_TRANSPORTS",
    "ENTRY_POINT_GROUP",
    "BlobInfo",
    "ImageDestination",
    "ImageReference",
    "ImageSource",
    "ImageTransport",
    "ReusedBlob",
    "SystemContext",
    "Transports",
    "default_transports",
]
