"""registries.conf loading and short-name resolution.

Fixtures under data/registries/ are transcribed from containers/image's testdata;
other configurations are written per test into a temporary directory. No test
reads the host's /etc/containers or $HOME.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pallet.oci.errors import InvalidReference, RegistriesConfError, ShortNameError
from pallet.oci.reference import parse
from pallet.oci.shortnames import (
    DEFAULT_SHORT_NAME_MODE,
    NO_TTY_MESSAGE,
    Mirror,
    PullFromMirror,
    RegistriesConf,
    Registry,
    ResolutionSource,
    ShortNameMode,
    load_registries_conf,
    prefix_matches,
    resolve_short_name,
)

DATA = Path(__file__).parent / "data" / "registries"
DIGEST = "sha256:d366a4665ab44f0648d7a00ae3fae139d55e32f9712c67accd604bb55df9d05a"


def load(path: Path) -> RegistriesConf:
    return load_registries_conf(path, env={})


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def conf_from(tmp_path: Path, text: str) -> RegistriesConf:
    return load(write(tmp_path / "registries.conf", text))


def resolve(name: str, conf: RegistriesConf, **options: Any) -> list[str]:
    return [str(candidate) for candidate in resolve_short_name(name, conf, **options).candidates]


# --- find_registry (containers/image TestFindRegistry, TestRefMatching*Prefix) -------------


@pytest.fixture(scope="module")
def find_registry_conf() -> RegistriesConf:
    return load(DATA / "find-registry.conf")


def test_drop_ins_merge_registries_by_prefix(find_registry_conf: RegistriesConf) -> None:
    assert len(find_registry_conf.registries) == 19
    prefixes = [registry.prefix for registry in find_registry_conf.registries]
    assert prefixes == sorted(prefixes)
    drop_ins = sorted((DATA / "find-registry.conf.d").glob("*.conf"))
    assert find_registry_conf.sources == (DATA / "find-registry.conf", *drop_ins)


@pytest.mark.parametrize(
    ("name", "prefix", "location"),
    [
        ("simple-prefix.com/foo/bar:latest", "simple-prefix.com", "registry.com:5000"),
        ("simple-prefix.com/", "simple-prefix.com", "registry.com:5000"),
        ("simple-prefix.com", "simple-prefix.com", "registry.com:5000"),
        ("not.so.simple-prefix.com/", "*.so.simple-prefix.com", "subdomain-prefix.com"),
        ("not.quite.simple-prefix.com/", "*.simple-prefix.com", "subdomain-prefix-2.com"),
        ("not.quite.simple-prefix.com:5000/with/path/and/beyond:tag", "*.simple-prefix.com", "subdomain-prefix-2.com"),
        (
            "really.not.quite.simple-prefix.com:5000/with/path/and/beyond:tag",
            "*.not.quite.simple-prefix.com",
            "subdomain-prefix-1-overridden-by-dropin-location.com",
        ),
        ("foo.docker.io:5000/omg/wtf/bbq:foo", "*.docker.io", "subdomain-prefix-2.com"),
        (
            f"foo.bar.example.com:6000/omg/wtf/bbq@sha256:{'a' * 64}",
            "*.bar.example.com",
            "subdomain-prefix-3-overridden-by-dropin-location.com",
        ),
        ("foo.bar.docker.io:5000/omg/wtf/bbq:foo", "*.bar.docker.io", "subdomain-prefix-4.com"),
        ("foo.bar.example.com:5000/omg/wtf/bbq:foo", "foo.bar.example.com:5000", "subdomain-prefix-5.com"),
        ("complex-prefix.com:4000/with/path/and/beyond:tag", "complex-prefix.com:4000/with/path", "another-registry.com:5000"),
        ("no-prefix.com/foo:tag", "no-prefix.com", "no-prefix.com"),
        ("empty-prefix.com/foo:tag", "empty-prefix.com", "empty-prefix.com"),
        ("abc.internal.registry.com/foo:bar", "*.internal.registry.com", ""),
    ],
)
def test_find_registry_takes_the_longest_matching_prefix(
    find_registry_conf: RegistriesConf, name: str, prefix: str, location: str
) -> None:
    found = find_registry_conf.find_registry(name)
    assert found is not None
    assert (found.prefix, found.location) == (prefix, location)


def test_find_registry_without_a_match(find_registry_conf: RegistriesConf) -> None:
    assert find_registry_conf.find_registry("simple-prefix.comx") is None


def test_find_registry_accepts_a_reference(find_registry_conf: RegistriesConf) -> None:
    found = find_registry_conf.find_registry(parse("base.com/app:1"))
    assert found == Registry(prefix="base.com", location="base.com", blocked=True)


@pytest.mark.parametrize(
    "case", json.loads((DATA / "prefix_matching.json").read_text())["cases"], ids=lambda c: f"{c['name']} {c['prefix']}"
)
def test_prefix_matching_like_sysregistriesv2(case: dict[str, Any]) -> None:
    assert prefix_matches(case["name"], case["prefix"]) is case["matches"]


# --- which files are read ------------------------------------------------------------------


def test_a_later_drop_in_replaces_search_registries_and_aliases(find_registry_conf: RegistriesConf) -> None:
    config_1 = DATA / "find-registry.conf.d" / "config-1.conf"
    assert find_registry_conf.search_registries == ("example-overwrite.com",)
    assert find_registry_conf.search_registries_origin == config_1
    assert str(find_registry_conf.alias("docker")) == "docker.io/library/config1"
    assert find_registry_conf.aliases["barz"].origin == config_1


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    """A system and a user configuration under tmp_path, neither one the host's."""
    system = write(tmp_path / "etc" / "registries.conf", 'unqualified-search-registries = ["system.example"]\n')
    write(tmp_path / "etc" / "registries.conf.d" / "10-mode.conf", 'short-name-mode = "disabled"\n')
    home = tmp_path / "home"
    user_dir = home / ".config" / "containers"
    write(user_dir / "registries.conf.d" / "20-user.conf", '[aliases]\nmine = "user.example/mine"\n')
    return {"system": system, "home": home, "user": user_dir / "registries.conf"}


