"""CopyOptions checks its combinations."""

from __future__ import annotations

import pytest

from pallet.oci.copy import CopyOptions


@pytest.mark.parametrize(
    "kwargs",
    [
        {"multi_arch": "some"},
        {"format": "v2s1"},
        {"dest_compression": "xz"},
        {"decompress": True, "dest_compression": "gzip"},
        {"dest_compression_level": 5},
        {"dest_compression": "gzip", "dest_compression_level": 10},
        {"dest_compression": "zstd", "dest_compression_level": 0},
        {"image_parallel_copies": 0},
        {"retry_times": -1},
    ],
)
def test_invalid_options_are_refused(kwargs):
    with pytest.raises(ValueError):
        CopyOptions(**kwargs)


def test_requested_compression():
    assert CopyOptions().requested_compression is None
    assert CopyOptions(decompress=True).requested_compression == "none"
    assert CopyOptions(dest_compression="zstd", dest_compression_level=19).requested_compression == "zstd"
