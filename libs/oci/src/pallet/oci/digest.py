"""Content digests: parsing, computing, and verifying while data streams.

A digest is ``algorithm:encoded`` (OCI image-spec, "Digests"). sha256 and
sha512 are supported; the encoded part is lowercase hex of the hash's length.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from pallet.oci.errors import DigestMismatch, InvalidDigest, SizeMismatch

_HEX_LENGTH = {"sha256": 64, "sha512": 128}
# The grammar of the spec, used to tell "malformed" from "unsupported algorithm".
_DIGEST_GRAMMAR = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
_LOWER_HEX = re.compile(r"^[a-f0-9]+$")


@dataclass(frozen=True, order=True, slots=True)
class Digest:
    """A validated digest. ``str(d)`` gives the canonical ``algorithm:hex`` form."""

    algorithm: str
    encoded: str

    def __post_init__(self) -> None:
        text = f"{self.algorithm}:{self.encoded}"
        if self.algorithm not in _HEX_LENGTH:
            if not _DIGEST_GRAMMAR.match(text):
                raise InvalidDigest(text, "not of the form algorithm:encoded")
            raise InvalidDigest(text, f"unsupported algorithm {self.algorithm!r} (sha256, sha512)")
        want = _HEX_LENGTH[self.algorithm]
        if len(self.encoded) != want or not _LOWER_HEX.match(self.encoded):
            raise InvalidDigest(text, f"{self.algorithm} needs {want} lowercase hex characters")

    @classmethod
    def parse(cls, value: str) -> Digest:
        if not isinstance(value, str) or ":" not in value:
            raise InvalidDigest(str(value), "not of the form algorithm:encoded")
        algorithm, _, encoded = value.partition(":")
        return cls(algorithm, encoded)

    @classmethod
    def from_bytes(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        digester = Digester(algorithm)
        digester.update(data)
        return digester.digest()

    @property
    def hex(self) -> str:
        return self.encoded

    def new_hash(self) -> _Hash:
        return _new_hash(self.algorithm)

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.encoded}"


class _Hash(Protocol):
    def update(self, data: bytes, /) -> None: ...
    def hexdigest(self) -> str: ...


def _new_hash(algorithm: str) -> _Hash:
    if algorithm not in _HEX_LENGTH:
        raise InvalidDigest(f"{algorithm}:", f"unsupported algorithm {algorithm!r} (sha256, sha512)")
    return hashlib.new(algorithm)


def is_digest(value: str) -> bool:
    try:
        Digest.parse(value)
    except InvalidDigest:
        return False
    return True


class Digester:
    """Hashes and counts bytes fed to it; ``digest()`` gives the result so far."""

    def __init__(self, algorithm: str = "sha256") -> None:
        self.algorithm = algorithm
        self._hash = _new_hash(algorithm)
        self.size = 0

    def update(self, data: bytes) -> None:
        self._hash.update(data)
        self.size += len(data)

    def digest(self) -> Digest:
        return Digest(self.algorithm, self._hash.hexdigest())


class VerifyingReader:
    """A reader that hashes what passes through and checks it against a descriptor.

    Reading more bytes than ``expected_size`` raises SizeMismatch at once (a
    hostile source cannot make us store more than promised). At end of stream
    the size and then the digest are checked; ``verified`` is True only after
    both passed. Callers that stop early must call ``verify()`` themselves.
    """

    def __init__(self, stream: BinaryIO, expected_digest: Digest | str, expected_size: int | None = None) -> None:
        self._stream = stream
        self.expected_digest = expected_digest if isinstance(expected_digest, Digest) else Digest.parse(expected_digest)
        self.expected_size = expected_size
        self._digester = Digester(self.expected_digest.algorithm)
        self.verified = False

    @property
    def bytes_read(self) -> int:
        return self._digester.size

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        if data:
            self._digester.update(data)
            if self.expected_size is not None and self._digester.size > self.expected_size:
                raise SizeMismatch(self.expected_size, self._digester.size, at_least=True)
        elif size != 0:
            self.verify()
        return data

    def verify(self) -> None:
        if self.verified:
            return
        if self.expected_size is not None and self._digester.size != self.expected_size:
            raise SizeMismatch(self.expected_size, self._digester.size)
        actual = self._digester.digest()
        if actual != self.expected_digest:
            raise DigestMismatch(str(self.expected_digest), str(actual))
        self.verified = True


def verify_bytes(data: bytes, expected_digest: Digest | str, expected_size: int | None = None) -> None:
    """Check a whole in-memory blob against its descriptor."""
    expected = expected_digest if isinstance(expected_digest, Digest) else Digest.parse(expected_digest)
    if expected_size is not None and len(data) != expected_size:
        raise SizeMismatch(expected_size, len(data))
    actual = Digest(expected.algorithm, hashlib.new(expected.algorithm, data).hexdigest())
    if actual != expected:
        raise DigestMismatch(str(expected), str(actual))
