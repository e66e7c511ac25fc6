"""Caps on what one layer may contain. Every cap is checked before the work it bounds."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """Configurable caps; the defaults accept every real image and bound hostile ones.

    - ``max_entries``: tar members in one layer
    - ``max_file_size``: content bytes of one member
    - ``max_total_size``: uncompressed bytes of the whole stream (trailing bytes included)
    - ``max_name_length``: bytes of a member name or link target (PATH_MAX is 4096)
    - ``max_extension_size``: bytes of one PAX or GNU long-name record block (Go caps it at 1 MiB)
    - ``max_depth``: path components of a name (bounds the recursion of tree removal, too)
    - ``max_xattr_size``: bytes of all xattr values of one member (Linux caps one at 64 KiB)
    """

    max_entries: int = 1_000_000
    max_file_size: int = 64 << 30
    max_total_size: int = 256 << 30
    max_name_length: int = 4096
    max_extension_size: int = 1 << 20
    max_depth: int = 256
    max_xattr_size: int = 1 << 20