def test_without_a_user_file_the_system_file_and_both_drop_in_dirs_are_read(layout: dict[str, Path]) -> None:
    conf = load_registries_conf(env={}, home=layout["home"], system_path=layout["system"])
    assert conf.search_registries == ("system.example",)
    assert conf.short_name_mode is ShortNameMode.DISABLED
    assert str(conf.alias("mine")) == "user.example/mine"
    assert len(conf.sources) == 3


def test_a_user_file_replaces_the_system_file_and_its_drop_ins(layout: dict[str, Path]) -> None:
    write(layout["user"], 'unqualified-search-registries = ["user.example"]\n')
    conf = load_registries_conf(env={}, home=layout["home"], system_path=layout["system"])
    assert conf.search_registries == ("user.example",)
    assert conf.short_name_mode is DEFAULT_SHORT_NAME_MODE  # the system drop-in is not read
    assert str(conf.alias("mine")) == "user.example/mine"
    assert conf.sources[0] == layout["user"]


def test_xdg_config_home_locates_the_user_file(layout: dict[str, Path], tmp_path: Path) -> None:
    write(tmp_path / "xdg" / "containers" / "registries.conf", 'unqualified-search-registries = ["xdg.example"]\n')
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    conf = load_registries_conf(env=env, home=layout["home"], system_path=layout["system"])
    assert conf.search_registries == ("xdg.example",)


def test_the_environment_variable_names_the_file(layout: dict[str, Path], tmp_path: Path) -> None:
    chosen = write(tmp_path / "chosen.conf", 'unqualified-search-registries = ["env.example"]\n')
    write(tmp_path / "chosen.conf.d" / "a.conf", 'short-name-mode = "enforcing"\n')
    env = {"CONTAINERS_REGISTRIES_CONF": str(chosen)}
    conf = load_registries_conf(env=env, home=layout["home"], system_path=layout["system"])
    assert (conf.search_registries, conf.short_name_mode) == (("env.example",), ShortNameMode.ENFORCING)
    assert conf.alias("mine") is None  # the user's drop-ins belong to the default search only


