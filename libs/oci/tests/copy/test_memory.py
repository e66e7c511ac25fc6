"""Constant memory: a 256 MiB layer streams through the engine without being held.

The layer is generated on demand by the fake source and the fake
destination hashes what it gets without keeping it, so whatever tracemalloc
sees at its peak is the engine's own doing.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import tracemalloc

import pytest

from pallet.oci import mediatypes as mt
from pallet.oci.digest import Digest
from pallet_testing.memory_transport import LazyBlob

LAYER_SIZE = 256 << 20
BLOCK = 1 << 20
PEAK_LIMIT = 32 << 20


class GeneratedLayer(io.RawIOBase):
    """LAYER_SIZE deterministic bytes: 1 MiB blocks of noise, each stamped with its number."""

    def __init__(self, noise: bytes) -> None:
        self._noise = noise
        self._position = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            raise AssertionError("the whole layer was asked for at once")
        left = LAYER_SIZE - self._position
        block, offset = divmod(self._position, BLOCK)
        count = min(size, left, BLOCK - offset)
        stamped = block.to_bytes(8, "big") + self._noise[8:]
        self._position += count
        return stamped[offset : offset + count]

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        data = self.read(len(buffer))
        memoryview(buffer)[: len(data)] = data
        return len(data)


@pytest.fixture(scope="module")
def noise() -> bytes:
    return random.Random(256).randbytes(BLOCK)


@pytest.fixture(scope="module")
def layer_digest(noise: bytes) -> Digest:
    digest = hashlib.sha256()
    stream = GeneratedLayer(noise)
    while chunk := stream.read(BLOCK):
        digest.update(chunk)
    return Digest("sha256", digest.hexdigest())


def big_image(memory, noise: bytes, layer_digest: Digest):
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [str(layer_digest)]}}
    ).encode()
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    manifest = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": {"mediaType": mt.OCI_CONFIG, "digest": config_digest, "size": len(config)},
        "layers": [{"mediaType": mt.OCI_LAYER_TAR, "digest": str(layer_digest), "size": LAYER_SIZE}],
    }
    source = memory()
    source.add_manifest("big", manifest, {config_digest: config})
    source.add_lazy_blob(LazyBlob(layer_digest, LAYER_SIZE, lambda: GeneratedLayer(noise)))
    return source


@pytest.mark.parametrize("options", [{}, {"dest_compression": "zstd"}], ids=["as-is", "to-zstd"])
def test_a_256_mib_layer_streams_in_constant_memory(memory, run_copy, noise, layer_digest, options):
    source = big_image(memory, noise, layer_digest)
    dest = memory(keep_blob_data=False)
    tracemalloc.start()
    try:
        result = run_copy(source, dest, "big", "copy", **options)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    (layer,) = [outcome for outcome in result.blobs if not outcome.is_config]
    if options:
        assert layer.recompressed and layer.diff_id == layer_digest and layer.size < LAYER_SIZE
    else:
        assert layer.digest == layer_digest and layer.size == LAYER_SIZE
    assert peak < PEAK_LIMIT, f"peak {peak / (1 << 20):.1f} MiB"
