"""What one ``copy_image`` call shares between its steps."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from pallet.oci.copy.options import CopyOptions
from pallet.oci.copy.progress import ProgressSink
from pallet.oci.image import read_instance
from pallet.oci.manifest import AnyManifest, ParsedManifest
from pallet.oci.retry import with_retries
from pallet.oci.spec.image import Descriptor
from pallet.oci.transports.base import ImageDestination, ImageSource

T = TypeVar("T")


@dataclass
class CopySession:
    """The open source and destination, the options, the progress sink, and a cancel flag.

    ``cancelled`` is set when one blob copy fails, so that the others stop
    at their next read instead of running to the end.
    """

    source: ImageSource
    dest: ImageDestination
    options: CopyOptions
    progress: ProgressSink
    cancelled: threading.Event = field(default_factory=threading.Event)

    def parallel_copies(self) -> int:
        """How many blobs may stream at once: 1 unless both ends are thread-safe."""
        if self.dest.has_threadsafe_put_blob() and self.source.has_threadsafe_get_blob():
            return self.options.image_parallel_copies
        return 1

    def retried(self, operation: Callable[[], T], what: str) -> T:
        """``operation()``, tried again on temporary errors as the options say (``retry_times``, ``retry_delay``)."""
        return with_retries(operation, times=self.options.retry_times, delay=self.options.retry_delay, what=what)

    def read_instance(self, entry: Descriptor) -> ParsedManifest[AnyManifest]:
        """The child manifest ``entry`` names, verified (``image.read_instance``), retried."""
        return self.retried(lambda: read_instance(self.source, entry), f"reading the manifest {entry.digest}")