def test_a_missing_named_file_is_an_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.conf"
    with pytest.raises(RegistriesConfError, match=str(missing)):
        load(missing)
    with pytest.raises(RegistriesConfError, match="nope.conf"):
        load_registries_conf(env={"CONTAINERS_REGISTRIES_CONF": str(missing)})


def test_a_missing_system_file_is_an_empty_configuration(tmp_path: Path) -> None:
    conf = load_registries_conf(env={}, home=tmp_path, system_path=tmp_path / "absent.conf")
    assert conf == RegistriesConf()
    assert conf.short_name_mode is ShortNameMode.PERMISSIVE


# --- what a file may say --------------------------------------------------------------------


def test_registry_tables_keep_their_fields(tmp_path: Path) -> None:
    conf = conf_from(
        tmp_path,
        """
[[registry]]
prefix = "example.com/foo"
location = "internal.example.net/bar///"
insecure = true

[[registry.mirror]]
location = "mirror-0.local/foo"

[[registry.mirror]]
location = "mirror-1.local/foo"
insecure = true
pull-from-mirror = "digest-only"

[[registry]]
location = "quay.io"
blocked = true
mirror-by-digest-only = true

[[registry]]
location = "quay.io"
blocked = true
insecure = false
""",
    )
    assert conf.registries == (
        Registry(
            prefix="example.com/foo",
            location="internal.example.net/bar",
            insecure=True,
            mirrors=(
                Mirror("mirror-0.local/foo"),
                Mirror("mirror-1.local/foo", insecure=True, pull_from_mirror=PullFromMirror.DIGEST_ONLY),
            ),
        ),
        Registry(prefix="quay.io", location="quay.io", blocked=True, mirror_by_digest_only=True),
    )


