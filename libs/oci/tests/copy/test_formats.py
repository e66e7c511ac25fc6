"""Manifest formats: kept when the destination takes them, converted OCI ↔ Docker schema2 otherwise."""

from __future__ import annotations

import pytest

from pallet.oci import mediatypes as mt
from pallet.oci.copy import Policy, copy_image
from pallet.oci.digest import Digest
from pallet.oci.errors import ConversionError, ManifestTypeRejected
from pallet.oci.transports.base import SystemContext
from pallet_testing.memory_transport import MemoryDestination, MemoryReference

OCI_ONLY = (mt.OCI_MANIFEST, mt.OCI_INDEX)
DOCKER_ONLY = (mt.DOCKER_MANIFEST, mt.DOCKER_MANIFEST_LIST)


def test_the_source_format_is_kept_byte_for_byte_when_the_destination_takes_it(test_images, memory, run_copy):
    image = test_images.multi_layer
    source, dest = memory(), memory()
    source.add_image("src", image)
    result = run_copy(source, dest)
    assert str(result.manifest_digest) == image.digest
    assert dest.images["dst"].manifest == image.manifest.data
    assert [o.action for o in result.blobs] == ["copied"] * 4
    assert all(not o.recompressed for o in result.blobs)


def test_oci_to_docker_schema2_changes_media_types_only(test_images, memory, run_copy, stored):
    image = test_images.single_layer
    source, dest = memory(), memory()
    source.add_image("src", image)
    result = run_copy(source, dest, format="v2s2")
    manifest = stored(dest)
    assert manifest["mediaType"] == mt.DOCKER_MANIFEST == result.manifest_media_type
    assert manifest["config"] == {"mediaType": mt.DOCKER_CONFIG, "digest": image.config.digest, "size": image.config.size}
    assert manifest["layers"] == [
        {"mediaType": mt.DOCKER_LAYER_GZIP, "digest": image.layers[0].digest, "size": image.layers[0].size}
    ]
    assert dest.blob_bytes(image.config.digest) == image.config.data  # diff_ids and all: the same bytes
    assert str(result.manifest_digest) != image.digest


def test_docker_schema2_to_oci_when_the_destination_stores_only_oci(test_images, memory, run_copy, stored):
    image = test_images.docker_schema2
    source, dest = memory(), memory(supported_manifest_types=OCI_ONLY)
    source.add_image("src", image)
    run_copy(source, dest)
    manifest = stored(dest)
    assert manifest["mediaType"] == mt.OCI_MANIFEST
    assert manifest["config"]["mediaType"] == mt.OCI_CONFIG
    assert manifest["config"]["digest"] == image.config.digest
    assert [layer["mediaType"] for layer in manifest["layers"]] == [mt.OCI_LAYER_GZIP]
    assert [layer["digest"] for layer in manifest["layers"]] == [image.layers[0].digest]


def test_round_trip_oci_docker_oci_gives_the_same_descriptors(test_images, memory, run_copy, stored):
    image = test_images.multi_layer
    source, middle, dest = memory(), memory(), memory()
    source.add_image("src", image)
    run_copy(source, middle, format="v2s2")
    run_copy(middle, dest, "dst", "back", format="oci")
    back = stored(dest, "back")
    original = stored(source, "src")
    assert back["config"] == original["config"]
    assert back["layers"] == original["layers"]


def test_preserve_digests_refuses_a_conversion_before_copying_anything(test_images, memory, run_copy):
    source, dest = memory(), memory(supported_manifest_types=OCI_ONLY)
    source.add_image("src", test_images.docker_schema2)
    with pytest.raises(ConversionError, match="preserve-digests"):
        run_copy(source, dest, preserve_digests=True)
    assert not source.get_blob_calls
    assert "dst" not in dest.images
    with pytest.raises(ConversionError, match="preserve-digests"):
        run_copy(source, memory(), format="oci", preserve_digests=True)


def test_preserve_digests_copies_unchanged_when_no_conversion_is_needed(test_images, memory, run_copy):
    image = test_images.single_layer
    source, dest = memory(), memory(desired_compression="zstd")
    source.add_image("src", image)
    result = run_copy(source, dest, preserve_digests=True)
    assert str(result.manifest_digest) == image.digest


def test_zstd_layers_cannot_go_into_docker_schema2(test_images, memory, run_copy):
    source = memory()
    source.add_image("src", test_images.single_layer_zstd)
    with pytest.raises(ConversionError, match="zstd"):
        run_copy(source, memory(), format="v2s2")
    with pytest.raises(ConversionError, match="zstd"):
        run_copy(source, memory(supported_manifest_types=DOCKER_ONLY))
    assert not source.get_blob_calls


def test_a_docker_image_recompressed_to_zstd_becomes_oci(test_images, memory, run_copy, stored):
    source, dest = memory(), memory()
    source.add_image("src", test_images.docker_schema2)
    result = run_copy(source, dest, dest_compression="zstd")
    assert result.manifest_media_type == mt.OCI_MANIFEST
    assert [layer["mediaType"] for layer in stored(dest)["layers"]] == [mt.OCI_LAYER_ZSTD]


def test_a_forced_format_the_destination_does_not_store_is_refused(test_images, memory, run_copy):
    source = memory()
    source.add_image("src", test_images.single_layer)
    with pytest.raises(ManifestTypeRejected):
        run_copy(source, memory(supported_manifest_types=OCI_ONLY), format="v2s2")
    assert not source.get_blob_calls


class _RefusingDestination(MemoryDestination):
    """Claims to store Docker manifests, but refuses them when they arrive (as some registries do)."""

    def put_manifest(self, raw: bytes, media_type: str, instance_digest: Digest | None = None) -> None:
        if media_type == mt.DOCKER_MANIFEST:
            raise ManifestTypeRejected(media_type, (mt.OCI_MANIFEST,), "refused at put time")
        super().put_manifest(raw, media_type, instance_digest)


class _RefusingReference(MemoryReference):
    def new_destination(self, context: SystemContext) -> MemoryDestination:
        return _RefusingDestination(self)


def test_a_destination_refusing_a_type_at_put_time_gets_the_next_one(test_images, memory, stored):
    source, dest = memory(), memory(supported_manifest_types=(mt.DOCKER_MANIFEST, mt.OCI_MANIFEST))
    source.add_image("src", test_images.docker_schema2)
    result = copy_image(source.reference("src"), _RefusingReference(dest, "dst"), policy=Policy.accept_anything())
    assert result.manifest_media_type == mt.OCI_MANIFEST
    assert stored(dest)["mediaType"] == mt.OCI_MANIFEST
    assert [kind for kind, _ in dest.events].count("put_blob") == 2  # the blobs went once
