"""The spec types of pallet.oci (pydantic models).

- ``pallet.oci.spec.image``: OCI image-spec 1.1 (Descriptor, Platform,
  ImageManifest, ImageIndex, ImageConfig, ExecutionConfig, RootFS, History);
- ``pallet.oci.spec.docker``: Docker image manifest v2 schema 2
  (DockerManifest, DockerManifestList, DockerImageConfig);
- ``pallet.oci.spec.runtime``: OCI runtime-spec 1.1 ``config.json``
  (RuntimeConfig, Process, Mount, Hooks...; the ``linux`` object's models are
  in ``pallet.oci.spec.runtime_linux`` and re-exported by ``runtime``).

The names below are re-exported lazily: importing one submodule does not
build the models of the others.
"""

from __future__ import annotations

from pallet.oci._lazy import lazy_exports

# public name -> submodule that defines it
_EXPORTS: dict[str, str] = {
    "Descriptor": "image",
    "ExecutionConfig": "image",
    "History": "image",
    "ImageConfig": "image",
    "ImageIndex": "image",
    "ImageManifest": "image",
    "Platform": "image",
    "RootFS": "image",
    "DockerContainerConfig": "docker",
    "DockerImageConfig": "docker",
    "DockerManifest": "docker",
    "DockerManifestList": "docker",
    "RuntimeConfig": "runtime",
    "parse_runtime_config": "runtime",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
