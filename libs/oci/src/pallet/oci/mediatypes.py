"""Media-type constants of the OCI image-spec 1.1 and of Docker's manifests.

Cheap to import: this module imports nothing but the standard library.

Constants are plain ``str``. The helper sets are ``frozenset`` (immutable)
and the functions are pure. A media type given to a helper is compared as
written, except that parameters after ``;`` (as in a Content-Type header,
``application/json; charset=utf-8``) are dropped by :func:`base_media_type`,
which every helper applies first.
"""

from __future__ import annotations

from typing import Literal

# --- OCI image-spec 1.1 -------------------------------------------------------

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYOUT_HEADER = "application/vnd.oci.layout.header.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"

OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
# Non-distributable layers: deprecated in image-spec 1.1 but still readable.
OCI_LAYER_NONDISTRIBUTABLE_TAR = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_NONDISTRIBUTABLE_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_LAYER_NONDISTRIBUTABLE_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"

# --- Docker image manifest v2, schema 2 ---------------------------------------

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_FOREIGN_GZIP = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
DOCKER_PLUGIN_CONFIG = "application/vnd.docker.plugin.v1+json"
# Not in Docker's spec, but written by some tools (and accepted by containers/image).
DOCKER_LAYER_TAR = "application/vnd.docker.image.rootfs.diff.tar"

# --- Docker image manifest v2, schema 1 (deprecated; recognised to be refused) --

DOCKER_SCHEMA1_MANIFEST = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED_MANIFEST = "application/vnd.docker.distribution.manifest.v1+prettyjws"

# --- Groups --------------------------------------------------------------------

#: Single-image manifests this lib can parse.
IMAGE_MANIFESTS: frozenset[str] = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
#: Multi-platform indexes this lib can parse.
INDEXES: frozenset[str] = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
#: Docker schema1 manifests: recognised, always refused.
SCHEMA1_MANIFESTS: frozenset[str] = frozenset({DOCKER_SCHEMA1_MANIFEST, DOCKER_SCHEMA1_SIGNED_MANIFEST})
#: Everything a registry may answer to a manifest request that this lib parses.
MANIFESTS: frozenset[str] = IMAGE_MANIFESTS | INDEXES
#: Image configuration blobs.
CONFIGS: frozenset[str] = frozenset({OCI_CONFIG, DOCKER_CONFIG})

Compression = Literal["none", "gzip", "zstd"]

_LAYER_COMPRESSION: dict[str, Compression] = {
    OCI_LAYER_TAR: "none",
    OCI_LAYER_GZIP: "gzip",
    OCI_LAYER_ZSTD: "zstd",
    OCI_LAYER_NONDISTRIBUTABLE_TAR: "none",
    OCI_LAYER_NONDISTRIBUTABLE_GZIP: "gzip",
    OCI_LAYER_NONDISTRIBUTABLE_ZSTD: "zstd",
    DOCKER_LAYER_GZIP: "gzip",
    DOCKER_LAYER_FOREIGN_GZIP: "gzip",
    DOCKER_LAYER_TAR: "none",
}

#: Layer media types whose blobs are tar archives (compressed or not).
LAYERS: frozenset[str] = frozenset(_LAYER_COMPRESSION)
#: Layers that registries may refuse to store and that are fetched from ``urls``.
NONDISTRIBUTABLE_LAYERS: frozenset[str] = frozenset(
    {
        OCI_LAYER_NONDISTRIBUTABLE_TAR,
        OCI_LAYER_NONDISTRIBUTABLE_GZIP,
        OCI_LAYER_NONDISTRIBUTABLE_ZSTD,
        DOCKER_LAYER_FOREIGN_GZIP,
    }
)

#: The value of an HTTP Accept header for a manifest request, best first.
MANIFEST_ACCEPT: tuple[str, ...] = (OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST)


def base_media_type(media_type: str) -> str:
    """The media type without parameters or surrounding spaces, lowercased.

    ``"application/vnd.oci.image.index.v1+json; charset=utf-8"`` gives
    ``"application/vnd.oci.image.index.v1+json"``.
    """
    return media_type.split(";", 1)[0].strip().lower()


def is_manifest(media_type: str) -> bool:
    """True for a single-image manifest (OCI or Docker schema2), not an index."""
    return base_media_type(media_type) in IMAGE_MANIFESTS


def is_index(media_type: str) -> bool:
    """True for an OCI image index or a Docker manifest list."""
    return base_media_type(media_type) in INDEXES


def is_schema1(media_type: str) -> bool:
    """True for a Docker schema1 manifest, signed or not."""
    return base_media_type(media_type) in SCHEMA1_MANIFESTS


def is_config(media_type: str) -> bool:
    """True for an OCI or Docker image configuration."""
    return base_media_type(media_type) in CONFIGS


def is_layer(media_type: str) -> bool:
    """True for a known layer (tar archive) media type."""
    return base_media_type(media_type) in _LAYER_COMPRESSION


def is_nondistributable(media_type: str) -> bool:
    """True for a non-distributable (OCI) or foreign (Docker) layer."""
    return base_media_type(media_type) in NONDISTRIBUTABLE_LAYERS


def is_docker(media_type: str) -> bool:
    """True for any Docker media type (schema1 and schema2)."""
    return base_media_type(media_type).startswith("application/vnd.docker.")


def layer_compression(media_type: str) -> Compression:
    """The compression of a layer media type: ``"none"``, ``"gzip"`` or ``"zstd"``.

    Raises ``UnsupportedMediaType`` (context "layer") for a media type that is
    not a known layer.
    """
    compression = _LAYER_COMPRESSION.get(base_media_type(media_type))
    if compression is None:
        from pallet.oci.errors import UnsupportedMediaType

        raise UnsupportedMediaType(media_type, context="layer")
    return compression


def oci_layer_media_type(compression: Compression, *, nondistributable: bool = False) -> str:
    """The OCI layer media type for a compression (the inverse of :func:`layer_compression`)."""
    if nondistributable:
        table = {
            "none": OCI_LAYER_NONDISTRIBUTABLE_TAR,
            "gzip": OCI_LAYER_NONDISTRIBUTABLE_GZIP,
            "zstd": OCI_LAYER_NONDISTRIBUTABLE_ZSTD,
        }
    else:
        table = {"none": OCI_LAYER_TAR, "gzip": OCI_LAYER_GZIP, "zstd": OCI_LAYER_ZSTD}
    return table[compression]
