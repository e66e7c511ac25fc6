"""Signatures travel with the manifest they sign, and forbid changing it."""

from __future__ import annotations

import pytest

from pallet.oci.errors import ConversionError, UnsupportedOperation

SIGNATURE = b"a signature"


def test_signatures_are_copied_where_the_destination_stores_them(test_images, memory, run_copy):
    source, dest = memory(), memory(supports_signatures=True)
    source.add_image("src", test_images.single_layer, signatures=[SIGNATURE])
    run_copy(source, dest)
    assert dest.images["dst"].signatures == {"": [SIGNATURE]}


def test_a_destination_without_signatures_is_refused_before_any_blob(test_images, memory, run_copy):
    source, dest = memory(), memory()
    source.add_image("src", test_images.single_layer, signatures=[SIGNATURE])
    with pytest.raises(UnsupportedOperation, match="remove-signatures"):
        run_copy(source, dest)
    assert not source.get_blob_calls
    run_copy(source, dest, remove_signatures=True)
    assert dest.images["dst"].signatures == {}


@pytest.mark.parametrize("options", [{"format": "v2s2"}, {"dest_compression": "zstd"}])
def test_signed_images_are_not_changed(test_images, memory, run_copy, options):
    source, dest = memory(), memory(supports_signatures=True)
    source.add_image("src", test_images.single_layer, signatures=[SIGNATURE])
    with pytest.raises(ConversionError, match="signatures"):
        run_copy(source, dest, **options)
    run_copy(source, dest, remove_signatures=True, **options)
