"""Progress events of a copy: the engine reports, the CLI renders.

The engine never prints. It calls a ``ProgressSink`` as blobs move, from
the thread that copies each blob: layers may be copied by several threads
at once, so a sink must be thread-safe. Events for one blob come in order:
``blob_started``, any number of ``blob_progress``, then ``blob_done``; or
``blob_skipped`` alone when the destination already holds the blob. A blob
that is retried starts again with ``blob_started``. A sink must not raise.
"""

from __future__ import annotations

from typing import Protocol

from pallet.oci.digest import Digest


class ProgressSink(Protocol):
    """What the engine tells about a copy (skopeo's "Copying blob ..." lines)."""

    def blob_started(self, digest: Digest, size: int, *, is_config: bool) -> None:
        """A blob starts streaming; ``size`` is -1 when unknown."""

    def blob_progress(self, digest: Digest, copied: int) -> None:
        """``copied`` bytes of the source blob have been read so far (a running total)."""

    def blob_skipped(self, digest: Digest, size: int, *, is_config: bool, reason: str) -> None:
        """The destination already holds the blob; ``reason`` is "exists", "mounted" or "foreign"."""

    def blob_done(self, digest: Digest, stored: Digest, size: int) -> None:
        """The blob ``digest`` is stored as ``stored`` (another digest when recompressed) of ``size`` bytes."""

    def manifest_written(self, digest: Digest, media_type: str, *, instance: bool) -> None:
        """A manifest was written; ``instance`` is True for a child of an index."""


class NullProgress:
    """A sink that ignores every event (the default)."""

    def blob_started(self, digest: Digest, size: int, *, is_config: bool) -> None:
        pass

    def blob_progress(self, digest: Digest, copied: int) -> None:
        pass

    def blob_skipped(self, digest: Digest, size: int, *, is_config: bool, reason: str) -> None:
        pass

    def blob_done(self, digest: Digest, stored: Digest, size: int) -> None:
        pass

    def manifest_written(self, digest: Digest, media_type: str, *, instance: bool) -> None:
        pass
