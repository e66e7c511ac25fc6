"""Indexes: one image for this system (or the --override-* one), all of them, or the index alone."""

from __future__ import annotations

import json

import pytest

from pallet.oci import mediatypes as mt
from pallet.oci.copy import wanted_platform
from pallet.oci.errors import ConversionError, ManifestTypeRejected, NoMatchingPlatform
from pallet.oci.platform import host_platform
from pallet.oci.transports.base import SystemContext


def images_by_arch(index):
    return {image.platform["architecture"]: image for image in index.images}


def test_system_copies_the_image_of_the_override_arch(test_images, memory, run_copy):
    index = test_images.two_platform_index
    source, dest = memory(), memory()
    source.add_image("src", index)
    context = SystemContext(architecture_choice="arm64")
    result = run_copy(source, dest, source_context=context)
    arm64 = images_by_arch(index)["arm64"]
    assert str(result.manifest_digest) == arm64.digest
    assert dest.images["dst"].manifest == arm64.manifest.data
    assert not dest.images["dst"].instances
    amd64_layer = images_by_arch(index)["amd64"].layers[0].digest
    assert amd64_layer not in source.get_blob_calls


def test_system_copies_the_host_image_by_default(test_images, memory, run_copy):
    if str(host_platform()) not in ("linux/amd64", "linux/arm64"):
        pytest.skip(f"the test index has no image for {host_platform()}")
    index = test_images.two_platform_index
    source, dest = memory(), memory()
    source.add_image("src", index)
    result = run_copy(source, dest)
    expected = images_by_arch(index)[host_platform().architecture]
    assert str(result.manifest_digest) == expected.digest


def test_no_image_for_the_platform(test_images, memory, run_copy):
    source, dest = memory(), memory()
    source.add_image("src", test_images.two_platform_index)
    with pytest.raises(NoMatchingPlatform, match="s390x"):
        run_copy(source, dest, source_context=SystemContext(architecture_choice="s390x"))
    assert not source.get_blob_calls


def test_wanted_platform_follows_containers_image():
    host = host_platform()
    assert wanted_platform(SystemContext()) == host
    assert str(wanted_platform(SystemContext(architecture_choice="arm", variant_choice="v6"))) == f"{host.os}/arm/v6"
    assert str(wanted_platform(SystemContext(os_choice="windows", architecture_choice="amd64"))) == "windows/amd64"


def test_all_copies_every_image_and_the_index_unchanged(test_images, memory, run_copy):
    index = test_images.two_platform_index
    source, dest = memory(), memory()
    source.add_image("src", index)
    result = run_copy(source, dest, multi_arch="all")
    assert str(result.manifest_digest) == index.digest
    stored = dest.images["dst"]
    assert stored.manifest == index.index.data
    assert set(stored.instances) == {image.digest for image in index.images}
    assert [str(d) for d in result.instance_digests] == [image.digest for image in index.images]
    assert {blob.digest for blob in index.blobs()} <= set(dest.blobs)
    puts = [(kind, str(detail)) for kind, detail in dest.events if kind in ("put_blob", "put_manifest")]
    for image in index.images:  # each child: all its blobs, then its manifest (as skopeo orders them)
        manifest_at = puts.index(("put_manifest", image.digest))
        assert all(puts.index(("put_blob", blob.digest)) < manifest_at for blob in image.blobs())
    assert puts.index(("put_manifest", index.images[0].digest)) < puts.index(("put_blob", index.images[1].config.digest))
    assert puts[-1] == ("put_manifest", index.digest)


def test_all_converted_to_docker_rewrites_the_index(test_images, memory, run_copy):
    index = test_images.two_platform_index
    source, dest = memory(), memory()
    source.add_image("src", index)
    result = run_copy(source, dest, multi_arch="all", format="v2s2")
    stored = dest.images["dst"]
    document = json.loads(stored.manifest)
    assert document["mediaType"] == mt.DOCKER_MANIFEST_LIST == result.manifest_media_type
    entries = document["manifests"]
    assert [entry["platform"]["architecture"] for entry in entries] == ["amd64", "arm64"]
    for entry in entries:
        assert entry["mediaType"] == mt.DOCKER_MANIFEST
        raw, media_type = stored.instances[entry["digest"]]
        assert media_type == mt.DOCKER_MANIFEST and len(raw) == entry["size"]
        assert json.loads(raw)["config"]["mediaType"] == mt.DOCKER_CONFIG
    assert {entry["digest"] for entry in entries}.isdisjoint(image.digest for image in index.images)


def test_all_into_an_oci_only_destination_converts_a_docker_list(test_images, memory, run_copy):
    index = test_images.two_platform_index
    source, middle, dest = memory(), memory(), memory(supported_manifest_types=(mt.OCI_MANIFEST, mt.OCI_INDEX))
    source.add_image("src", index)
    run_copy(source, middle, multi_arch="all", format="v2s2")
    result = run_copy(middle, dest, "dst", "back", multi_arch="all")
    assert result.manifest_media_type == mt.OCI_INDEX
    stored = dest.images["back"]
    back = json.loads(stored.manifest)
    assert [entry["mediaType"] for entry in back["manifests"]] == [mt.OCI_MANIFEST] * 2
    for entry, image in zip(back["manifests"], index.images):
        child = json.loads(stored.instances[entry["digest"]][0])
        original = json.loads(image.manifest.data)
        assert (child["config"], child["layers"]) == (original["config"], original["layers"])


def test_all_with_preserve_digests_refuses_a_conversion(test_images, memory, run_copy):
    source, dest = memory(), memory()
    source.add_image("src", test_images.two_platform_index)
    with pytest.raises((ConversionError, ManifestTypeRejected)):
        run_copy(source, dest, multi_arch="all", format="v2s2", preserve_digests=True)
    assert "dst" not in dest.images


def test_all_into_a_destination_without_indexes_is_refused(test_images, memory, run_copy):
    source, dest = memory(), memory(supported_manifest_types=(mt.DOCKER_MANIFEST,))
    source.add_image("src", test_images.two_platform_index)
    with pytest.raises(ManifestTypeRejected, match="indexes"):
        run_copy(source, dest, multi_arch="all")
    assert not source.get_blob_calls


def test_index_only_copies_the_index_alone(test_images, memory, run_copy):
    index = test_images.two_platform_index
    source, dest = memory(), memory(requires_children=False)
    source.add_image("src", index)
    result = run_copy(source, dest, multi_arch="index-only")
    assert str(result.manifest_digest) == index.digest
    assert result.blobs == ()
    assert not source.get_blob_calls
    assert [kind for kind, _ in dest.events if kind.startswith("put")] == ["put_manifest"]


def test_a_single_image_with_multi_arch_all_is_copied_as_usual(test_images, memory, run_copy):
    image = test_images.single_layer
    source, dest = memory(), memory()
    source.add_image("src", image)
    assert str(run_copy(source, dest, multi_arch="all").manifest_digest) == image.digest


def test_a_destination_that_runs_images_refuses_another_os(test_images, memory, run_copy):
    source = memory()
    source.add_image("src", test_images.single_layer)  # linux
    run_copy(source, memory(must_match_runtime_os=True), dest_context=SystemContext(os_choice="linux"))
    dest = memory(must_match_runtime_os=True)
    with pytest.raises(NoMatchingPlatform, match="windows"):
        run_copy(source, dest, dest_context=SystemContext(os_choice="windows"))
    assert "dst" not in dest.images
