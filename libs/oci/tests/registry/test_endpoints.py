"""registries.conf applied to registry access: location, insecure, blocked, mirrors."""

from __future__ import annotations

import secrets
from dataclasses import replace
from pathlib import Path

import pytest

from pallet.oci.digest import Digest
from pallet.oci.errors import ManifestUnknown, RegistriesConfError
from pallet.oci.reference import parse_normalized
from pallet.oci.registry import RegistryClient, RegistryOptions, open_pull_source, pull_endpoints, push_endpoint
from pallet.oci.shortnames import RegistriesConf, load_registries_conf
from pallet_testing.push import push_image


def conf(tmp_path: Path, text: str) -> RegistriesConf:
    path = tmp_path / f"registries-{secrets.token_hex(3)}.conf"
    path.write_text(text)
    return load_registries_conf(path, env={}, home=tmp_path)


def shown(endpoints) -> list[tuple[str, bool, bool]]:
    return [(str(e.reference), e.insecure, e.is_mirror) for e in endpoints]


MIRRORED = """
[[registry]]
prefix = "example.com/lib"
location = "primary.example:5000/library"
insecure = true
{registry_extra}

[[registry.mirror]]
location = "mirror-one.example/cache"
{mirror_extra}

[[registry.mirror]]
location = "mirror-two.example/cache"
insecure = true
"""


def test_location_rewrites_the_prefix_for_push_and_pull(tmp_path: Path) -> None:
    registries = conf(tmp_path, MIRRORED.format(registry_extra="", mirror_extra=""))
    ref = parse_normalized("example.com/lib/app:1.0")
    pushed = push_endpoint(ref, registries)
    assert (str(pushed.reference), pushed.host, pushed.repository) == (
        "primary.example:5000/library/app:1.0", "primary.example:5000", "library/app")
    assert pushed.insecure and not pushed.is_mirror
    assert shown(pull_endpoints(ref, registries)) == [
        ("mirror-one.example/cache/app:1.0", False, True),
        ("mirror-two.example/cache/app:1.0", True, True),
        ("primary.example:5000/library/app:1.0", True, False),
    ]
    untouched = parse_normalized("example.com/other/app")
    assert shown(pull_endpoints(untouched, registries)) == [("example.com/other/app", False, False)]
    assert shown(pull_endpoints(untouched, None)) == [("example.com/other/app", False, False)]


@pytest.mark.parametrize(
    ("registry_extra", "mirror_extra", "by_tag", "by_digest"),
    [
        ("", 'pull-from-mirror = "digest-only"', 2, 3),
        ("", 'pull-from-mirror = "tag-only"', 3, 2),
        ("mirror-by-digest-only = true", "", 1, 3),
    ],
)
def test_which_pulls_use_mirrors(tmp_path, registry_extra, mirror_extra, by_tag, by_digest) -> None:
    registries = conf(tmp_path, MIRRORED.format(registry_extra=registry_extra, mirror_extra=mirror_extra))
    tagged = parse_normalized("example.com/lib/app:1.0")
    digested = parse_normalized("example.com/lib/app@sha256:" + "a" * 64)
    assert len(pull_endpoints(tagged, registries)) == by_tag
    assert len(pull_endpoints(digested, registries)) == by_digest
    assert pull_endpoints(tagged, registries)[-1].is_mirror is False


def test_blocked_registries_are_refused_but_their_mirrors_may_serve(tmp_path: Path) -> None:
    registries = conf(tmp_path, """
[[registry]]
location = "blocked.example"
blocked = true

[[registry]]
location = "shadowed.example"
blocked = true
[[registry.mirror]]
location = "open-mirror.example"
""")
    with pytest.raises(RegistriesConfError, match="registry blocked.example is blocked in"):
        push_endpoint(parse_normalized("blocked.example/x:1"), registries)
    with pytest.raises(RegistriesConfError, match="blocked"):
        pull_endpoints(parse_normalized("blocked.example/x:1"), registries)
    with pytest.raises(RegistriesConfError, match="blocked"):
        RegistryClient("blocked.example", RegistryOptions(registries_conf=registries, no_creds=True))
    assert shown(pull_endpoints(parse_normalized("shadowed.example/x:1"), registries)) == [
        ("open-mirror.example/x:1", False, True)]
    with pytest.raises(RegistriesConfError):
        push_endpoint(parse_normalized("shadowed.example/x:1"), registries)


def test_a_wildcard_prefix_keeps_the_reference_as_written(tmp_path: Path) -> None:
    registries = conf(tmp_path, """
[[registry]]
prefix = "*.internal.example"
insecure = true
[[registry.mirror]]
location = "cache.example/internal"
""")
    ref = parse_normalized("build.internal.example/team/app:2")
    assert shown(pull_endpoints(ref, registries)) == [
        ("cache.example/internal/team/app:2", False, True),
        ("build.internal.example/team/app:2", True, False),
    ]


def test_insecure_in_registries_conf_allows_plain_http(registry, isolated_env, tmp_path) -> None:
    registries = conf(tmp_path, f'[[registry]]\nlocation = "{registry.host}"\ninsecure = true\n')
    options = RegistryOptions(registries_conf=registries, no_creds=True, env=isolated_env)
    with RegistryClient(registry.host, options) as client:
        client.ping()
        assert client.session.base_url().scheme == "http"


def test_pulls_come_from_the_mirror_first_then_the_primary(registry_factory, plain_options, test_images, tmp_path) -> None:
    primary, mirror = registry_factory(), registry_factory()
    image, other = test_images.single_layer, test_images.docker_schema2
    push_image(mirror, "cache/app", image, "v1")
    push_image(primary, "library/app", other, "v2")
    registries = conf(tmp_path, f"""
[[registry]]
prefix = "example.com/lib"
location = "{primary.host}/library"
insecure = true
[[registry.mirror]]
location = "{mirror.host}/cache"
insecure = true
""")
    options = replace(plain_options, tls_verify=None, registries_conf=registries)

    source = open_pull_source(parse_normalized("example.com/lib/app:v1"), options)
    with source.client:
        assert source.endpoint.is_mirror and source.endpoint.host == mirror.host
        assert source.manifest.data == image.manifest.data
        layer = image.layers[0]
        with source.client.get_blob(source.endpoint.repository, Digest.parse(layer.digest)) as stream:
            assert stream.read() == layer.data

    fallback = open_pull_source(parse_normalized("example.com/lib/app:v2"), options)
    with fallback.client:
        assert not fallback.endpoint.is_mirror and fallback.manifest.data == other.manifest.data

    with pytest.raises(ManifestUnknown) as caught:
        open_pull_source(parse_normalized("example.com/lib/app:v3"), options)
    assert str(caught.value).startswith(f"reading manifest v3 in {primary.host}/library/app: manifest unknown")
    assert f"{mirror.host}/cache/app:v3" in str(caught.value)
