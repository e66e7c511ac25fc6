"""Blobs: reuse, parallel copies, verification while streaming, retries, and nothing left after a failure."""

from __future__ import annotations

import pytest

from pallet.oci.errors import DigestMismatch, ServerError
from pallet_testing.memory_transport import InjectedPermanentFailure, RecordingProgress, SourceFaults


def kinds(transport):
    return [kind for kind, _ in transport.events]


def test_blobs_the_destination_has_are_skipped(test_images, memory, run_copy):
    image = test_images.multi_layer
    source, dest = memory(), memory()
    source.add_image("src", image)
    run_copy(source, dest, dest_name="first")
    progress = RecordingProgress()
    result = run_copy(source, dest, dest_name="second", progress=progress)
    assert [o.action for o in result.blobs] == ["skipped"] * 4
    assert result.bytes_written == 0
    assert result.bytes_skipped == sum(blob.size for blob in image.blobs())
    assert sorted(event[1] for event in progress.of_kind("skipped")) == sorted(b.digest for b in image.blobs())
    assert sum(source.get_blob_calls.values()) == 4  # only the first copy read blobs
    assert dest.images["second"].manifest == image.manifest.data


def test_progress_events_per_blob_and_manifest(test_images, memory, run_copy):
    image = test_images.multi_layer
    source = memory()
    source.add_image("src", image)
    progress = RecordingProgress()
    result = run_copy(source, memory(), progress=progress)
    started = {event[1]: event for event in progress.of_kind("started")}
    assert set(started) == {blob.digest for blob in image.blobs()}
    assert started[image.config.digest][3] is True  # is_config
    assert {event[1] for event in progress.of_kind("done")} == set(started)
    last_progress = {event[1]: event[2] for event in progress.of_kind("progress")}
    assert last_progress == {blob.digest: blob.size for blob in image.blobs()}
    assert progress.of_kind("manifest") == [("manifest", str(result.manifest_digest), image.manifest.media_type, False)]
    assert result.bytes_written == sum(blob.size for blob in image.blobs())


def test_layers_are_copied_in_parallel_when_both_ends_allow(test_images, memory, run_copy):
    source, dest = memory(), memory(threadsafe_put=True, rendezvous=3)
    source.add_image("src", test_images.multi_layer)
    run_copy(source, dest, image_parallel_copies=3)
    assert dest.max_concurrent_puts == 3


@pytest.mark.parametrize(
    ("threadsafe_put", "threadsafe_get", "parallel"),
    [(False, True, 6), (True, False, 6), (True, True, 1)],
)
def test_layers_are_copied_one_at_a_time_otherwise(test_images, memory, run_copy, threadsafe_put, threadsafe_get, parallel):
    source = memory(faults=SourceFaults(threadsafe_get=threadsafe_get))
    dest = memory(threadsafe_put=threadsafe_put)
    source.add_image("src", test_images.multi_layer)
    run_copy(source, dest, image_parallel_copies=parallel)
    assert dest.max_concurrent_puts == 1


def test_largest_layer_starts_first(test_images, memory, run_copy):
    image = test_images.multi_layer
    source, dest = memory(), memory(threadsafe_put=False)
    source.add_image("src", image)
    progress = RecordingProgress()
    run_copy(source, dest, progress=progress)
    order = [event[1] for event in progress.of_kind("started") if not event[3]]
    assert order == [layer.digest for layer in sorted(image.layers, key=lambda layer: -layer.size)]


@pytest.mark.parametrize("options", [{}, {"dest_compression": "zstd"}, {"image_parallel_copies": 1}])
def test_wrong_bytes_from_the_source_fail_and_leave_no_image(test_images, memory, run_copy, options):
    image = test_images.multi_layer
    bad = image.layers[1].digest
    source, dest = memory(faults=SourceFaults(corrupt={bad})), memory()
    source.add_image("src", image)
    with pytest.raises(DigestMismatch) as raised:
        run_copy(source, dest, **options)
    assert raised.value.expected == bad
    assert str(raised.value).startswith(f"copying blob {bad} from memory:")  # which blob, from where
    assert "digest mismatch" in str(raised.value)
    assert "put_manifest" not in kinds(dest) and "commit" not in kinds(dest)
    assert "dst" not in dest.images
    assert bad not in dest.blobs
    assert kinds(dest)[-1] == "close"


def test_a_temporary_failure_is_retried(test_images, memory, run_copy):
    image = test_images.multi_layer
    flaky = image.layers[0].digest
    source, dest = memory(faults=SourceFaults(fail_temporarily={flaky: 2})), memory()
    source.add_image("src", image)
    result = run_copy(source, dest, retry_times=2, retry_delay=0)
    assert source.get_blob_calls[flaky] == 3
    assert str(result.manifest_digest) == image.digest
    assert dest.images["dst"].manifest == image.manifest.data


def test_temporary_failures_beyond_retry_times_fail(test_images, memory, run_copy):
    image = test_images.single_layer
    flaky = image.layers[0].digest
    source, dest = memory(faults=SourceFaults(fail_temporarily={flaky: 2})), memory()
    source.add_image("src", image)
    with pytest.raises(ServerError):
        run_copy(source, dest, retry_times=1, retry_delay=0)
    assert source.get_blob_calls[flaky] == 2
    assert "dst" not in dest.images


def test_a_permanent_failure_is_not_retried(test_images, memory, run_copy):
    image = test_images.single_layer
    broken = image.layers[0].digest
    source, dest = memory(faults=SourceFaults(fail_permanently={broken})), memory()
    source.add_image("src", image)
    with pytest.raises(InjectedPermanentFailure):
        run_copy(source, dest, retry_times=5, retry_delay=0)
    assert source.get_blob_calls[broken] == 1
    assert "dst" not in dest.images


def test_a_digest_mismatch_is_not_retried(test_images, memory, run_copy):
    image = test_images.single_layer
    bad = image.layers[0].digest
    source = memory(faults=SourceFaults(corrupt={bad}))
    source.add_image("src", image)
    with pytest.raises(DigestMismatch):
        run_copy(source, memory(), retry_times=3, retry_delay=0)
    assert source.get_blob_calls[bad] == 1


def test_one_failing_layer_cancels_the_parallel_others(test_images, memory, run_copy):
    image = test_images.multi_layer
    broken = image.layers[2].digest
    source = memory(faults=SourceFaults(fail_permanently={broken}))
    dest = memory()
    source.add_image("src", image)
    with pytest.raises(InjectedPermanentFailure):
        run_copy(source, dest, image_parallel_copies=4)
    assert "put_manifest" not in kinds(dest)
