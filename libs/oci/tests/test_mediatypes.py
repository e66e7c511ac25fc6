"""pallet.oci.mediatypes: the constants, the groups and the layer compression table."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pallet.oci import mediatypes as mt
from pallet.oci.errors import UnsupportedMediaType


def test_constants_are_the_spec_strings() -> None:
    assert mt.OCI_MANIFEST == "application/vnd.oci.image.manifest.v1+json"
    assert mt.OCI_INDEX == "application/vnd.oci.image.index.v1+json"
    assert mt.OCI_CONFIG == "application/vnd.oci.image.config.v1+json"
    assert mt.OCI_EMPTY == "application/vnd.oci.empty.v1+json"
    assert mt.OCI_LAYOUT_HEADER == "application/vnd.oci.layout.header.v1+json"
    assert mt.DOCKER_MANIFEST == "application/vnd.docker.distribution.manifest.v2+json"
    assert mt.DOCKER_MANIFEST_LIST == "application/vnd.docker.distribution.manifest.list.v2+json"
    assert mt.DOCKER_CONFIG == "application/vnd.docker.container.image.v1+json"
    assert mt.DOCKER_LAYER_GZIP == "application/vnd.docker.image.rootfs.diff.tar.gzip"
    assert mt.DOCKER_SCHEMA1_MANIFEST == "application/vnd.docker.distribution.manifest.v1+json"
    assert mt.DOCKER_SCHEMA1_SIGNED_MANIFEST == "application/vnd.docker.distribution.manifest.v1+prettyjws"


@pytest.mark.parametrize(
    ("media_type", "manifest", "index", "schema1"),
    [
        (mt.OCI_MANIFEST, True, False, False),
        (mt.DOCKER_MANIFEST, True, False, False),
        (mt.OCI_INDEX, False, True, False),
        (mt.DOCKER_MANIFEST_LIST, False, True, False),
        (mt.DOCKER_SCHEMA1_MANIFEST, False, False, True),
        (mt.DOCKER_SCHEMA1_SIGNED_MANIFEST, False, False, True),
        (mt.OCI_CONFIG, False, False, False),
        ("text/plain", False, False, False),
    ],
)
def test_manifest_kinds(media_type: str, manifest: bool, index: bool, schema1: bool) -> None:
    assert mt.is_manifest(media_type) is manifest
    assert mt.is_index(media_type) is index
    assert mt.is_schema1(media_type) is schema1


def test_content_type_parameters_are_ignored() -> None:
    assert mt.base_media_type(" Application/VND.oci.image.index.v1+json ; charset=utf-8") == mt.OCI_INDEX
    assert mt.is_index(f"{mt.OCI_INDEX}; charset=utf-8")


@pytest.mark.parametrize(
    ("media_type", "compression"),
    [
        (mt.OCI_LAYER_TAR, "none"),
        (mt.OCI_LAYER_GZIP, "gzip"),
        (mt.OCI_LAYER_ZSTD, "zstd"),
        (mt.OCI_LAYER_NONDISTRIBUTABLE_TAR, "none"),
        (mt.OCI_LAYER_NONDISTRIBUTABLE_GZIP, "gzip"),
        (mt.OCI_LAYER_NONDISTRIBUTABLE_ZSTD, "zstd"),
        (mt.DOCKER_LAYER_GZIP, "gzip"),
        (mt.DOCKER_LAYER_FOREIGN_GZIP, "gzip"),
    ],
)
def test_layer_compression(media_type: str, compression: str) -> None:
    assert mt.is_layer(media_type)
    assert mt.layer_compression(media_type) == compression


def test_layer_compression_of_a_non_layer_is_refused() -> None:
    with pytest.raises(UnsupportedMediaType, match="unsupported layer media type"):
        mt.layer_compression(mt.OCI_CONFIG)
    assert not mt.is_layer(mt.OCI_EMPTY)


def test_oci_layer_media_type_inverts_layer_compression() -> None:
    for compression in ("none", "gzip", "zstd"):
        for nondistributable in (False, True):
            media_type = mt.oci_layer_media_type(compression, nondistributable=nondistributable)
            assert mt.layer_compression(media_type) == compression
            assert mt.is_nondistributable(media_type) is nondistributable


def test_other_groups() -> None:
    assert mt.is_config(mt.OCI_CONFIG) and mt.is_config(mt.DOCKER_CONFIG)
    assert not mt.is_config(mt.DOCKER_PLUGIN_CONFIG)
    assert mt.is_docker(mt.DOCKER_SCHEMA1_MANIFEST) and not mt.is_docker(mt.OCI_MANIFEST)
    assert set(mt.MANIFEST_ACCEPT) == mt.MANIFESTS


def test_importing_mediatypes_does_not_import_pydantic() -> None:
    code = "import sys, pallet.oci.mediatypes; assert 'pydantic' not in sys.modules, 'pydantic imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
