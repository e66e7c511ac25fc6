"""CopyOptions checks its combinations; with_retries retries only temporary errors, backing off."""

from __future__ import annotations

import pytest

from pallet.oci.copy import CopyOptions
from pallet.oci.copy.retry import with_retries
from pallet.oci.errors import DigestMismatch, RegistryUnreachable, ServerError


@pytest.mark.parametrize(
    "kwargs",
    [
        {"multi_arch": "some"},
        {"format": "v2s1"},
        {"dest_compression": "xz"},
        {"decompress": True, "dest_compression": "gzip"},
        {"dest_compression_level": 5},
        {"dest_compression": "gzip", "dest_compression_level": 10},
        {"dest_compression": "zstd", "dest_compression_level": 0},
        {"image_parallel_copies": 0},
        {"retry_times": -1},
    ],
)
def test_invalid_options_are_refused(kwargs):
    with pytest.raises(ValueError):
        CopyOptions(**kwargs)


def test_requested_compression():
    assert CopyOptions().requested_compression is None
    assert CopyOptions(decompress=True).requested_compression == "none"
    assert CopyOptions(dest_compression="zstd", dest_compression_level=19).requested_compression == "zstd"


def test_temporary_errors_are_retried_with_doubling_delays():
    slept: list[float] = []
    failures = [ServerError("503", status=503), RegistryUnreachable("reset")]

    def operation() -> str:
        if failures:
            raise failures.pop(0)
        return "done"

    assert with_retries(operation, times=3, delay=0.5, what="x", sleep=slept.append) == "done"
    assert slept == [0.5, 1.0]


def test_the_last_temporary_error_is_raised_when_tries_run_out():
    slept: list[float] = []

    def operation() -> None:
        raise ServerError("503", status=503)

    with pytest.raises(ServerError):
        with_retries(operation, times=2, delay=1, what="x", sleep=slept.append)
    assert slept == [1, 2]


@pytest.mark.parametrize("error", [DigestMismatch("sha256:a", "sha256:b"), RegistryUnreachable("tls", temporary=False)])
def test_permanent_errors_are_raised_at_once(error):
    calls: list[int] = []

    def operation() -> None:
        calls.append(1)
        raise error

    with pytest.raises(type(error)):
        with_retries(operation, times=5, delay=0, what="x", sleep=lambda _: None)
    assert calls == [1]