def test_the_v1_format_alone_is_read_as_v2(tmp_path: Path) -> None:
    conf = conf_from(
        tmp_path,
        """
[registries.search]
registries = ["registry-a.com////", "registry-c.com", "registry-d.com"]
[registries.block]
registries = ["registry-b.com"]
[registries.insecure]
registries = ["registry-d.com", "registry-e.com", "registry-a.com"]
""",
    )
    assert conf.search_registries == ("registry-a.com", "registry-c.com", "registry-d.com")
    assert [(r.location, r.insecure, r.blocked) for r in conf.registries] == [
        ("registry-a.com", True, False),
        ("registry-b.com", False, True),
        ("registry-d.com", True, False),
        ("registry-e.com", True, False),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('unqualified-search-registries = ["a.com"]\n[registries.search]\nregistries = ["b.com"]\n', "mixing"),
        # containers/image testdata/mixing-v1-v2-empty.conf: empty lists still count as set
        (
            "unqualified-search-registries = []\n[registries.search]\nregistries = []\n"
            "[registries.block]\nregistries = []\n[registries.insecure]\nregistries = []\n",
            "mixing",
        ),
        ('[[registry]]\nlocation = "r.com"\n[[registry]]\nlocation = "r.com"\ninsecure = true\n', "'insecure'"),
        ('[[registry]]\nlocation = "r.com"\n[[registry]]\nprefix = "r.com/x"\nlocation = "r.com"\nblocked = true\n', "'blocked'"),
        ('[[registry]]\nlocation = "r.com"\n[[registry.mirror]]\ninsecure = true\n', "mirror location is unset"),
        ('[[registry]]\ninsecure = true\n', "both location and prefix are unset"),
        ('[[registry]]\nprefix = "example.com"\n', "location is unset"),
        ('[[registry]]\nprefix = "*.example.com/foo"\nlocation = "x.com"\n', "wildcarded prefix"),
        ('[[registry]]\nlocation = "https://r.com"\n', "URI schemes are not supported"),
        ('[[registry]]\nlocation = "r.com"\npull-from-mirror = "all"\n', "non-mirror registry"),
        ('[[registry]]\nlocation = "r.com"\n[[registry.mirror]]\nlocation = "m.com"\npull-from-mirror = "x"\n', "unsupported"),
        (
            '[[registry]]\nlocation = "r.com"\nmirror-by-digest-only = true\n'
            '[[registry.mirror]]\nlocation = "m.com"\npull-from-mirror = "tag-only"\n',
            "at the same time",
        ),
        ('[[registry]]\nlocation = "r.com"\ninsecure = "yes"\n', "true or false"),
        ('unqualified-search-registries = "quay.io"\n', "array of strings"),
        ('unqualified-search-registries = ["quay.io/library"]\n', "invalid unqualified-search-registries entry"),
        ('short-name-mode = "prompt"\n', "invalid short-name-mode"),
        ('[aliases]\n"quay.io/foo" = "quay.io/foo"\n', "must be a short name"),
        ('[aliases]\n"foo:1" = "quay.io/foo"\n', "must be a short name"),
        ('[aliases]\nfoo = "quay.io/foo:1"\n', "must not contain a tag or digest"),
        (f'[aliases]\nfoo = "quay.io/foo@{DIGEST}"\n', "must not contain a tag or digest"),
        ('[aliases]\nfoo = "library/foo"\n', "must contain a registry"),
        ('[aliases]\nfoo = "quay.io/Foo"\n', "lowercase"),
        ("[aliases\nfoo = 1\n", "malformed TOML"),
    ],
)
def test_an_invalid_file_is_refused_naming_it(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(RegistriesConfError) as caught:
        conf_from(tmp_path, text)
    assert str(caught.value).startswith(f"{tmp_path / 'registries.conf'}: ")
    assert message in str(caught.value)


def test_every_bad_alias_is_reported_at_once(tmp_path: Path) -> None:
    with pytest.raises(RegistriesConfError) as caught:
        conf_from(tmp_path, '[aliases]\na = "quay.io/a:1"\nb = "b"\n')
    assert "'a'" in str(caught.value) and "'b'" in str(caught.value)


def test_a_malformed_drop_in_is_refused_naming_it(tmp_path: Path) -> None:
    main = write(tmp_path / "registries.conf", "")
    bad = write(tmp_path / "registries.conf.d" / "50-bad.conf", "unqualified-search-registries = [\n")
    with pytest.raises(RegistriesConfError, match=str(bad)):
        load(main)


def test_a_drop_in_must_use_the_v2_format(tmp_path: Path) -> None:
    main = write(tmp_path / "registries.conf", "")
    write(tmp_path / "registries.conf.d" / "v1.conf", '[registries.search]\nregistries = ["a.com"]\n')
    with pytest.raises(RegistriesConfError, match="v2 format"):
        load(main)


def test_an_empty_alias_in_a_later_file_erases_the_alias(tmp_path: Path) -> None:
    main = write(tmp_path / "registries.conf", '[aliases]\nfoo = "quay.io/foo"\nbar = "quay.io/bar"\n')
    write(tmp_path / "registries.conf.d" / "10.conf", '[aliases]\nfoo = ""\nbar = "example.com/bar"\n')
    conf = load(main)
    assert conf.alias("foo") is None
    assert str(conf.alias("bar")) == "example.com/bar"


def test_the_first_of_equal_prefixes_in_one_file_wins_and_a_later_file_replaces_it(tmp_path: Path) -> None:
    main = write(
        tmp_path / "registries.conf",
        '[[registry]]\nprefix = "a.com"\nlocation = "one.com"\n[[registry]]\nprefix = "a.com"\nlocation = "two.com"\n',
    )
    assert [r.location for r in load(main).registries] == ["one.com"]
    write(tmp_path / "registries.conf.d" / "x.conf", '[[registry]]\nprefix = "a.com"\nlocation = "three.com"\n')
    assert [r.location for r in load(main).registries] == ["three.com"]


# --- resolution (containers/image pkg/shortnames tests) -----------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("docker", "docker.io/library/foo:latest"),
        ("docker:tag", "docker.io/library/foo:tag"),
        (f"docker@{DIGEST}", f"docker.io/library/foo@{DIGEST}"),
        ("quay/foo", "quay.io/library/foo:latest"),
        ("quay/foo:tag", "quay.io/library/foo:tag"),
        (f"quay/foo@{DIGEST}", f"quay.io/library/foo@{DIGEST}"),
        ("example", "example.com/library/foo:latest"),
        ("example:tag", "example.com/library/foo:tag"),
        (f"example@{DIGEST}", f"example.com/library/foo@{DIGEST}"),
        (f"example:tag@{DIGEST}", f"example.com/library/foo:tag@{DIGEST}"),
    ],
)
def test_an_alias_resolves_to_one_candidate_keeping_tag_and_digest(name: str, expected: str) -> None:
    resolution = resolve_short_name(name, load(DATA / "aliases.conf"))
    assert [str(c) for c in resolution.candidates] == [expected]
    assert (resolution.source, resolution.origin, resolution.ambiguous) == (
        ResolutionSource.ALIAS,
        DATA / "aliases.conf",
        False,
    )
    assert resolution.description() == f"Resolved {name!r} as an alias ({DATA / 'aliases.conf'})"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("quay.io/repo/fedora", "quay.io/repo/fedora:latest"),
        ("localhost/repo/fedora:sometag", "localhost/repo/fedora:sometag"),
        ("docker.io/fedora", "docker.io/library/fedora:latest"),
        ("index.docker.io/fedora:39", "docker.io/library/fedora:39"),
    ],
)
def test_a_fully_qualified_name_is_its_own_candidate(name: str, expected: str) -> None:
    resolution = resolve_short_name(name, load(DATA / "aliases.conf"))
    assert ([str(c) for c in resolution.candidates], resolution.source) == ([expected], ResolutionSource.FULLY_QUALIFIED)
    assert resolution.description() == ""


