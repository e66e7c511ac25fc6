"""What the caller asks of a copy: ``CopyOptions``, filled and checked in one place.

The CLI turns skopeo's flags into one ``CopyOptions``; the engine reads
nothing else (no globals, no environment). Flags of skopeo 1.9 ``copy`` and
the fields they set:

=================================  =========================================
``--multi-arch system|all|index-only``, ``--all``  ``multi_arch`` (``--all`` is ``"all"``)
``--format oci|v2s2``              ``format``
``--dest-compress-format``         ``dest_compression`` (gzip, zstd, none)
``--dest-compress-level``          ``dest_compression_level``
``--dest-decompress`` (dir:)       ``decompress`` (the same as ``dest_compression="none"``)
``--preserve-digests``             ``preserve_digests``
``--image-parallel-copies``        ``image_parallel_copies``
``--retry-times``                  ``retry_times`` (``retry_delay`` is the first back-off)
``--remove-signatures``            ``remove_signatures``
``--src-*`` / ``--dest-*``         ``source_context`` / ``dest_context``
=================================  =========================================

``blob_gate`` is for callers that run several copies at once (``sync``).

``--digestfile`` is written by the CLI from ``CopyResult.manifest_digest``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pallet.oci.copy.gate import BlobGate
from pallet.oci.mediatypes import Compression
from pallet.oci.transports.base import SystemContext

MultiArch = Literal["system", "all", "index-only"]
ManifestFormat = Literal["oci", "v2s2"]

#: skopeo's default for --image-parallel-copies is 6 (containers/image's maxParallelDownloads).
DEFAULT_PARALLEL_COPIES = 6
_LEVELS: dict[str, range] = {"gzip": range(1, 10), "zstd": range(1, 23)}


@dataclass(frozen=True)
class CopyOptions:
    """The options of one copy; invalid combinations raise ``ValueError`` when made."""

    multi_arch: MultiArch = "system"
    format: ManifestFormat | None = None
    dest_compression: Compression | None = None
    dest_compression_level: int | None = None
    decompress: bool = False
    preserve_digests: bool = False
    image_parallel_copies: int = DEFAULT_PARALLEL_COPIES
    retry_times: int = 0
    retry_delay: float = 1.0
    remove_signatures: bool = False
    source_context: SystemContext = field(default_factory=SystemContext)
    dest_context: SystemContext = field(default_factory=SystemContext)
    #: shared by copies running at the same time (sync): see pallet.oci.copy.gate
    blob_gate: BlobGate | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.multi_arch not in ("system", "all", "index-only"):
            raise ValueError(f"multi_arch must be system, all or index-only, not {self.multi_arch!r}")
        if self.format not in (None, "oci", "v2s2"):
            raise ValueError(f"format must be oci or v2s2, not {self.format!r}")
        if self.dest_compression not in (None, "gzip", "zstd", "none"):
            raise ValueError(f"dest_compression must be gzip, zstd or none, not {self.dest_compression!r}")
        if self.decompress and self.dest_compression not in (None, "none"):
            raise ValueError(f"decompress contradicts dest_compression={self.dest_compression!r}")
        self._check_level()
        if self.image_parallel_copies < 1:
            raise ValueError(f"image_parallel_copies must be at least 1, not {self.image_parallel_copies}")
        if self.retry_times < 0 or self.retry_delay < 0:
            raise ValueError("retry_times and retry_delay cannot be negative")

    def _check_level(self) -> None:
        level = self.dest_compression_level
        if level is None:
            return
        allowed = _LEVELS.get(self.requested_compression or "")
        if allowed is None:
            raise ValueError("dest_compression_level needs dest_compression gzip or zstd")
        if level not in allowed:
            raise ValueError(f"{self.requested_compression} level must be {allowed.start}-{allowed.stop - 1}, not {level}")

    @property
    def requested_compression(self) -> Compression | None:
        """The layer compression the user asked for explicitly, if any (``decompress`` is ``"none"``)."""
        return "none" if self.decompress else self.dest_compression
