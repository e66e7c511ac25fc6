"""The exceptions of pallet.oci: one tree, raised by every module of the lib.

Callers branch on the leaves; CLIs map the root to exit codes once.
This module imports nothing from the rest of the lib.

    OciError                        .temporary: True when trying again may succeed
    ├── ImageNotFound               the image named does not exist where it was looked (skopeo exits 2)
    ├── InvalidReference            a reference string breaks the grammar (.part names which part)
    ├── InvalidDigest               a digest string is not algorithm:hex of the right length
    ├── VerificationError           content does not match what was promised
    │   ├── DigestMismatch          the bytes hash to another digest
    │   └── SizeMismatch            more or fewer bytes than the descriptor's size
    ├── ManifestError               a manifest, index or config cannot be used
    │   ├── MalformedManifest       not JSON, or JSON that breaks the spec's schema
    │   ├── UnsupportedMediaType    a media type the lib does not know
    │   └── Schema1Unsupported      a Docker schema1 manifest (deprecated, refused)
    ├── InvalidRuntimeConfig        a runtime-spec config.json that is not JSON or breaks the schema
    ├── InvalidPlatform             an os/arch[/variant] string that cannot be parsed
    ├── NoMatchingPlatform          an index holds no entry for the wanted platform
    ├── RegistriesConfError         registries.conf cannot be read or is inconsistent
    │   └── ShortNameError          a short name cannot be resolved under short-name-mode
    ├── LayoutError                 an OCI image layout on disk
    │   ├── InvalidLayout           oci-layout or index.json missing or wrong
    │   ├── BlobUnknown             a blob the layout does not hold
    │   ├── BlobInUse               a blob an image of the layout still needs
    │   ├── InvalidRefName          a ref name that breaks the image-spec grammar
    │   └── RefUnknown              a ref name the layout's index.json does not hold (also ImageNotFound)
    ├── RegistryError               a registry answered with an error (.status, .codes, .detail)
    │   ├── Unauthorized            401: no credentials, or wrong ones
    │   ├── Denied                  403: the credentials may not do this
    │   ├── ManifestUnknown         the manifest (tag or digest) is not there (also ImageNotFound)
    │   ├── NameUnknown             the repository is not there (also ImageNotFound)
    │   ├── RemoteBlobUnknown       a blob the registry does not hold
    │   ├── TooManyRequests         429 (temporary)
    │   └── ServerError             5xx (temporary)
    ├── RegistryUnreachable         no HTTP answer: refused, reset, timed out, TLS failure (.temporary)
    ├── CredentialsError            auth.json unreadable or wrong, a credential helper failed
    ├── TransportError              an image transport cannot do what was asked
    │   ├── UnknownTransport        "NAME:" names no registered transport
    │   ├── InvalidImageName        the text after "NAME:" is wrong for that transport
    │   ├── UnsupportedOperation    the transport cannot do this (delete on an archive, ...)
    │   ├── ManifestTypeRejected    a destination refuses this manifest type (copy tries another)
    │   ├── LocalImageNotFound      no image at a local path, or under the name given (also ImageNotFound)
    │   ├── AmbiguousImage          no image named, and the place holds several: the user must choose
    │   └── UnsafeArchive           an archive member would land outside its directory, or is no file or dir
    ├── ConversionError             an image cannot be converted as asked (--preserve-digests, format)
    └── PolicyRejected              policy.json refuses the image
        └── InvalidPolicy           policy.json is missing, unreadable or malformed (nothing can be accepted)
"""

from __future__ import annotations


class OciError(Exception):
    """The root of every error raised by pallet.oci."""

    #: True when the same operation may succeed if tried again (retry with backoff).
    temporary: bool = False
    #: Seconds the other side asked us to wait before trying again (HTTP Retry-After), if it said.
    retry_after: float | None = None


class ImageNotFound(OciError):
    """The image named does not exist where it was looked for.

    Raised (as a mixin of a more specific class) by every transport, so that a
    CLI can exit as skopeo does (2) without knowing which transport it used.
    """


_MAX_SHOWN = 200  # user input quoted in a message is cut to this many characters


def _shown(text: str) -> str:
    """``text`` quoted for a message, cut short: hostile input must not make huge messages."""
    return repr(text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "...")


class InvalidReference(OciError, ValueError):
    """A reference string breaks the docker/distribution grammar.

    ``part`` names the part that is wrong ("name", "domain", "tag", "digest",
    "path component", "length" or "format") so that messages can say it.
    """

    def __init__(self, reference: str, part: str, why: str) -> None:
        self.reference = reference
        self.part = part
        self.why = why
        super().__init__(f"invalid reference {_shown(reference)}: {part}: {why}")


class InvalidDigest(OciError, ValueError):
    """A digest string is not ``algorithm:encoded`` in a supported algorithm."""

    def __init__(self, value: str, why: str) -> None:
        self.value = value
        self.why = why
        super().__init__(f"invalid digest {_shown(value)}: {why}")


class VerificationError(OciError):
    """Content does not match the descriptor that promised it."""


class DigestMismatch(VerificationError):
    def __init__(self, expected: str, actual: str) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(f"digest mismatch: expected {expected}, got {actual}")


class SizeMismatch(VerificationError):
    def __init__(self, expected: int, actual: int, *, at_least: bool = False) -> None:
        self.expected = expected
        self.actual = actual
        got = f"at least {actual}" if at_least else str(actual)
        super().__init__(f"size mismatch: expected {expected} bytes, got {got}")


