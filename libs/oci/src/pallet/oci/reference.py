"""Image references in the docker/distribution grammar.

    reference   := name [ ":" tag ] [ "@" digest ]
    name        := [ domain "/" ] path
    domain      := host [ ":" port ]            host: a DNS-like name or "[" IPv6 "]"
    path        := component [ "/" component ]*
    component   := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
    tag         := [A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}
    digest      := algorithm ":" hex            (then checked by pallet.oci.digest)

The name (domain and path together) is at most 255 characters, as containers/image
counts it. Two ways to read a string:

``parse`` keeps exactly what was written. A name's first component is its domain
when it is followed by "/" and fits the domain grammar (so "foo/bar" has domain
"foo"); otherwise the reference has no domain.

``parse_normalized`` applies the Docker convention, as containers/image's
``ParseNormalizedNamed`` does: a first component is a registry only if it holds
"." or ":", is "localhost", or has an uppercase letter; otherwise the registry is
docker.io, and single-component docker.io paths get "library/". "index.docker.io"
becomes "docker.io". A bare 64-hex string is refused: it is an image ID.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from pallet.oci.digest import Digest
from pallet.oci.errors import InvalidDigest, InvalidReference

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_NAMESPACE = "library"
DEFAULT_TAG = "latest"
NAME_LENGTH_MAX = 255

# Python's \w and $ are not Go's: every class is spelled out in ASCII and every
# match is a fullmatch.
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_LABEL = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_LABEL}(?:\.{_DOMAIN_LABEL})*|\[[a-fA-F0-9:]+\])"

_PATH_COMPONENT_RE = re.compile(_PATH_COMPONENT)
_PATH_RE = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
_DOMAIN_RE = re.compile(rf"{_HOST}(?::[0-9]+)?")
_TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST_RE = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}")
_IDENTIFIER_RE = re.compile(r"[a-f0-9]{64}")

_SEPARATOR_RULE = "lowercase letters and digits, separated by '.', '_', '__' or dashes"


@dataclass(frozen=True, slots=True)
class Reference:
    """A valid image reference; constructing one validates every part.

    ``domain`` is None when the reference was written without one (only ``parse``
    produces such references). ``str(ref)`` is the canonical text, and
    ``parse(str(ref)) == ref`` holds for every Reference: a domain-less path whose
    first component would be read back as a domain is refused.
    """

    domain: str | None
    path: str
    tag: str | None = None
    digest: Digest | None = None

    def __post_init__(self) -> None:
        text = self.string()
        if self.domain is not None:
            _check_domain(text, self.domain)
        _check_path(text, self.path)
        if self.domain is None:
            _check_no_hidden_domain(text, self.path)
        _check_length(text, self.name)
        if self.tag is not None:
            _check_tag(text, self.tag)
        if self.digest is not None and not isinstance(self.digest, Digest):
            raise TypeError(f"digest must be a pallet.oci.Digest, not {type(self.digest).__name__}")

    @property
    def name(self) -> str:
        """The repository name: ``domain/path``, or ``path`` without a domain."""
        return self.path if self.domain is None else f"{self.domain}/{self.path}"

    @property
    def is_tagged(self) -> bool:
        return self.tag is not None

    @property
    def is_digested(self) -> bool:
        return self.digest is not None

    def string(self) -> str:
        """The canonical text: ``name[:tag][@digest]``, exactly as it parses back."""
        return _format(self.name, self.tag, self.digest)

    def __str__(self) -> str:
        return self.string()

    def familiar(self) -> str:
        """The short form for display: docker.io and its ``library/`` dropped.

        ``docker.io/library/nginx:latest`` -> ``nginx:latest``,
        ``docker.io/foo/bar`` -> ``foo/bar``; other registries are kept. The
        domain and prefix are only dropped when ``parse_normalized`` reads the
        result back as this same reference (so ``docker.io/foo.com/bar`` stays
        whole, where distribution would print the misleading ``foo.com/bar``).
        """
        return _format(_familiar_name(self.domain, self.path), self.tag, self.digest)

    def with_tag(self, tag: str) -> Reference:
        """This reference with ``tag`` set (a digest, if any, is kept)."""
        return replace(self, tag=tag)

    def with_digest(self, digest: Digest | str) -> Reference:
        """This reference with ``digest`` set (a tag, if any, is kept)."""
        if isinstance(digest, str):
            digest = _parse_digest(_format(self.name, self.tag, None) + "@" + digest, digest)
        return replace(self, digest=digest)

    def without_tag_or_digest(self) -> Reference:
        """The repository alone, as distribution's ``TrimNamed``."""
        return replace(self, tag=None, digest=None)


