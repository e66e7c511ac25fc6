"""read_image: the manifest, the platform's instance of an index, the verified config."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pallet.oci.errors import DigestMismatch, NoMatchingPlatform
from pallet.oci.image import read_image, wanted_platform
from pallet.oci.transports import SystemContext, default_transports
from pallet_testing.images import write_oci_layout


def open_source(path: Path, ref: str, context: SystemContext):
    return default_transports(plugins=False).parse_image_name(f"oci:{path}:{ref}").new_source(context)


def test_single_image(tmp_path: Path, test_images) -> None:
    image = test_images.multi_layer
    write_oci_layout(tmp_path, {"v1": image})
    with open_source(tmp_path, "v1", SystemContext()) as source:
        view = read_image(source, SystemContext())
    assert view.top is view.manifest and view.instance_digest is None
    assert str(view.manifest.digest) == image.digest
    assert view.config.raw == image.config.data
    assert [str(d) for d in view.config.model.rootfs.diff_ids] == [layer.diff_id for layer in image.layers]


@pytest.mark.parametrize(("arch", "expected"), [("amd64", 0), ("arm64", 1)])
def test_index_instance_follows_the_override(tmp_path: Path, test_images, arch: str, expected: int) -> None:
    index = test_images.two_platform_index
    write_oci_layout(tmp_path, {"multi": index})
    context = SystemContext(os_choice="linux", architecture_choice=arch)
    with open_source(tmp_path, "multi", context) as source:
        view = read_image(source, context)
    assert str(view.top.digest) == index.digest
    assert str(view.instance_digest) == index.images[expected].digest
    assert view.config.raw == index.images[expected].config.data


def test_no_instance_for_the_platform(tmp_path: Path, test_images) -> None:
    write_oci_layout(tmp_path, {"multi": test_images.two_platform_index})
    context = SystemContext(os_choice="linux", architecture_choice="s390x")
    with open_source(tmp_path, "multi", context) as source, pytest.raises(NoMatchingPlatform, match="linux/arm64"):
        read_image(source, context)


def test_a_corrupt_config_is_refused(tmp_path: Path, test_images) -> None:
    image = test_images.single_layer
    write_oci_layout(tmp_path, {"v1": image})
    config_path = tmp_path / "blobs" / "sha256" / image.config.digest.split(":")[1]
    config_path.write_bytes(image.config.data.replace(b"amd64", b"arm64"))
    with open_source(tmp_path, "v1", SystemContext()) as source, pytest.raises(DigestMismatch):
        read_image(source, SystemContext())


def test_wanted_platform_defaults_to_the_host() -> None:
    host = wanted_platform(SystemContext())
    assert host.os == "linux"
    assert host.architecture in {"amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64"}
    assert wanted_platform(dataclasses.replace(SystemContext(), architecture_choice="arm", variant_choice="v6")).variant == "v6"


def test_an_architecture_override_drops_the_hosts_variant_unless_one_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    from pallet.oci import image
    from pallet.oci.platform import normalize_platform

    monkeypatch.setattr(image, "host_platform", lambda: normalize_platform("linux", "arm", "v6"))
    assert str(wanted_platform(SystemContext())) == "linux/arm/v6"
    assert str(wanted_platform(SystemContext(architecture_choice="arm"))) == "linux/arm/v7"  # arm's default variant
    assert str(wanted_platform(SystemContext(architecture_choice="arm", variant_choice="v5"))) == "linux/arm/v5"
    assert str(wanted_platform(SystemContext(variant_choice="v5"))) == "linux/arm/v5"
    assert str(wanted_platform(SystemContext(os_choice="freebsd"))) == "freebsd/arm/v6"


def test_the_copy_engine_uses_the_same_wanted_platform() -> None:
    from pallet.oci import copy

    assert copy.wanted_platform is wanted_platform
