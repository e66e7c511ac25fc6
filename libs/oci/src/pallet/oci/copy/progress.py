"""Progress events of a copy: the engine reports, the CLI renders (skopeo's lines).

The engine never prints. It calls a ``ProgressSink``; blob events come from
the thread that copies each blob: layers may be copied by several threads
at once, so a sink must be thread-safe. A sink must not raise.

Order of events:

- ``copy_started`` once, before anything else (``index`` when several
  images of an index are copied: ``--all`` or ``index-only``);
- for an index: ``instances_started``, then for each image copied
  ``instance_started`` followed by that image's blob events;
- for each blob: ``blob_started``, any number of ``blob_progress``, then
  ``blob_done``; or ``blob_skipped`` alone when the blob is not streamed. A
  blob that is retried starts again with ``blob_started``;
- ``manifest_written`` for each image manifest (the children of an index
  after all their blobs), then, for an index, ``index_written`` last.
"""

from __future__ import annotations

from typing import Protocol

from pallet.oci.digest import Digest


class ProgressSink(Protocol):
    """What the engine tells about a copy (see the module docstring for the order)."""

    def copy_started(self, *, index: bool) -> None:
        """The copy begins: of several images of an index (``index``) or of one image.

        skopeo: "Getting image list signatures" / "Getting image source signatures".
        """

    def instances_started(self, count: int, total: int) -> None:
        """``count`` of the ``total`` images of the index will be copied (0 for index-only).

        skopeo: "Copying 2 of 2 images in list".
        """

    def instance_started(self, digest: Digest, position: int, count: int) -> None:
        """Image ``position`` (from 1) of ``count`` starts; ``digest`` is its manifest's in the source index.

        skopeo: "Copying image sha256:... (1/2)".
        """

    def blob_started(self, digest: Digest, size: int, *, is_config: bool) -> None:
        """A blob starts streaming; ``size`` is -1 when unknown."""

    def blob_progress(self, digest: Digest, copied: int) -> None:
        """``copied`` bytes of the source blob have been read so far (a running total)."""

    def blob_skipped(self, digest: Digest, size: int, *, is_config: bool, reason: str) -> None:
        """The blob is not streamed; ``reason`` is "exists" (the destination holds it),
        "mounted" (the destination got it without a copy) or "foreign" (left at its URLs)."""

    def blob_done(self, digest: Digest, stored: Digest, size: int) -> None:
        """The blob ``digest`` is stored as ``stored`` (another digest when recompressed) of ``size`` bytes."""

    def manifest_written(self, digest: Digest, media_type: str, *, instance: bool) -> None:
        """An image manifest was written; ``instance`` is True for a child of an index."""

    def index_written(self, digest: Digest, media_type: str) -> None:
        """The index was written (last). skopeo: "Writing manifest list to image destination"."""


class NullProgress:
    """A sink that ignores every event (the default)."""

    def copy_started(self, *, index: bool) -> None:
        pass

    def instances_started(self, count: int, total: int) -> None:
        pass

    def instance_started(self, digest: Digest, position: int, count: int) -> None:
        pass

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

    def index_written(self, digest: Digest, media_type: str) -> None:
        pass