class ManifestError(OciError):
    """A manifest, index or image config cannot be used."""


class MalformedManifest(ManifestError, ValueError):
    """Not JSON, or JSON that breaks the schema of its media type."""


class UnsupportedMediaType(ManifestError):
    def __init__(self, media_type: str, context: str = "manifest") -> None:
        self.media_type = media_type
        super().__init__(f"unsupported {context} media type {media_type!r}")


class Schema1Unsupported(ManifestError):
    def __init__(self, media_type: str) -> None:
        self.media_type = media_type
        super().__init__(
            f"Docker schema1 manifests ({media_type}) are deprecated and not supported: "
            "push the image again with a current client to get a schema2 or OCI manifest"
        )


class InvalidRuntimeConfig(OciError, ValueError):
    """A runtime-spec ``config.json`` that is not JSON or breaks the schema."""


class InvalidPlatform(OciError, ValueError):
    def __init__(self, value: str, why: str) -> None:
        self.value = value
        super().__init__(f"invalid platform {_shown(value)}: {why}")


class NoMatchingPlatform(OciError):
    def __init__(self, wanted: str, available: list[str]) -> None:
        self.wanted = wanted
        self.available = available
        have = ", ".join(available) if available else "none"
        super().__init__(f"no image found for platform {wanted} (the index has: {have})")


class RegistriesConfError(OciError):
    """registries.conf (or a drop-in) cannot be read or is inconsistent."""


class ShortNameError(RegistriesConfError):
    """A short name cannot be resolved under the configured short-name-mode."""


class LayoutError(OciError):
    """An error about an OCI image layout directory."""


class InvalidLayout(LayoutError):
    pass


class BlobUnknown(LayoutError):
    def __init__(self, digest: str, where: str = "") -> None:
        self.digest = digest
        super().__init__(f"blob {digest} not found" + (f" in {where}" if where else ""))


class BlobInUse(LayoutError):
    def __init__(self, digest: str, where: str) -> None:
        self.digest = digest
        super().__init__(f"blob {digest} is still referenced from {where}")


class InvalidRefName(LayoutError, ValueError):
    def __init__(self, name: str, why: str) -> None:
        self.name = name
        super().__init__(f"invalid ref name {_shown(name)}: {why}")


class RefUnknown(LayoutError, ImageNotFound):
    def __init__(self, ref: str, where: str = "") -> None:
        self.ref = ref
        super().__init__(f"reference {ref!r} not found" + (f" in {where}" if where else ""))


class RegistryError(OciError):
    """A registry answered with an error.

    ``status`` is the HTTP status; ``codes`` the distribution-spec error codes
    of the body (``MANIFEST_UNKNOWN``, ``DENIED``...), ``detail`` their messages.
    """

    def __init__(self, message: str, *, status: int = 0, codes: tuple[str, ...] = (), detail: str = "") -> None:
        self.status = status
        self.codes = codes
        self.detail = detail
        super().__init__(message)


class Unauthorized(RegistryError):
    pass


class Denied(RegistryError):
    pass


class ManifestUnknown(RegistryError, ImageNotFound):
    pass


class NameUnknown(RegistryError, ImageNotFound):
    pass


class RemoteBlobUnknown(RegistryError):
    pass


class TooManyRequests(RegistryError):
    temporary = True


class ServerError(RegistryError):
    temporary = True


class RegistryUnreachable(OciError):
    """No HTTP answer: connection refused or reset, timeout, DNS or TLS failure."""

    def __init__(self, message: str, *, temporary: bool = True) -> None:
        self.temporary = temporary
        super().__init__(message)


class CredentialsError(OciError):
    """auth.json cannot be read or written, or a credential helper failed."""


class TransportError(OciError):
    """An image transport cannot do what was asked."""


class UnknownTransport(TransportError, ValueError):
    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        super().__init__(f"unknown transport {_shown(name)} (known: {', '.join(sorted(known))})")


class InvalidImageName(TransportError, ValueError):
    def __init__(self, transport: str, text: str, why: str) -> None:
        self.transport = transport
        self.text = text
        super().__init__(f"invalid image name {_shown(f'{transport}:{text}')}: {why}")


class UnsupportedOperation(TransportError):
    pass


class ManifestTypeRejected(TransportError):
    """A destination refuses a manifest type; the copy engine may convert and try another."""

    def __init__(self, media_type: str, accepted: tuple[str, ...], why: str = "") -> None:
        self.media_type = media_type
        self.accepted = accepted
        super().__init__(f"manifest type {media_type} rejected" + (f": {why}" if why else ""))


class LocalImageNotFound(TransportError, ImageNotFound):
    """There is no image at the local path (or under the name) given (``oci:``, ``dir:``, archives)."""


class AmbiguousImage(TransportError):
    """The reference names no image and the place holds several: the user must choose one."""


class UnsafeArchive(TransportError):
    """An archive holds a member that would land outside its directory, or is not a file or directory."""


class ConversionError(OciError):
    """An image cannot be converted as asked (e.g. with --preserve-digests)."""


class PolicyRejected(OciError):
    """The signature policy (policy.json) refuses the image."""


class InvalidPolicy(PolicyRejected):
    """The policy cannot be used: no policy.json, an unreadable one, or one that breaks its schema.

    A ``PolicyRejected`` because, as in skopeo, nothing is copied without a valid policy.
    """
