"""What one ``copy_image`` call shares between its steps."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from pallet.oci.copy.options import CopyOptions
from pallet.oci.copy.progress import ProgressSink
from pallet.oci.transports.base import ImageDestination, ImageSource


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