def parse(text: str) -> Reference:
    """Read ``text`` in the reference grammar, keeping what was written.

    No normalisation: ``nginx`` has no domain, ``docker.io/nginx`` keeps its
    one-component path. Raises InvalidReference naming the wrong part.
    """
    if text == "":
        raise InvalidReference(text, "name", "repository name must have at least one component")
    name_and_tag, has_digest, digest_text = text.partition("@")
    name, tag = _split_tag(name_and_tag)
    if name == "":
        raise InvalidReference(text, "format", "a reference must start with a repository name")
    domain, path = _split_domain(text, name)
    _check_length(text, name)
    if tag is not None:
        _check_tag(text, tag)
    digest = _parse_digest(text, digest_text) if has_digest else None
    return Reference(domain, path, tag, digest)


def parse_normalized(text: str) -> Reference:
    """Read ``text`` as Docker and podman do (``ParseNormalizedNamed``).

    ``nginx`` -> ``docker.io/library/nginx``; ``index.docker.io/x`` ->
    ``docker.io/library/x``; the result always has a domain. Errors name the
    part of ``text`` that is wrong.
    """
    if text == "":
        raise InvalidReference(text, "name", "repository name must have at least one component")
    if _IDENTIFIER_RE.fullmatch(text):
        raise InvalidReference(
            text, "name", "a 64-character hexadecimal string is an image ID, not a repository name"
        )
    domain, remainder = _split_docker_domain(text)
    repository = remainder.partition("@")[0].partition(":")[0]
    if repository.lower() != repository:
        raise InvalidReference(text, "name", "repository name must be lowercase")
    try:
        ref = parse(f"{domain}/{remainder}")
    except InvalidReference as error:
        raise InvalidReference(text, error.part, error.why) from None
    if ref.domain != domain:
        raise InvalidReference(text, "domain", f"{domain!r} is not a valid registry host[:port]")
    return ref


def with_default_tag(ref: Reference) -> Reference:
    """``ref`` with the tag ``latest`` when it has neither tag nor digest (``TagNameOnly``)."""
    if ref.tag is None and ref.digest is None:
        return ref.with_tag(DEFAULT_TAG)
    return ref


def names_a_registry(domain: str) -> bool:
    """True when a written domain names a registry: it has "." or ":", or is localhost.

    This is the test containers/image applies to tell fully qualified names from
    short names ("foo/bar" parses with domain "foo", which names no registry).
    """
    return domain == "localhost" or "." in domain or ":" in domain


def is_short_name(text: str) -> bool:
    """True when ``text`` names no registry and must be resolved (registries.conf).

    ``fedora``, ``fedora:latest``, ``library/fedora`` and ``busybox@sha256:…`` are
    short; ``quay.io/fedora``, ``docker.io/fedora``, ``localhost/fedora`` and
    ``host:5000/x`` are not. Raises InvalidReference when ``text`` is no reference.
    """
    ref = parse(text)
    return ref.domain is None or not names_a_registry(ref.domain)


def _format(name: str, tag: str | None, digest: Digest | None) -> str:
    text = name
    if tag is not None:
        text += f":{tag}"
    if digest is not None:
        text += f"@{digest}"
    return text


def _familiar_name(domain: str | None, path: str) -> str:
    name = path if domain is None else f"{domain}/{path}"
    if domain != DEFAULT_DOMAIN:
        return name
    first, _, rest = path.partition("/")
    if rest == "" or "." in first or first == "localhost":
        return name  # without docker.io this would read as another image
    if first == OFFICIAL_NAMESPACE and "/" not in rest and not _IDENTIFIER_RE.fullmatch(rest):
        return rest
    return path


