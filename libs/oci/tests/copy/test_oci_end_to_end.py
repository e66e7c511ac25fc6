"""The copy engine with the real ``oci:`` transport, checked by the real skopeo."""

from __future__ import annotations

import gzip
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from pallet.oci import mediatypes as mt
from pallet.oci.copy import CopyOptions, CopyResult, Policy, copy_image
from pallet.oci.errors import DigestMismatch
from pallet.oci.transports import default_transports
from pallet_testing.images import write_oci_layout

ACCEPT = Policy.accept_anything()


def copy(source: str, dest: str, **options: object) -> CopyResult:
    transports = default_transports(plugins=False)
    return copy_image(
        transports.parse_image_name(source), transports.parse_image_name(dest), CopyOptions(**options), policy=ACCEPT  # type: ignore[arg-type]
    )


def index_refs(layout: Path) -> list[str]:
    index = json.loads((layout / "index.json").read_text())
    return [entry.get("annotations", {}).get("org.opencontainers.image.ref.name", "") for entry in index["manifests"]]


@pytest.fixture
def run_skopeo(skopeo: str) -> Callable[..., str]:
    def run(*args: str) -> str:
        done = subprocess.run([skopeo, "--insecure-policy", *args], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"skopeo {' '.join(args)} failed: {done.stderr}"
        return done.stdout

    return run


@pytest.mark.interop
def test_oci_to_oci_gzip_to_zstd_is_what_skopeo_reads(test_images, tmp_path, run_skopeo):
    image = test_images.multi_layer
    write_oci_layout(tmp_path / "src", {"v1": image})
    result = copy(f"oci:{tmp_path}/src:v1", f"oci:{tmp_path}/dst:v1", dest_compression="zstd")
    inspected = json.loads(run_skopeo("inspect", f"oci:{tmp_path}/dst:v1"))
    assert inspected["Digest"] == str(result.manifest_digest)
    raw = json.loads(run_skopeo("inspect", "--raw", f"oci:{tmp_path}/dst:v1"))
    assert [layer["mediaType"] for layer in raw["layers"]] == [mt.OCI_LAYER_ZSTD] * 3
    assert inspected["Layers"] == [layer["digest"] for layer in raw["layers"]]
    config = json.loads(run_skopeo("inspect", "--config", "--raw", f"oci:{tmp_path}/dst:v1"))
    assert config["rootfs"]["diff_ids"] == [layer.diff_id for layer in image.layers]
    run_skopeo("copy", f"oci:{tmp_path}/dst:v1", f"dir:{tmp_path}/checked")  # skopeo verifies every blob
    manifest = json.loads((tmp_path / "checked" / "manifest.json").read_text())
    for descriptor, layer in zip(manifest["layers"], image.layers):
        stored = (tmp_path / "checked" / descriptor["digest"].split(":")[1]).read_bytes()
        zstd = subprocess.run(["zstd", "-q", "-d", "-c"], input=stored, capture_output=True, check=True)
        assert zstd.stdout == gzip.decompress(layer.data)


@pytest.mark.interop
def test_oci_all_copies_an_index_skopeo_accepts(test_images, tmp_path, run_skopeo):
    index = test_images.two_platform_index
    write_oci_layout(tmp_path / "src", {"multi": index})
    result = copy(f"oci:{tmp_path}/src:multi", f"oci:{tmp_path}/dst:multi", multi_arch="all")
    assert str(result.manifest_digest) == index.digest
    raw = run_skopeo("inspect", "--raw", f"oci:{tmp_path}/dst:multi")
    assert raw.encode() == index.index.data
    run_skopeo("copy", "--all", f"oci:{tmp_path}/dst:multi", f"oci:{tmp_path}/again:multi")


def test_docker_schema2_into_oci_is_converted(test_images, tmp_path):
    image = test_images.docker_schema2
    write_oci_layout(tmp_path / "src", {"d": image})
    result = copy(f"oci:{tmp_path}/src:d", f"oci:{tmp_path}/dst:o")
    assert result.manifest_media_type == mt.OCI_MANIFEST
    manifest = json.loads((tmp_path / "dst/blobs/sha256" / result.manifest_digest.hex).read_bytes())
    assert manifest["config"]["mediaType"] == mt.OCI_CONFIG
    assert manifest["layers"][0]["mediaType"] == mt.OCI_LAYER_GZIP


def test_a_second_copy_into_the_same_layout_reuses_its_blobs(test_images, tmp_path):
    write_oci_layout(tmp_path / "src", {"v1": test_images.multi_layer})
    copy(f"oci:{tmp_path}/src:v1", f"oci:{tmp_path}/dst:a")
    again = copy(f"oci:{tmp_path}/src:v1", f"oci:{tmp_path}/dst:b")
    assert {outcome.action for outcome in again.blobs} == {"skipped"}
    assert index_refs(tmp_path / "dst") == ["a", "b"]


def test_a_corrupt_source_blob_leaves_no_image_in_the_layout(test_images, tmp_path):
    image = test_images.multi_layer
    write_oci_layout(tmp_path / "src", {"v1": image})
    blob = tmp_path / "src/blobs/sha256" / image.layers[1].digest.split(":")[1]
    data = bytearray(blob.read_bytes())
    data[100] ^= 0xFF
    blob.write_bytes(bytes(data))
    for options in ({}, {"dest_compression": "zstd"}):
        with pytest.raises(DigestMismatch):
            copy(f"oci:{tmp_path}/src:v1", f"oci:{tmp_path}/dst:v1", **options)
        assert not (tmp_path / "dst/index.json").exists() or index_refs(tmp_path / "dst") == []
        assert not (tmp_path / "dst/blobs/sha256" / image.layers[1].digest.split(":")[1]).exists()


@pytest.mark.interop
def test_we_recompress_what_skopeo_compressed_with_zstd(test_images, tmp_path, run_skopeo):
    image = test_images.single_layer
    write_oci_layout(tmp_path / "src", {"v1": image})
    run_skopeo("copy", "--dest-compress-format", "zstd", f"oci:{tmp_path}/src:v1", f"oci:{tmp_path}/zst:v1")
    result = copy(f"oci:{tmp_path}/zst:v1", f"oci:{tmp_path}/back:v1", dest_compression="gzip")
    (layer,) = [outcome for outcome in result.blobs if not outcome.is_config]
    assert layer.media_type == mt.OCI_LAYER_GZIP
    assert str(layer.diff_id) == image.layers[0].diff_id
    stored = (tmp_path / "back/blobs/sha256" / layer.digest.hex).read_bytes()
    assert gzip.decompress(stored) == gzip.decompress(image.layers[0].data)
    run_skopeo("copy", f"oci:{tmp_path}/back:v1", f"dir:{tmp_path}/checked")
