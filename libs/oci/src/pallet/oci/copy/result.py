"""What a copy did: ``CopyResult`` and one ``BlobOutcome`` per blob."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pallet.oci.digest import Digest

#: copied: streamed to the destination; skipped: the destination had it;
#: mounted: the destination got it without a copy (a registry's cross-repository mount);
#: foreign: a non-distributable layer left at its URLs.
BlobAction = Literal["copied", "skipped", "mounted", "foreign"]


@dataclass(frozen=True, slots=True)
class BlobOutcome:
    """One blob of the copy.

    ``source_digest`` is the blob as the source described it; ``digest``,
    ``size`` and ``media_type`` describe it as the destination holds it
    (another digest when it was recompressed). ``diff_id`` is the digest of
    the uncompressed tar when the engine saw it (it decompressed the layer),
    else None.
    """

    source_digest: Digest
    digest: Digest
    size: int
    media_type: str
    action: BlobAction
    is_config: bool = False
    diff_id: Digest | None = None

    @property
    def recompressed(self) -> bool:
        return self.digest != self.source_digest


@dataclass(frozen=True, slots=True)
class CopyResult:
    """The outcome of ``copy_image``.

    ``manifest_digest`` / ``manifest`` / ``manifest_media_type``: the
    top-level manifest written (an index with ``--all``/``index-only``).
    ``instance_digests``: the child manifests written under it, in index order.
    ``bytes_written``: bytes of blobs streamed to the destination;
    ``bytes_skipped``: bytes of blobs it already held.
    """

    manifest_digest: Digest
    manifest_media_type: str
    manifest: bytes
    blobs: tuple[BlobOutcome, ...]
    instance_digests: tuple[Digest, ...] = ()

    @property
    def bytes_written(self) -> int:
        return sum(blob.size for blob in self.blobs if blob.action == "copied")

    @property
    def bytes_skipped(self) -> int:
        return sum(blob.size for blob in self.blobs if blob.action in ("skipped", "mounted"))
