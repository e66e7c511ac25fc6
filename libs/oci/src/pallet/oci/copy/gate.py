"""``BlobGate``: one copy at a time per blob and destination repository.

Concurrent copies into one registry repository (``sync`` copies several tags
of a repository at once) must not upload or mount the same blob into that
repository at the same time: distribution 2.8 rewrites the repository's blob
link non-atomically and then answers 404 for a blob that was just stored.
Copies of *different* blobs into one repository are safe, and so are copies
of one blob into different repositories.

Copies that share a gate (``CopyOptions.blob_gate``) hold it for a blob while
they check whether the destination has it and, if not, upload it; the second
copy then finds the blob present and skips it. Without a gate (one
``copy_image``), nothing is serialised.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from pallet.oci.digest import Digest
from pallet.oci.transports.base import ImageReference


def destination_key(reference: ImageReference) -> str:
    """What identifies where a blob lands: the repository for registry-style names, else the reference."""
    named = reference.docker_reference()
    if named is not None:
        return f"{reference.transport.name}:{named.name}"
    return f"{reference.transport.name}:{reference.string_within_transport()}"


class BlobGate:
    """Keyed locks on (destination, digest); an entry lives only while somebody holds or awaits it."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._entries: dict[tuple[str, Digest], tuple[threading.Lock, int]] = {}

    @contextmanager
    def hold(self, destination: str, digest: Digest) -> Iterator[None]:
        key = (destination, digest)
        with self._guard:
            lock, users = self._entries.get(key, (threading.Lock(), 0))
            self._entries[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                lock, users = self._entries[key]
                if users == 1:
                    del self._entries[key]
                else:
                    self._entries[key] = (lock, users - 1)

    def __len__(self) -> int:
        """How many (destination, blob) entries are held or awaited now."""
        with self._guard:
            return len(self._entries)