def test_no_alias_and_no_search_registries_is_an_error_naming_the_file() -> None:
    with pytest.raises(ShortNameError) as caught:
        resolve_short_name("doesnotexist", load(DATA / "aliases.conf"))
    assert str(caught.value) == (
        "short-name 'doesnotexist' did not resolve to an alias and no unqualified-search "
        f"registries are defined in {DATA / 'aliases.conf'}"
    )
    with pytest.raises(ShortNameError, match="did not resolve to an alias"):
        resolve_short_name("empty", load(DATA / "aliases.conf"))  # its alias value "" erases it


def test_without_any_configuration_the_error_says_so() -> None:
    with pytest.raises(ShortNameError, match=r"no containers-registries.conf\(5\) was found"):
        resolve_short_name("fedora", RegistriesConf())


@pytest.mark.parametrize("name", ["", "Invalid#$", "UPPER"])
def test_an_invalid_name_is_an_invalid_reference(name: str) -> None:
    with pytest.raises(InvalidReference):
        resolve_short_name(name, load(DATA / "two-reg.conf"))


@pytest.mark.parametrize(
    ("conf_file", "mode", "name", "count"),
    [
        # containers/image TestResolveWithVaryingShortNameModes, without a TTY; 0 means an error
        *[(f, m, "repo/image", 1) for f in ("no-reg", "one-reg", "two-reg") for m in ShortNameMode],
        ("no-reg", ShortNameMode.PERMISSIVE, "doesnotexist", 0),
        ("one-reg", ShortNameMode.PERMISSIVE, "doesnotexist", 1),
        ("two-reg", ShortNameMode.PERMISSIVE, "doesnotexist", 2),
        ("no-reg", ShortNameMode.DISABLED, "doesnotexist", 0),
        ("one-reg", ShortNameMode.DISABLED, "doesnotexist", 1),
        ("two-reg", ShortNameMode.DISABLED, "doesnotexist", 2),
        ("no-reg", ShortNameMode.ENFORCING, "doesnotexist", 0),
        ("one-reg", ShortNameMode.ENFORCING, "doesnotexist", 1),
        ("two-reg", ShortNameMode.ENFORCING, "doesnotexist", 0),
    ],
)
def test_short_name_modes_without_a_tty(conf_file: str, mode: ShortNameMode, name: str, count: int) -> None:
    conf = load(DATA / f"{conf_file}.conf")
    if count == 0:
        with pytest.raises(ShortNameError):
            resolve_short_name(name, conf, mode=mode)
    else:
        assert len(resolve_short_name(name, conf, mode=mode).candidates) == count


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("foo", ["quay.io/foo:latest", "registry.com/foo:latest"]),
        ("foo:tag", ["quay.io/foo:tag", "registry.com/foo:tag"]),
        (f"foo@{DIGEST}", [f"quay.io/foo@{DIGEST}", f"registry.com/foo@{DIGEST}"]),
        ("repo/foo", ["quay.io/repo/foo:latest", "registry.com/repo/foo:latest"]),
        ("repo/foo:tag", ["quay.io/repo/foo:tag", "registry.com/repo/foo:tag"]),
        ("repo/image", ["quay.io/repo/image:latest"]),
        ("repo/image:tag", ["quay.io/repo/image:tag"]),
        (f"repo/image@{DIGEST}", [f"quay.io/repo/image@{DIGEST}"]),
    ],
)
def test_search_registries_give_candidates_in_order(name: str, expected: list[str]) -> None:
    assert resolve(name, load(DATA / "two-reg.conf")) == expected  # default mode: permissive


