"""The order of progress events (skopeo's lines), and blobs a destination mounts instead of copying."""

from __future__ import annotations

from pallet.oci.copy import CopyOptions, Policy, copy_image
from pallet.oci.transports.base import BlobInfo, ImageReference, ReusedBlob, SystemContext
from pallet_testing.memory_transport import MemoryDestination, MemoryReference, MemoryTransport, RecordingProgress


def kinds(progress: RecordingProgress) -> list[str]:
    """The events without blob_progress (how many of those depends on sizes)."""
    return [str(event[0]) for event in progress.events if event[0] != "progress"]


def test_one_image(test_images, memory, run_copy):
    image = test_images.multi_layer
    source = memory()
    source.add_image("src", image)
    progress = RecordingProgress()
    run_copy(source, memory(), progress=progress, image_parallel_copies=1)
    assert progress.events[0] == ("copy", False)
    assert kinds(progress) == ["copy"] + ["started", "done"] * 4 + ["manifest"]


def test_the_image_of_an_index_chosen_for_this_system_is_one_image(test_images, memory, run_copy):
    source = memory()
    source.add_image("src", test_images.two_platform_index)
    progress = RecordingProgress()
    run_copy(source, memory(), progress=progress, source_context=SystemContext(architecture_choice="arm64"))
    assert progress.events[0] == ("copy", False)
    assert not progress.of_kind("instances") and not progress.of_kind("instance") and not progress.of_kind("index")


def test_all_images_of_an_index(test_images, memory, run_copy):
    index = test_images.two_platform_index
    source = memory()
    source.add_image("src", index)
    progress = RecordingProgress()
    result = run_copy(source, memory(), progress=progress, multi_arch="all", image_parallel_copies=1)
    first, second = index.images
    assert kinds(progress) == [
        "copy", "instances",
        "instance", *blob_events(first), "manifest",
        "instance", *blob_events(second), "manifest",
        "index",
    ]
    assert progress.events[:3] == [("copy", True), ("instances", 2, 2), ("instance", first.digest, 1, 2)]
    assert ("instance", second.digest, 2, 2) in progress.events
    assert [event[3] for event in progress.of_kind("manifest")] == [True, True]
    assert progress.of_kind("index") == [("index", str(result.manifest_digest), result.manifest_media_type)]


def blob_events(image) -> list[str]:
    """One blob after another (one copy at a time): its layers, then its config."""
    return ["started", "done"] * (len(image.layers) + 1)


def test_only_the_index(test_images, memory, run_copy):
    index = test_images.two_platform_index
    source = memory()
    source.add_image("src", index)
    progress = RecordingProgress()
    run_copy(source, memory(requires_children=False), progress=progress, multi_arch="index-only")
    assert progress.events == [("copy", True), ("instances", 0, 2), ("index", index.digest, index.manifest.media_type)]


# --- a destination that mounts: a registry's cross-repository mount, in memory ----------------------


class MountingReference(MemoryReference):
    """A memory destination that, once told its source, takes the source's blobs without a copy."""

    def new_destination(self, context: SystemContext) -> MountingDestination:
        return MountingDestination(self)


class MountingDestination(MemoryDestination):
    def __init__(self, reference: MemoryReference) -> None:
        super().__init__(reference)
        self.hint: MemoryTransport | None = None

    def set_source_hint(self, source: ImageReference) -> None:
        self._transport.log("source_hint", str(source))
        if isinstance(source, MemoryReference):
            self.hint = source.transport

    def try_reusing_blob(self, info: BlobInfo, *, can_substitute: bool = False) -> BlobInfo | None:
        held = super().try_reusing_blob(info, can_substitute=can_substitute)
        if held is not None or self.hint is None or str(info.digest) not in self.hint.blobs:
            return held
        self._blobs[str(info.digest)] = self.hint.blobs[str(info.digest)]
        self._transport.log("mounted", str(info.digest))
        return ReusedBlob(info.digest, info.size, info.media_type, mounted=True)


def test_the_destination_learns_the_source_first_and_mounted_blobs_are_reported(test_images, memory):
    image = test_images.multi_layer
    source, dest = memory(), memory()
    source.add_image("src", image)
    progress = RecordingProgress()
    result = copy_image(
        source.reference("src"), MountingReference(dest, "dst"), CopyOptions(),
        policy=Policy.accept_anything(), progress=progress,
    )
    assert dest.events[0] == ("source_hint", "memory:src")
    assert [outcome.action for outcome in result.blobs] == ["mounted"] * 4
    assert result.bytes_written == 0 and result.bytes_skipped == sum(blob.size for blob in image.blobs())
    assert {event[3] for event in progress.of_kind("skipped")} == {"mounted"}
    assert not progress.of_kind("started")
    assert not source.get_blob_calls
    assert dest.images["dst"].manifest == image.manifest.data
    again = RecordingProgress()
    second = copy_image(
        source.reference("src"), MountingReference(dest, "dst2"), CopyOptions(),
        policy=Policy.accept_anything(), progress=again,
    )
    assert [outcome.action for outcome in second.blobs] == ["skipped"] * 4  # held now: not mounted again
    assert {event[3] for event in again.of_kind("skipped")} == {"exists"}

