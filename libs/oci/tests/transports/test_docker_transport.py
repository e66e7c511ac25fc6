"""The docker:// transport against the real registry: blobs of another repository are mounted, and said so."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from pallet.oci.copy import CopyOptions, Policy, copy_image
from pallet.oci.transports import SystemContext, default_transports
from pallet_testing.images import write_oci_layout
from pallet_testing.memory_transport import RecordingProgress


@pytest.fixture
def context(tmp_path: Path) -> SystemContext:
    """Plain HTTP to the fixture registry; no auth file, certs.d or registries.conf of the host."""
    home = tmp_path / "home"
    home.mkdir()
    conf = tmp_path / "registries.conf"
    conf.write_text("")
    return SystemContext(tls_verify=False, home=home, environ=(("HOME", str(home)),), registries_conf=conf)


def test_a_copy_within_a_registry_mounts_the_blobs(registry, test_images, tmp_path: Path, context: SystemContext):
    image = test_images.multi_layer
    write_oci_layout(tmp_path / "layout", {"v1": image})
    transports = default_transports(plugins=False)
    options = CopyOptions(source_context=context, dest_context=context)
    first = f"docker://{registry.host}/mount-{secrets.token_hex(4)}/a:v1"
    pushed = copy_image(transports.parse_image_name(f"oci:{tmp_path}/layout:v1"), transports.parse_image_name(first),
                        options, policy=Policy.accept_anything())
    assert {outcome.action for outcome in pushed.blobs} == {"copied"}
    progress = RecordingProgress()
    second = f"docker://{registry.host}/mount-{secrets.token_hex(4)}/b:v1"
    result = copy_image(transports.parse_image_name(first), transports.parse_image_name(second), options,
                        policy=Policy.accept_anything(), progress=progress)
    assert result.manifest_digest == pushed.manifest_digest
    assert [outcome.action for outcome in result.blobs] == ["mounted"] * 4
    assert {event[3] for event in progress.of_kind("skipped")} == {"mounted"}
    assert not progress.of_kind("started")
    again = copy_image(transports.parse_image_name(first), transports.parse_image_name(second), options,
                       policy=Policy.accept_anything())
    assert [outcome.action for outcome in again.blobs] == ["skipped"] * 4  # already there: no mount