def _split_tag(name_and_tag: str) -> tuple[str, str | None]:
    """A tag follows the last ":" when no "/" comes after it (ports precede a "/")."""
    colon = name_and_tag.rfind(":")
    if colon > name_and_tag.rfind("/"):
        return name_and_tag[:colon], name_and_tag[colon + 1 :]
    return name_and_tag, None


def _split_domain(text: str, name: str) -> tuple[str | None, str]:
    first, slash, rest = name.partition("/")
    if slash and _DOMAIN_RE.fullmatch(first) and _PATH_RE.fullmatch(rest):
        return first, rest
    if _PATH_RE.fullmatch(name):
        return None, name
    raise _name_error(text, name)


def _split_docker_domain(text: str) -> tuple[str, str]:
    first, slash, rest = text.partition("/")
    if not slash:
        return DEFAULT_DOMAIN, f"{OFFICIAL_NAMESPACE}/{text}"
    if names_a_registry(first) or first.lower() != first:
        domain, remainder = first, rest
    else:
        domain, remainder = DEFAULT_DOMAIN, text
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = f"{OFFICIAL_NAMESPACE}/{remainder}"
    return domain, remainder


def _name_error(text: str, name: str) -> InvalidReference:
    """Say which part of an ungrammatical name is wrong."""
    first, slash, rest = name.partition("/")
    if set(first) & set(":[]"):
        if not slash:
            why = f"{first!r} looks like a registry host, which must be followed by '/' and a path"
            return InvalidReference(text, "domain", why)
        if not _DOMAIN_RE.fullmatch(first):
            return InvalidReference(text, "domain", f"{first!r} is not a valid registry host[:port]")
    components = rest.split("/") if slash and _DOMAIN_RE.fullmatch(first) else name.split("/")
    for component in components:
        if not _PATH_COMPONENT_RE.fullmatch(component):
            return _component_error(text, component)
    return InvalidReference(text, "format", "not a valid reference")


def _component_error(text: str, component: str) -> InvalidReference:
    if component == "":
        return InvalidReference(text, "path component", "empty path component (a '//' or a trailing '/')")
    if _PATH_COMPONENT_RE.fullmatch(component.lower()):
        return InvalidReference(text, "name", "repository name must be lowercase")
    if set(component) & set(":[]"):
        why = f"{component!r} looks like a registry host, which must come first, followed by '/' and a path"
        return InvalidReference(text, "domain", why)
    return InvalidReference(text, "path component", f"{component!r} must be {_SEPARATOR_RULE}")


def _check_domain(text: str, domain: str) -> None:
    if not _DOMAIN_RE.fullmatch(domain):
        raise InvalidReference(text, "domain", f"{domain!r} is not a valid registry host[:port]")


def _check_path(text: str, path: str) -> None:
    if not _PATH_RE.fullmatch(path):
        for component in path.split("/"):
            if not _PATH_COMPONENT_RE.fullmatch(component):
                raise _component_error(text, component)


def _check_no_hidden_domain(text: str, path: str) -> None:
    first, slash, _ = path.partition("/")
    if slash and _DOMAIN_RE.fullmatch(first):
        why = f"without a domain, {first!r} would be read back as the domain; give it as the domain"
        raise InvalidReference(text, "domain", why)


def _check_length(text: str, name: str) -> None:
    if len(name) > NAME_LENGTH_MAX:
        why = f"repository name must not be more than {NAME_LENGTH_MAX} characters (it has {len(name)})"
        raise InvalidReference(text, "length", why)


def _check_tag(text: str, tag: str) -> None:
    if _TAG_RE.fullmatch(tag):
        return
    if tag == "":
        why = "empty tag after ':'"
    elif len(tag) > 128:
        why = f"tag must not be more than 128 characters (it has {len(tag)})"
    else:
        why = f"{tag!r} must be letters, digits, '_', '.' or '-', and not start with '.' or '-'"
    raise InvalidReference(text, "tag", why)


def _parse_digest(text: str, digest_text: str) -> Digest:
    if not _DIGEST_RE.fullmatch(digest_text):
        why = f"{digest_text!r} is not algorithm:hex with at least 32 hex digits"
        raise InvalidReference(text, "digest", why)
    try:
        return Digest.parse(digest_text)
    except InvalidDigest as error:
        raise InvalidReference(text, "digest", error.why) from None
