"""pallet.oci.platform: containerd's specifier syntax, normalisation table, matching and choosing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pallet.oci.errors import InvalidPlatform, NoMatchingPlatform
from pallet.oci.manifest import parse_manifest
from pallet.oci.platform import (
    KNOWN_ARCHITECTURES,
    NormalizedPlatform,
    choose_manifest,
    compatible_platforms,
    host_platform,
    is_compatible,
    matches,
    normalize_platform,
    parse_platform,
    platform_from_uname,
)
from pallet.oci.spec.docker import DockerManifestList
from pallet.oci.spec.image import ImageIndex, Platform

DATA = Path(__file__).parent / "data"
AMD64_HOST = NormalizedPlatform("linux", "amd64")
ARM_HOST = NormalizedPlatform("linux", "arm", "v6")


@pytest.mark.parametrize(
    ("specifier", "expected"),
    [
        ("linux/amd64", "linux/amd64"),
        ("linux/x86_64", "linux/amd64"),
        ("linux/x86-64", "linux/amd64"),
        ("linux/amd64/v1", "linux/amd64"),
        ("linux/amd64/v3", "linux/amd64/v3"),
        ("linux/aarch64", "linux/arm64"),
        ("linux/arm64/v8", "linux/arm64"),
        ("linux/arm64/8", "linux/arm64"),
        ("linux/arm64/v8.0", "linux/arm64"),
        ("linux/arm64/v9.0", "linux/arm64/v9"),
        ("linux/arm64/v8.2", "linux/arm64/v8.2"),
        ("linux/arm", "linux/arm/v7"),
        ("linux/arm/7", "linux/arm/v7"),
        ("linux/arm/v7", "linux/arm/v7"),
        ("linux/arm/6", "linux/arm/v6"),
        ("linux/arm/v5", "linux/arm/v5"),
        ("linux/armhf", "linux/arm/v7"),
        ("linux/armel", "linux/arm/v6"),
        ("linux/i386", "linux/386"),
        ("linux/i686", "linux/386"),
        ("linux/386", "linux/386"),
        ("Linux/AMD64", "linux/amd64"),
        ("macos/arm64", "darwin/arm64"),
        ("linux/ppc64le", "linux/ppc64le"),
        ("linux/s390x", "linux/s390x"),
        ("linux/riscv64", "linux/riscv64"),
        ("plan10/exotic", "plan10/exotic"),
    ],
)
def test_normalisation_table(specifier: str, expected: str) -> None:
    assert str(parse_platform(specifier, host=AMD64_HOST)) == expected


@pytest.mark.parametrize(
    ("specifier", "host", "expected"),
    [
        ("linux", AMD64_HOST, "linux/amd64"),
        ("linux", ARM_HOST, "linux/arm/v6"),
        ("windows", AMD64_HOST, "windows/amd64"),
        ("arm64", AMD64_HOST, "linux/arm64"),
        ("aarch64", AMD64_HOST, "linux/arm64"),
        ("armhf", AMD64_HOST, "linux/arm/v7"),
        ("x86_64", NormalizedPlatform("freebsd", "arm64"), "freebsd/amd64"),
        ("s390x", AMD64_HOST, "linux/s390x"),
    ],
)
def test_a_single_component_is_an_os_or_an_architecture(
    specifier: str, host: NormalizedPlatform, expected: str
) -> None:
    assert str(parse_platform(specifier, host=host)) == expected


def test_os_version_and_features() -> None:
    parsed = parse_platform("windows(10.0.17763+win32k+a%2Bb)/amd64")
    assert parsed.os_version == "10.0.17763"
    assert parsed.os_features == ("a+b", "win32k")


@pytest.mark.parametrize(
    "specifier",
    ["", "/amd64", "linux/", "linux//v7", "linux/amd64/v8/extra", "linux/*", "*", "linux/am d64",
     "unknownthing", "linux(1.0/amd64", "windows(%zz)/amd64", "amd64(1.0)"],
)  # fmt: skip
def test_invalid_specifiers(specifier: str) -> None:
    with pytest.raises(InvalidPlatform) as caught:
        parse_platform(specifier, host=AMD64_HOST)
    assert repr(specifier) in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_normalize_platform_and_matches_accept_spec_platforms() -> None:
    spec = Platform(os="linux", architecture="aarch64", variant="v8")
    assert normalize_platform("linux", "aarch64", "v8") == NormalizedPlatform("linux", "arm64")
    assert matches(parse_platform("linux/arm64"), spec)
    assert matches(Platform(os="linux", architecture="arm"), parse_platform("linux/arm/v7"))
    assert not matches(parse_platform("linux/arm/v6"), Platform(os="linux", architecture="arm"))
    assert not matches(parse_platform("linux/amd64"), parse_platform("linux/386"))
    assert not matches(parse_platform("linux/amd64"), parse_platform("windows/amd64"))


def test_os_features_and_windows_versions() -> None:
    with_feature = Platform(os="windows", architecture="amd64", os_features=("win32k",))
    assert matches(parse_platform("windows(+win32k)/amd64"), with_feature)
    assert not matches(parse_platform("windows/amd64"), with_feature)
    server_2019 = Platform(os="windows", architecture="amd64", os_version="10.0.17763.1040")
    assert matches(parse_platform("windows(10.0.17763.5)/amd64"), server_2019)
    assert not matches(parse_platform("windows(10.0.20348)/amd64"), server_2019)
    assert matches(parse_platform("windows/amd64"), server_2019)


@pytest.mark.parametrize(
    ("specifier", "order"),
    [
        ("linux/arm/v7", ["linux/arm/v7", "linux/arm/v6", "linux/arm/v5"]),
        ("linux/arm/v6", ["linux/arm/v6", "linux/arm/v5"]),
        ("linux/arm/v5", ["linux/arm/v5"]),
        ("linux/arm64", ["linux/arm64", "linux/arm/v8", "linux/arm/v7", "linux/arm/v6", "linux/arm/v5"]),
        ("linux/arm64/v8.2", ["linux/arm64/v8.2", "linux/arm64/v8.1", "linux/arm64", "linux/arm/v8",
                              "linux/arm/v7", "linux/arm/v6", "linux/arm/v5"]),
        ("linux/arm64/v9.1", ["linux/arm64/v9.1", "linux/arm64/v9", "linux/arm64/v8.6", "linux/arm64/v8.5",
                              "linux/arm64/v8.4", "linux/arm64/v8.3", "linux/arm64/v8.2", "linux/arm64/v8.1",
                              "linux/arm64", "linux/arm/v8", "linux/arm/v7", "linux/arm/v6", "linux/arm/v5"]),
        ("linux/amd64", ["linux/amd64", "linux/386"]),
        ("linux/amd64/v3", ["linux/amd64/v3", "linux/amd64/v2", "linux/amd64", "linux/386"]),
        ("linux/s390x", ["linux/s390x"]),
    ],
)  # fmt: skip
def test_compatible_platforms_follow_containerd_order(specifier: str, order: list[str]) -> None:
    assert [str(p) for p in compatible_platforms(parse_platform(specifier))] == order


def test_is_compatible() -> None:
    assert is_compatible(parse_platform("linux/arm64"), Platform(os="linux", architecture="arm", variant="v7"))
    assert not is_compatible(parse_platform("linux/arm/v6"), Platform(os="linux", architecture="arm", variant="v7"))


def docker_list() -> DockerManifestList:
    model = parse_manifest((DATA / "docker-manifest-list.json").read_bytes()).model
    assert isinstance(model, DockerManifestList)
    return model


def digest_for(index: DockerManifestList, os_name: str, arch: str, variant: str | None = None) -> str:
    for entry in index.manifests:
        platform = entry.platform
        if platform and (platform.os, platform.architecture, platform.variant) == (os_name, arch, variant):
            return str(entry.digest)
    raise AssertionError("fixture lacks the platform")


@pytest.mark.parametrize(
    ("wanted", "chosen"),
    [
        ("linux/amd64", ("linux", "amd64", None)),
        ("linux/x86_64", ("linux", "amd64", None)),
        ("linux/arm/v7", ("linux", "arm", "v7")),
        ("linux/arm", ("linux", "arm", "v7")),
        ("linux/armhf", ("linux", "arm", "v7")),
        ("linux/arm/v6", ("linux", "arm", "v6")),
        ("linux/armel", ("linux", "arm", "v6")),
        ("linux/arm64", ("linux", "arm64", "v8")),
        ("linux/aarch64", ("linux", "arm64", "v8")),
        ("linux/arm64/v8", ("linux", "arm64", "v8")),
        ("linux/386", ("linux", "386", None)),
        ("linux/ppc64le", ("linux", "ppc64le", None)),
    ],
)
def test_choose_manifest_exact(wanted: str, chosen: tuple[str, str, str | None]) -> None:
    index = docker_list()
    assert str(choose_manifest(index, wanted).digest) == digest_for(index, *chosen)


def test_choose_manifest_falls_back_to_lower_arm_variants_in_order() -> None:
    document = json.loads((DATA / "docker-manifest-list.json").read_bytes())
    only_arm_low = [m for m in document["manifests"] if m["platform"].get("variant") in {"v5", "v6"}]
    index = DockerManifestList.model_validate({**document, "manifests": only_arm_low})
    assert choose_manifest(index, "linux/arm/v7").platform == Platform(os="linux", architecture="arm", variant="v6")
    assert choose_manifest(index, "linux/arm64").platform == Platform(os="linux", architecture="arm", variant="v6")
    with pytest.raises(NoMatchingPlatform):
        choose_manifest(index, "linux/arm/v7", strict=True)


def test_choose_manifest_prefers_the_first_of_equal_entries_and_skips_unplatformed() -> None:
    document = json.loads((DATA / "oci-index.json").read_bytes())
    index = ImageIndex.model_validate(document)
    assert choose_manifest(index, "linux/amd64").digest == index.manifests[1].digest
    unplatformed = {**document["manifests"][1]}
    del unplatformed["platform"]
    index = ImageIndex.model_validate({**document, "manifests": [unplatformed, *document["manifests"]]})
    assert choose_manifest(index, "linux/amd64").digest == index.manifests[2].digest


def test_no_matching_platform_lists_what_the_index_holds() -> None:
    index = ImageIndex.model_validate(json.loads((DATA / "oci-index.json").read_bytes()))
    with pytest.raises(NoMatchingPlatform) as caught:
        choose_manifest(index, "linux/s390x")
    assert caught.value.wanted == "linux/s390x"
    assert caught.value.available == ["linux/ppc64le", "linux/amd64", "windows/amd64", "unknown/unknown"]
    assert "linux/ppc64le, linux/amd64" in str(caught.value)


def test_choose_manifest_refuses_a_bad_specifier() -> None:
    with pytest.raises(InvalidPlatform):
        choose_manifest(docker_list(), "linux/*")


@pytest.mark.parametrize(
    ("sysname", "machine", "expected"),
    [
        ("Linux", "x86_64", "linux/amd64"),
        ("Linux", "aarch64", "linux/arm64"),
        ("Linux", "armv7l", "linux/arm/v7"),
        ("Linux", "armv6l", "linux/arm/v6"),
        ("Linux", "armv8l", "linux/arm/v8"),
        ("Linux", "i686", "linux/386"),
        ("Linux", "ppc64le", "linux/ppc64le"),
        ("Linux", "s390x", "linux/s390x"),
        ("Linux", "riscv64", "linux/riscv64"),
        ("Linux", "loongarch64", "linux/loong64"),
        ("Darwin", "arm64", "darwin/arm64"),
        ("FreeBSD", "amd64", "freebsd/amd64"),
    ],
)
def test_platform_from_uname(sysname: str, machine: str, expected: str) -> None:
    assert str(platform_from_uname(sysname, machine)) == expected


def test_host_platform_is_this_machine() -> None:
    host = host_platform()
    assert host == platform_from_uname(os.uname().sysname, os.uname().machine)
    assert host.os == os.uname().sysname.lower()
    assert host.architecture in KNOWN_ARCHITECTURES
    assert parse_platform(host.os) == host


def test_importing_platform_does_not_import_pydantic() -> None:
    code = "import sys, pallet.oci.platform; assert 'pydantic' not in sys.modules, 'pydantic imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
