"""The spec types of pallet.oci (pydantic models; importing this imports pydantic).

- ``pallet.oci.spec.image``: OCI image-spec 1.1 (Descriptor, Platform,
  ImageManifest, ImageIndex, ImageConfig...);
- ``pallet.oci.spec.docker``: Docker image manifest v2 schema 2 (DockerManifest,
  DockerManifestList, DockerImageConfig);
- ``pallet.oci.spec.runtime``: OCI runtime-spec 1.1 ``config.json`` (RuntimeConfig...).

The most used names are re-exported here.
"""

from __future__ import annotations

from pallet.oci.spec.image import (
    Descriptor,
    ExecutionConfig,
    History,
    ImageConfig,
    ImageIndex,
    ImageManifest,
    Platform,
    RootFS,
)

__all__ = [
    "Descriptor",
    "ExecutionConfig",
    "History",
    "ImageConfig",
    "ImageIndex",
    "ImageManifest",
    "Platform",
    "RootFS",
]
