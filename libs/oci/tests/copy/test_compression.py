"""Layer compression: detection, streaming recompression, and what the engine does with it."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import subprocess

import pytest
import zstandard

from pallet.oci import mediatypes as mt
from pallet.oci.compression import CHUNK_SIZE, PeekableReader, detect_compression
from pallet.oci.copy.compression import recompress
from pallet.oci.digest import Digest
from pallet.oci.errors import ConversionError
from pallet_testing.images import tar_bytes, busybox_entries

TAR = tar_bytes(busybox_entries())


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (gzip.compress(b"x", mtime=0), "gzip"),
        (zstandard.ZstdCompressor().compress(b"x"), "zstd"),
        (b"BZh91AY&SY", "bzip2"),
        (b"\xfd7zXZ\x00\x00", "xz"),
        (TAR[:512], "none"),
        (b"", "none"),
    ],
    ids=["gzip", "zstd", "bzip2", "xz", "tar", "empty"],
)
def test_detect_compression_from_magic_bytes(data, expected):
    assert detect_compression(data) == expected


@pytest.mark.parametrize("source", ["none", "gzip", "zstd"])
@pytest.mark.parametrize("target", ["none", "gzip", "zstd"])
def test_recompress_streams_and_describes_the_result(source, target):
    compressed = {"none": TAR, "gzip": gzip.compress(TAR), "zstd": zstandard.ZstdCompressor().compress(TAR)}[source]
    result = recompress(PeekableReader(io.BytesIO(compressed)), target)
    chunks = list(iter(lambda: result.reader.read(CHUNK_SIZE // 4), b""))
    output = b"".join(chunks)
    assert result.detected == source
    assert result.size == len(output)
    assert result.digest() == Digest.from_bytes(output)
    assert result.diff_id() == Digest.from_bytes(TAR)
    assert detect_compression(output) == target
    plain = {"none": lambda d: d, "gzip": gzip.decompress, "zstd": lambda d: zstandard.ZstdDecompressor().decompressobj().decompress(d)}
    assert plain[target](output) == TAR


def test_recompress_reads_every_gzip_member():
    two_members = gzip.compress(TAR[:1000]) + gzip.compress(TAR[1000:])
    result = recompress(PeekableReader(io.BytesIO(two_members)), "none")
    assert result.reader.read() == TAR


def test_gzip_to_zstd_changes_layer_digests_not_diff_ids(test_images, memory, run_copy, stored, tmp_path):
    image = test_images.single_layer
    source, dest = memory(), memory()
    source.add_image("src", image)
    result = run_copy(source, dest, dest_compression="zstd")
    manifest = stored(dest)
    layer = manifest["layers"][0]
    assert layer["mediaType"] == mt.OCI_LAYER_ZSTD
    assert layer["digest"] != image.layers[0].digest
    assert manifest["config"]["digest"] == image.config.digest  # the config, diff_ids included, is unchanged
    config = json.loads(dest.blob_bytes(manifest["config"]["digest"]))
    assert config["rootfs"]["diff_ids"] == [image.layers[0].diff_id]
    (outcome,) = [o for o in result.blobs if not o.is_config]
    assert outcome.recompressed and str(outcome.diff_id) == image.layers[0].diff_id
    assert (str(outcome.digest), outcome.size) == (layer["digest"], layer["size"])
    zstd_file = tmp_path / "layer.zst"
    zstd_file.write_bytes(dest.blob_bytes(layer["digest"]))
    if shutil.which("zstd") is None:
        pytest.skip("zstd is not installed (Debian package: zstd)")
    subprocess.run(["zstd", "-q", "-d", str(zstd_file), "-o", str(tmp_path / "layer.tar")], check=True)
    assert (tmp_path / "layer.tar").read_bytes() == gzip.decompress(image.layers[0].data)


def test_zstd_to_gzip_and_to_none(test_images, memory, run_copy, stored):
    image = test_images.single_layer_zstd
    source = memory()
    source.add_image("src", image)
    for compression, media_type in (("gzip", mt.OCI_LAYER_GZIP), ("none", mt.OCI_LAYER_TAR)):
        dest = memory()
        run_copy(source, dest, dest_compression=compression)
        (layer,) = stored(dest)["layers"]
        assert layer["mediaType"] == media_type
        data = dest.blob_bytes(layer["digest"])
        assert (gzip.decompress(data) if compression == "gzip" else data) == TAR


def test_decompress_option_gives_plain_tar(test_images, memory, run_copy, stored):
    source, dest = memory(), memory()
    source.add_image("src", test_images.single_layer)
    run_copy(source, dest, decompress=True)
    (layer,) = stored(dest)["layers"]
    assert layer["mediaType"] == mt.OCI_LAYER_TAR
    assert layer["digest"] == test_images.single_layer.layers[0].diff_id


def test_destination_wishes_compress_plain_layers_and_decompress_but_do_not_recompress(test_images, memory, run_copy, stored):
    source = memory()
    source.add_image("plain", test_images.single_layer_uncompressed)
    source.add_image("gzip", test_images.single_layer)
    wants_zstd = memory(desired_compression="zstd")
    run_copy(source, wants_zstd, "plain", "a")
    run_copy(source, wants_zstd, "gzip", "b")
    assert stored(wants_zstd, "a")["layers"][0]["mediaType"] == mt.OCI_LAYER_ZSTD
    assert stored(wants_zstd, "b")["layers"][0]["mediaType"] == mt.OCI_LAYER_GZIP  # gzip stays gzip
    wants_none = memory(desired_compression="none")
    run_copy(source, wants_none, "gzip", "c")
    assert stored(wants_none, "c")["layers"][0]["mediaType"] == mt.OCI_LAYER_TAR


def test_docker_layers_recompressed_to_gzip_stay_docker(test_images, memory, run_copy, stored):
    source, dest = memory(), memory()
    image = test_images.docker_schema2
    source.add_image("src", image)
    run_copy(source, dest, dest_compression="none", format="v2s2")
    manifest = stored(dest)
    assert manifest["mediaType"] == mt.DOCKER_MANIFEST
    assert manifest["layers"][0]["mediaType"] == mt.DOCKER_LAYER_TAR


def test_a_layer_mislabelled_as_plain_is_stored_as_what_it_is(test_images, memory, run_copy, stored):
    image = test_images.single_layer
    layer = image.layers[0]
    source = memory()
    manifest = json.loads(image.manifest.data)
    manifest["layers"][0]["mediaType"] = mt.OCI_LAYER_TAR  # but the bytes are gzip
    source.add_manifest("src", manifest, {layer.digest: layer.data, image.config.digest: image.config.data})
    dest = memory(desired_compression="gzip")
    run_copy(source, dest)
    (stored_layer,) = stored(dest)["layers"]
    assert stored_layer == {"mediaType": mt.OCI_LAYER_GZIP, "digest": layer.digest, "size": layer.size}


@pytest.mark.parametrize(
    ("desired", "options", "expected"),
    [
        ("gzip", {}, mt.OCI_LAYER_GZIP),  # compressed, as containers/image compresses what is plain
        (None, {}, mt.OCI_LAYER_TAR),  # kept, and described as it is
        ("gzip", {"preserve_digests": True}, mt.OCI_LAYER_GZIP),  # nothing may change: kept as described
    ],
)
def test_a_plain_layer_mislabelled_as_gzip(test_images, memory, run_copy, stored, desired, options, expected):
    """As docker-archive sources serve every layer: uncompressed, under the gzip type (skopeo's)."""
    image = test_images.single_layer_uncompressed
    layer = image.layers[0]
    source = memory()
    manifest = json.loads(image.manifest.data)
    manifest["layers"][0]["mediaType"] = mt.OCI_LAYER_GZIP  # but the bytes are a plain tar
    source.add_manifest("src", manifest, {layer.digest: layer.data, image.config.digest: image.config.data})
    dest = memory(desired_compression=desired)
    result = run_copy(source, dest, **options)
    (stored_layer,) = stored(dest)["layers"]
    assert stored_layer["mediaType"] == expected
    compressed = desired == "gzip" and not options
    data = dest.blob_bytes(stored_layer["digest"])
    assert (gzip.decompress(data) if compressed else data) == layer.data
    (outcome,) = [blob for blob in result.blobs if not blob.is_config]
    assert outcome.diff_id == (Digest.parse(layer.diff_id) if compressed else None)


def test_corrupt_gzip_that_matches_its_digest_is_a_conversion_error(test_images, memory, run_copy):
    image = test_images.single_layer
    bad = image.layers[0].data[:200]  # a truncated gzip stream, described truthfully
    manifest = json.loads(image.manifest.data)
    manifest["layers"][0].update(digest=str(Digest.from_bytes(bad)), size=len(bad))
    source = memory()
    source.add_manifest("src", manifest, {str(Digest.from_bytes(bad)): bad, image.config.digest: image.config.data})
    dest = memory()
    with pytest.raises(ConversionError, match="cannot be decompressed"):
        run_copy(source, dest, dest_compression="zstd")
    assert "dst" not in dest.images


def test_preserve_digests_refuses_recompression(test_images, memory, run_copy):
    source = memory()
    source.add_image("src", test_images.single_layer)
    with pytest.raises(ConversionError, match="preserve-digests"):
        run_copy(source, memory(), dest_compression="zstd", preserve_digests=True)


def test_compression_level_is_used(test_images, memory, run_copy, stored):
    source = memory()
    source.add_image("src", test_images.single_layer_uncompressed)
    sizes = []
    for level in (1, 19):
        dest = memory()
        run_copy(source, dest, dest_compression="zstd", dest_compression_level=level)
        sizes.append(stored(dest)["layers"][0]["size"])
    assert sizes[1] < sizes[0]