def test_docker_io_search_adds_library_for_one_component_names(tmp_path: Path) -> None:
    conf = conf_from(tmp_path, 'unqualified-search-registries = ["docker.io", "quay.io"]\n')
    assert resolve("nginx", conf) == ["docker.io/library/nginx:latest", "quay.io/nginx:latest"]
    assert resolve("bitnami/nginx:1", conf) == ["docker.io/bitnami/nginx:1", "quay.io/bitnami/nginx:1"]


def test_enforcing_without_a_tty_refuses_an_ambiguous_name_as_podman_does() -> None:
    with pytest.raises(ShortNameError) as caught:
        resolve_short_name("foo", load(DATA / "two-reg.conf"), mode=ShortNameMode.ENFORCING)
    assert str(caught.value).startswith(NO_TTY_MESSAGE)
    assert "quay.io/foo:latest, registry.com/foo:latest" in str(caught.value)


def test_a_caller_that_can_prompt_is_asked_to_and_records_the_choice() -> None:
    conf = load(DATA / "two-reg.conf")
    for mode in (ShortNameMode.ENFORCING, ShortNameMode.PERMISSIVE):
        resolution = resolve_short_name("foo", conf, can_prompt=True, mode=mode)
        assert resolution.must_prompt and resolution.ambiguous
    assert resolution.description() == f"Resolving 'foo' using unqualified-search registries ({DATA / 'two-reg.conf'})"
    chosen = resolution.choose(resolution.candidates[1])
    assert ([str(c) for c in chosen.candidates], chosen.source) == (
        ["registry.com/foo:latest"],
        ResolutionSource.USER_SELECTION,
    )
    with pytest.raises(ValueError):
        resolution.choose(parse("elsewhere.com/foo:latest"))


def test_disabled_mode_never_prompts() -> None:
    resolution = resolve_short_name("foo", load(DATA / "two-reg.conf"), can_prompt=True, mode=ShortNameMode.DISABLED)
    assert resolution.ambiguous and not resolution.must_prompt


def test_the_configured_mode_applies_when_none_is_given(tmp_path: Path) -> None:
    conf = conf_from(tmp_path, 'short-name-mode = "enforcing"\nunqualified-search-registries = ["a.com", "b.com"]\n')
    with pytest.raises(ShortNameError, match=NO_TTY_MESSAGE):
        resolve_short_name("foo", conf)
    assert len(resolve_short_name("foo", conf, mode=ShortNameMode.PERMISSIVE).candidates) == 2


def test_a_search_registry_cannot_make_an_uppercase_name_valid() -> None:
    with pytest.raises(InvalidReference, match="lowercase"):
        resolve_short_name("Foo/bar", load(DATA / "two-reg.conf"))
