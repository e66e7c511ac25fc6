"""Digests: parsing, and verification while data streams."""

from __future__ import annotations

import hashlib
import io

import pytest

from pallet.oci.digest import Digest, Digester, VerifyingReader, is_digest, verify_bytes
from pallet.oci.errors import DigestMismatch, InvalidDigest, OciError, SizeMismatch

DATA = b"hello, layers\n" * 1000
SHA256 = "sha256:" + hashlib.sha256(DATA).hexdigest()
SHA512 = "sha512:" + hashlib.sha512(DATA).hexdigest()


def test_parse_and_format_round_trip() -> None:
    for text in (SHA256, SHA512):
        digest = Digest.parse(text)
        assert str(digest) == text
        assert digest.algorithm == text.split(":")[0]
        assert digest.hex == text.split(":")[1]
    assert Digest.from_bytes(DATA) == Digest.parse(SHA256)
    assert Digest.from_bytes(DATA, "sha512") == Digest.parse(SHA512)
    assert Digest.from_bytes(b"") == Digest.parse("sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "algorithm:encoded"),
        ("sha256", "algorithm:encoded"),
        ("sha256:", "64 lowercase hex"),
        ("sha256:" + "a" * 63, "64 lowercase hex"),
        ("sha256:" + "A" * 64, "64 lowercase hex"),
        ("sha256:" + "g" * 64, "64 lowercase hex"),
        ("sha512:" + "a" * 64, "128 lowercase hex"),
        ("md5:d41d8cd98f00b204e9800998ecf8427e", "unsupported algorithm 'md5'"),
        ("SHA256:" + "a" * 64, "algorithm:encoded"),
        (":" + "a" * 64, "algorithm:encoded"),
    ],
)
def test_invalid_digests_say_why(text: str, why: str) -> None:
    with pytest.raises(InvalidDigest, match=why) as caught:
        Digest.parse(text)
    assert isinstance(caught.value, OciError) and isinstance(caught.value, ValueError)
    assert not is_digest(text)


def test_digester_counts_and_hashes_in_pieces() -> None:
    digester = Digester()
    for start in range(0, len(DATA), 999):
        digester.update(DATA[start:start + 999])
    assert digester.size == len(DATA)
    assert str(digester.digest()) == SHA256


def read_all(reader: VerifyingReader, chunk: int = 4096) -> bytes:
    out = bytearray()
    while data := reader.read(chunk):
        out += data
    return bytes(out)


def test_verifying_reader_passes_good_content_through() -> None:
    reader = VerifyingReader(io.BytesIO(DATA), SHA256, len(DATA))
    assert read_all(reader) == DATA
    assert reader.verified and reader.bytes_read == len(DATA)


def test_truncated_content_is_a_size_mismatch() -> None:
    reader = VerifyingReader(io.BytesIO(DATA[:-10]), SHA256, len(DATA))
    with pytest.raises(SizeMismatch, match=f"expected {len(DATA)} bytes, got {len(DATA) - 10}"):
        read_all(reader)
    assert not reader.verified


def test_oversized_content_is_refused_as_soon_as_it_exceeds_the_size() -> None:
    reader = VerifyingReader(io.BytesIO(DATA + b"extra" * 100_000), SHA256, len(DATA))
    with pytest.raises(SizeMismatch, match="got at least"):
        read_all(reader)
    assert reader.bytes_read <= len(DATA) + 4096  # stopped within one chunk


def test_wrong_content_of_the_right_size_is_a_digest_mismatch() -> None:
    tampered = DATA[:100] + b"X" + DATA[101:]
    with pytest.raises(DigestMismatch) as caught:
        read_all(VerifyingReader(io.BytesIO(tampered), SHA256, len(DATA)))
    assert caught.value.expected == SHA256
    assert caught.value.actual == "sha256:" + hashlib.sha256(tampered).hexdigest()


def test_sha512_descriptors_verify_with_sha512() -> None:
    assert read_all(VerifyingReader(io.BytesIO(DATA), SHA512)) == DATA


def test_verify_bytes() -> None:
    verify_bytes(DATA, SHA256, len(DATA))
    with pytest.raises(SizeMismatch):
        verify_bytes(DATA, SHA256, len(DATA) + 1)
    with pytest.raises(DigestMismatch):
        verify_bytes(DATA + b"!", SHA256)
