"""Image references: the distribution grammar, normalisation and familiar form.

Most cases are the public upstream test tables, transcribed into
data/reference_vectors.json (see its "about" field for the source files).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from pallet.oci.digest import Digest
from pallet.oci.errors import InvalidReference, OciError
from pallet.oci.reference import (
    Reference,
    is_short_name,
    names_a_registry,
    parse,
    parse_normalized,
    with_default_tag,
)

VECTORS: dict[str, Any] = json.loads((Path(__file__).parent / "data" / "reference_vectors.json").read_text())
SHA256 = "sha256:" + "ab" * 32


def cases(section: str) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("case", VECTORS[section], ids=lambda c: repr(c)[:60])


def digest_text(ref: Reference) -> str | None:
    return None if ref.digest is None else str(ref.digest)


# --- upstream vectors: parse (the grammar, no normalisation) ----------------------------


@cases("parse_valid")
def test_parse_splits_valid_references_like_distribution(case: dict[str, Any]) -> None:
    ref = parse(case["input"])
    assert (ref.domain, ref.path, ref.tag, digest_text(ref)) == (
        case["domain"],
        case["path"],
        case["tag"],
        case["digest"],
    )
    assert str(ref) == case["input"]


@cases("parse_invalid")
def test_parse_refuses_invalid_references_naming_the_part(case: dict[str, Any]) -> None:
    with pytest.raises(InvalidReference) as caught:
        parse(case["input"])
    assert caught.value.part == case["part"]
    assert caught.value.reference == case["input"]
    shown = case["input"] if len(case["input"]) <= 200 else case["input"][:200] + "..."
    assert str(caught.value).startswith(f"invalid reference {shown!r}: {case['part']}: ")


@cases("name_grammar")
def test_bare_names_follow_the_name_grammar(case: dict[str, Any]) -> None:
    if case.get("refused_by"):
        with pytest.raises(InvalidReference) as caught:
            parse(case["input"])
        assert caught.value.part == case["refused_by"]
    elif case["match"]:
        ref = parse(case["input"])
        assert (ref.domain, ref.path, ref.tag, ref.digest) == (case["domain"], case["path"], None, None)
    else:
        # Not a bare name: either no reference at all, or one read with a tag.
        try:
            ref = parse(case["input"])
        except InvalidReference:
            return
        assert ref.tag is not None


@cases("domain_grammar")
def test_domains_follow_the_domain_grammar(case: dict[str, Any]) -> None:
    try:
        domain = parse(case["input"] + "/repo").domain
    except InvalidReference:
        domain = None
    assert (domain == case["input"]) is case["match"]


@cases("reference_grammar")
def test_references_follow_the_reference_grammar(case: dict[str, Any]) -> None:
    if not case["match"]:
        with pytest.raises(InvalidReference) as caught:
            parse(case["input"])
        assert caught.value.part == case["part"]
        return
    ref = parse(case["input"])
    assert (ref.name, ref.tag, digest_text(ref)) == (case["name"], case["tag"], case["digest"])


@cases("domain_and_path")
def test_parse_keeps_the_written_domain(case: dict[str, Any]) -> None:
    ref = parse(case["input"])
    assert (ref.domain, ref.path) == (case["domain"], case["path"])


@cases("with_tag")
def test_with_tag_combines_name_and_tag(case: dict[str, Any]) -> None:
    assert str(parse(case["name"]).with_tag(case["tag"])) == case["combined"]


# --- upstream vectors: normalisation and familiar form -----------------------------------


@pytest.mark.parametrize("text", VECTORS["normalize_valid"])
def test_parse_normalized_accepts_valid_names(text: str) -> None:
    assert parse_normalized(text).domain


@pytest.mark.parametrize("text", VECTORS["normalize_invalid"], ids=lambda t: t[:60])
def test_parse_normalized_refuses_invalid_names(text: str) -> None:
    with pytest.raises(InvalidReference) as caught:
        parse_normalized(text)
    assert caught.value.reference == text


@cases("normalized_split")
def test_parse_normalized_splits_domain_and_path(case: dict[str, Any]) -> None:
    ref = parse_normalized(case["input"])
    assert (ref.domain, ref.path) == (case["domain"], case["path"])


def repository_info_inputs() -> list[tuple[str, dict[str, Any]]]:
    return [
        (text, case)
        for case in VECTORS["repository_info"]
        for text in (case["familiar"], case["full"], case["ambiguous"])
        if text
    ]


@pytest.mark.parametrize(("text", "case"), repository_info_inputs(), ids=lambda v: str(v)[:50])
def test_every_spelling_normalizes_to_the_same_repository(text: str, case: dict[str, Any]) -> None:
    ref = parse_normalized(text)
    assert (str(ref), ref.familiar(), ref.domain, ref.path) == (
        case["full"],
        case["familiar"],
        case["domain"],
        case["remote_name"],
    )


@cases("familiar_strings")
def test_familiar_keeps_tag_and_digest(case: dict[str, Any]) -> None:
    ref = parse_normalized(case["input"])
    assert (str(ref), ref.familiar(), ref.is_tagged, ref.is_digested) == (case["full"], case["familiar"], True, True)


@cases("parse_any_named")
def test_parse_normalized_fully_qualifies_names(case: dict[str, Any]) -> None:
    assert str(parse_normalized(case["input"])) == case["full"]
    assert parse_normalized(case["input"]) == parse(case["full"])


@cases("default_tag")
def test_with_default_tag_adds_latest_only_without_tag_or_digest(case: dict[str, Any]) -> None:
    assert str(with_default_tag(parse_normalized(case["input"]))) == case["expected"]


@cases("canonical")
def test_canonical_names_are_those_that_normalize_to_themselves(case: dict[str, Any]) -> None:
    ref = parse_normalized(case["input"])
    assert (str(ref) == case["input"]) is case["canonical"]
    if case["canonical"]:
        assert (ref.domain, ref.path) == (case["domain"], case["path"])


@cases("is_short_name")
def test_is_short_name_like_containers_image(case: dict[str, Any]) -> None:
    if case["short"] is None:
        with pytest.raises(InvalidReference):
            is_short_name(case["input"])
    else:
        assert is_short_name(case["input"]) is case["short"]


# --- behaviour beyond the upstream tables ---------------------------------------------------


def test_error_message_names_the_part_and_the_reason() -> None:
    with pytest.raises(InvalidReference) as caught:
        parse_normalized("foo/Bar")
    assert str(caught.value) == "invalid reference 'foo/Bar': name: repository name must be lowercase"
    assert isinstance(caught.value, OciError) and isinstance(caught.value, ValueError)


def test_an_uppercase_first_component_is_read_as_a_registry_as_upstream_does() -> None:
    assert parse_normalized("Foo/bar") == Reference("Foo", "bar")
    assert is_short_name("Foo/bar")


@pytest.mark.parametrize(
    ("text", "part"),
    [
        ("nginx\n", "path component"),  # Python's "$" would accept a trailing newline; the grammar does not
        ("nginx:latest\n", "tag"),
        ("nginx:t\u00e9", "tag"),  # \w is ASCII in the grammar
        ("n\u00efnx", "path component"),
        ("nginx:" + "t" * 129, "tag"),
        ("nginx:", "tag"),
        ("nginx@sha256:" + "AB" * 32, "digest"),
        ("nginx@" + SHA256 + "@" + SHA256, "digest"),
        ("foo:bar/baz", "domain"),
        ("docker.io/library/", "path component"),
    ],
)
def test_parse_refuses_near_misses(text: str, part: str) -> None:
    with pytest.raises(InvalidReference) as caught:
        parse(text)
    assert caught.value.part == part


def test_familiar_drops_docker_io_and_library() -> None:
    assert parse("docker.io/library/nginx:latest").familiar() == "nginx:latest"
    assert parse("docker.io/foo/bar").familiar() == "foo/bar"
    assert parse("docker.io/library/foo/bar").familiar() == "library/foo/bar"
    assert parse("quay.io/library/nginx").familiar() == "quay.io/library/nginx"
    assert parse("nginx").familiar() == "nginx"


@pytest.mark.parametrize(
    ("text", "familiar"),
    [
        ("docker.io/foo.com/bar", "docker.io/foo.com/bar"),  # "foo.com/bar" would name registry foo.com
        ("docker.io/localhost/bar:1", "docker.io/localhost/bar:1"),
        ("docker.io/library/" + "a" * 64, "library/" + "a" * 64),  # a bare 64-hex string is an image ID
        ("docker.io/nginx", "docker.io/nginx"),  # not normalized: "nginx" means docker.io/library/nginx
    ],
)
def test_familiar_never_names_another_image(text: str, familiar: str) -> None:
    ref = parse(text)
    assert ref.familiar() == familiar
    if parse_normalized(text) == ref:
        assert parse_normalized(familiar) == ref


def test_parse_normalized_maps_the_legacy_docker_index() -> None:
    assert str(parse_normalized("index.docker.io/nginx:1")) == "docker.io/library/nginx:1"


def test_parse_normalized_refuses_an_invalid_registry_it_split_off() -> None:
    with pytest.raises(InvalidReference) as caught:
        parse_normalized("foo_bar.com/app")
    assert caught.value.part == "domain"


def test_a_reference_is_an_immutable_value() -> None:
    ref = parse("example.com/a/b:1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ref.tag = "2"  # type: ignore[misc]
    assert {ref, parse("example.com/a/b:1")} == {ref}
    assert ref.name == "example.com/a/b"


def test_with_tag_and_with_digest_keep_each_other() -> None:
    ref = parse("example.com/app:1").with_digest(SHA256)
    assert str(ref) == f"example.com/app:1@{SHA256}"
    assert ref.digest == Digest.parse(SHA256)
    assert str(ref.with_tag("2")) == f"example.com/app:2@{SHA256}"
    assert ref.without_tag_or_digest() == Reference("example.com", "app")
    assert (ref.is_tagged, ref.is_digested) == (True, True)
    assert with_default_tag(ref) is ref


@pytest.mark.parametrize(
    ("change", "part"),
    [
        (lambda r: r.with_tag("-x"), "tag"),
        (lambda r: r.with_digest("foo"), "digest"),
        (lambda r: r.with_digest("sha256:" + "f" * 35), "digest"),
    ],
)
def test_with_tag_and_with_digest_validate(change: Any, part: str) -> None:
    with pytest.raises(InvalidReference) as caught:
        change(parse_normalized("busybox"))
    assert caught.value.part == part


@pytest.mark.parametrize(
    ("args", "part"),
    [
        (("Example.com", "Foo"), "name"),
        (("bad_host", "foo"), "domain"),
        ((None, "library/foo"), "domain"),  # would read back with domain "library"
        (("example.com", "a" * 250), "length"),
        (("example.com", ""), "path component"),
    ],
)
def test_constructing_a_reference_validates_it(args: tuple[str | None, str], part: str) -> None:
    with pytest.raises(InvalidReference) as caught:
        Reference(*args)
    assert caught.value.part == part


def test_a_reference_digest_must_be_a_digest() -> None:
    with pytest.raises(TypeError):
        Reference("example.com", "foo", None, SHA256)  # type: ignore[arg-type]


# --- properties ---------------------------------------------------------------------------------

_ALNUM = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=6)
_HEX64 = st.text("0123456789abcdef", min_size=64, max_size=64)


@st.composite
def path_components(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 9)) == 0:
        return draw(_HEX64)
    parts = [draw(_ALNUM)]
    for _ in range(draw(st.integers(0, 2))):
        parts += [draw(st.sampled_from([".", "_", "__", "-", "--"])), draw(_ALNUM)]
    return "".join(parts)


_LABEL = st.from_regex(r"[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,5}[a-zA-Z0-9])?", fullmatch=True)
_HOSTNAMES = st.lists(_LABEL, min_size=1, max_size=3).map(".".join)
_IPV6 = st.lists(st.text("0123456789abcdef", min_size=1, max_size=4), min_size=2, max_size=8).map(
    lambda groups: "[" + ":".join(groups) + "]"
)
_PORTS = st.none() | st.integers(0, 99999)
_DOMAINS = st.builds(
    lambda host, port: host if port is None else f"{host}:{port}",
    st.sampled_from(["docker.io", "index.docker.io", "localhost", "quay.io"]) | _HOSTNAMES | _IPV6,
    _PORTS,
)
_TAGS = st.none() | st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)
_DIGESTS = st.none() | st.builds(Digest.from_bytes, st.binary(max_size=8), st.sampled_from(["sha256", "sha512"]))


@st.composite
def references(draw: st.DrawFn) -> Reference:
    """Any valid reference, including domain-less single-component ones."""
    components = draw(st.lists(path_components(), min_size=1, max_size=4))
    domain = draw(st.none() | _DOMAINS) if len(components) == 1 else draw(_DOMAINS)
    name_length = len("/".join(components)) + (0 if domain is None else len(domain) + 1)
    assume(name_length <= 255)
    return Reference(domain, "/".join(components), draw(_TAGS), draw(_DIGESTS))


@given(references())
def test_property_str_parses_back_to_the_same_reference(ref: Reference) -> None:
    assert parse(str(ref)) == ref


@given(references())
def test_property_familiar_parses_back_for_normalized_references(ref: Reference) -> None:
    try:
        normalized = parse_normalized(str(ref))
    except InvalidReference:
        assume(False)  # e.g. the added "docker.io/library/" took the name past 255
        raise
    assert parse_normalized(str(normalized)) == normalized
    assert parse_normalized(normalized.familiar()) == normalized


@given(references())
def test_property_short_names_are_those_naming_no_registry(ref: Reference) -> None:
    assert is_short_name(str(ref)) is (ref.domain is None or not names_a_registry(ref.domain))
