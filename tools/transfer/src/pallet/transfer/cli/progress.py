"""Progress of a copy on the terminal, as skopeo prints it.

The engine reports events (pallet.oci.copy.progress); this renders them:
skopeo's lines when stdout is not a terminal, the same lines with sizes,
"skipped: already exists" and a final rate on a terminal, nothing with -q.
Events may come from several threads at once: writes are serialised.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

from pallet.oci.digest import Digest


def human_size(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.1f}{unit}" if unit != "B" else f"{int(size)}B"
        size /= 1024
    return f"{size:.1f}GiB"


class LineProgress:
    """skopeo's copy lines; on a terminal, with sizes and rates."""

    def __init__(self, out: TextIO | None = None, *, detailed: bool | None = None) -> None:
        self._out = out or sys.stdout
        self._detailed = self._out.isatty() if detailed is None else detailed
        self._lock = threading.Lock()
        self._started: dict[Digest, float] = {}

    def _line(self, text: str) -> None:
        with self._lock:
            self._out.write(text + "\n")
            self._out.flush()

    def copy_started(self, *, index: bool) -> None:
        self._line("Getting image list signatures" if index else "Getting image source signatures")

    def instances_started(self, count: int, total: int) -> None:
        self._line(f"Copying {count} of {total} images in list")

    def instance_started(self, digest: Digest, position: int, count: int) -> None:
        self._line(f"Copying image {digest} ({position}/{count})")
        self._line("Getting image source signatures")

    def blob_started(self, digest: Digest, size: int, *, is_config: bool) -> None:
        self._started[digest] = time.monotonic()
        if not self._detailed:
            self._line(f"Copying {'config' if is_config else 'blob'} {digest}")

    def blob_progress(self, digest: Digest, copied: int) -> None:
        pass

    def blob_skipped(self, digest: Digest, size: int, *, is_config: bool, reason: str) -> None:
        kind = "config" if is_config else "blob"
        if self._detailed:
            what = "already exists" if reason == "exists" else reason
            self._line(f"Copying {kind} {digest.hex[:12]} skipped: {what}")
        else:
            self._line(f"Copying {kind} {digest}")

    def blob_done(self, digest: Digest, stored: Digest, size: int) -> None:
        if not self._detailed:
            return
        elapsed = max(time.monotonic() - self._started.pop(digest, time.monotonic()), 1e-6)
        self._line(f"Copying blob {digest.hex[:12]} done  {human_size(size)} ({human_size(size / elapsed)}/s)")

    def manifest_written(self, digest: Digest, media_type: str, *, instance: bool) -> None:
        self._line("Writing manifest to image destination")
        self._line("Storing signatures")

    def index_written(self, digest: Digest, media_type: str) -> None:
        self._line("Writing manifest list to image destination")
        self._line("Storing list signatures")
