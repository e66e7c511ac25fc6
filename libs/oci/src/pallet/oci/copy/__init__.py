"""The copy engine: ``copy_image`` moves an image between any two transports (``skopeo copy``).

- ``engine``: ``copy_image`` (``wanted_platform``, re-exported, is ``pallet.oci.image``'s);
- ``options``: ``CopyOptions`` (skopeo's flags);
- ``result``: ``CopyResult`` and ``BlobOutcome``;
- ``progress``: the ``ProgressSink`` the engine reports to;
- ``policy``: policy.json (``Policy``, ``load_policy``);
- ``single`` / ``multiple``: one image / an index;
- ``blobs``: the per-blob pipeline; ``compression``: detection and streaming recompression;
- ``manifest_convert``: choosing and converting manifest formats;
- ``gate``: ``BlobGate``, for copies that run at the same time into one repository.

Temporary failures are retried with ``pallet.oci.retry.with_retries``.
"""

from __future__ import annotations

from pallet.oci.copy.engine import copy_image
from pallet.oci.copy.gate import BlobGate
from pallet.oci.copy.options import CopyOptions
from pallet.oci.copy.policy import Policy, load_policy
from pallet.oci.copy.progress import NullProgress, ProgressSink
from pallet.oci.copy.result import BlobOutcome, CopyResult
from pallet.oci.image import wanted_platform

__all__ = [
    "BlobGate",
    "BlobOutcome",
    "CopyOptions",
    "CopyResult",
    "NullProgress",
    "Policy",
    "ProgressSink",
    "copy_image",
    "load_policy",
    "wanted_platform",
]
