"""The OCI image layout (image-spec 1.1): a directory of blobs, ``index.json`` and refs.

- ``oci_layout``: ``OciLayout`` (create/open, blobs, refs, gc) and ``GcReport``;
- ``blobs``: the verified, atomic blob store (``StoredBlob``);
- ``index``: ``index.json`` parsing and the ref rules (``LayoutIndex``);
- ``graph``: what manifests reference (completeness, reachability).
"""

from __future__ import annotations

from pallet.oci.layout.blobs import CHUNK_SIZE, StoredBlob
from pallet.oci.layout.index import REF_NAME_ANNOTATION, LayoutIndex, is_valid_ref_name
from pallet.oci.layout.oci_layout import GcReport, OciLayout

__all__ = [
    "CHUNK_SIZE",
    "REF_NAME_ANNOTATION",
    "GcReport",
    "LayoutIndex",
    "OciLayout",
    "StoredBlob",
    "is_valid_ref_name",
]
