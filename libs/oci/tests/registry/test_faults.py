"""What a real registry cannot be made to do, played by loopback servers: storage redirects,
connections cut mid-blob, corrupt bodies, error statuses, oversized error bodies."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import replace

import httpx
import pytest

from pallet.oci.digest import Digest
from pallet.oci.errors import (
    Denied,
    DigestMismatch,
    RegistryError,
    RegistryUnreachable,
    ServerError,
    SizeMismatch,
    TooManyRequests,
)
from pallet.oci.registry import Credentials, RegistryClient

MiB = 1024 * 1024
BLOB = secrets.token_bytes(5 * MiB)
BLOB_DIGEST = Digest.from_bytes(BLOB)


def storage_server(loopback, helpers, *, cut_first_at: int | None = None, honour_range: bool = True, body: bytes = BLOB):
    """A storage backend serving ``body``; the first full answer may be cut short."""
    state = {"cut": cut_first_at}

    def serve(handler, seen) -> None:
        wanted = seen.headers.get("range", "")
        if wanted and honour_range:
            start = int(wanted.removeprefix("bytes=").rstrip("-"))
            return helpers.send(handler, 206, body[start:], {
                "Content-Range": f"bytes {start}-{len(body) - 1}/{len(body)}"})
        if state["cut"] is not None:
            cut, state["cut"] = state["cut"], None
            return helpers.send_cut(handler, body, cut)
        helpers.send(handler, 200, body, {"Content-Type": "application/octet-stream"})

    return loopback(serve)


def basic_auth_registry(loopback, helpers, storage_host: str):
    """A registry wanting basic auth whose blob requests redirect to ``storage_host``."""
    expected = helpers.basic("pallet", "s3cret")

    def serve(handler, seen) -> None:
        if seen.headers.get("authorization") != expected:
            return helpers.send(handler, 401, b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}',
                                {"WWW-Authenticate": 'Basic realm="loopback"', "Content-Type": "application/json"})
        if seen.path == "/v2/":
            return helpers.send(handler, 200, b"{}")
        helpers.send(handler, 307, b"", {"Location": f"http://{storage_host}/storage{seen.path}?signed=1"})

    return loopback(serve)


@pytest.fixture
def options(plain_options):
    return replace(plain_options, credentials=Credentials("pallet", "s3cret"), no_creds=False)


def test_a_redirect_to_storage_does_not_carry_the_registry_credentials(loopback, helpers, options) -> None:
    storage = storage_server(loopback, helpers)
    registry = basic_auth_registry(loopback, helpers, storage.host)
    with RegistryClient(registry.host, options) as client:
        with client.get_blob("team/app", BLOB_DIGEST) as stream:
            assert stream.read() == BLOB
    assert [seen.path for seen in storage.seen] == [f"/storage/v2/team/app/blobs/{BLOB_DIGEST}?signed=1"]
    assert "authorization" not in storage.seen[0].headers
    assert registry.seen[-1].headers["authorization"] == helpers.basic("pallet", "s3cret")


def test_a_download_cut_after_some_progress_resumes_with_a_range_request(loopback, helpers, options) -> None:
    storage = storage_server(loopback, helpers, cut_first_at=2 * MiB)
    registry = basic_auth_registry(loopback, helpers, storage.host)
    with RegistryClient(registry.host, options) as client:
        with client.get_blob("team/app", BLOB_DIGEST) as stream:
            assert hashlib.sha256(stream.read()).hexdigest() == BLOB_DIGEST.encoded
            assert stream.bytes_read == len(BLOB)
    assert [seen.headers.get("range") for seen in storage.seen] == [None, f"bytes={2 * MiB}-"]


def test_a_download_cut_too_early_is_a_temporary_error(loopback, helpers, options) -> None:
    storage = storage_server(loopback, helpers, cut_first_at=1000)
    registry = basic_auth_registry(loopback, helpers, storage.host)
    with RegistryClient(registry.host, options) as client:
        with client.get_blob("team/app", BLOB_DIGEST) as stream:
            with pytest.raises(RegistryUnreachable) as caught:
                stream.read()
    assert caught.value.temporary
    assert str(caught.value).startswith(f"reading blob {BLOB_DIGEST} in {registry.host}/team/app (after 1000 bytes): ")


def test_a_server_ignoring_range_cannot_be_resumed(loopback, helpers, options) -> None:
    storage = storage_server(loopback, helpers, cut_first_at=2 * MiB, honour_range=False)
    registry = basic_auth_registry(loopback, helpers, storage.host)
    with RegistryClient(registry.host, options) as client:
        with client.get_blob("team/app", BLOB_DIGEST) as stream:
            with pytest.raises(RegistryUnreachable, match="ignored the Range request"):
                stream.read()


@pytest.mark.parametrize(("body", "error"), [
    (BLOB[:-1] + b"x", DigestMismatch),
    (BLOB + b"more", SizeMismatch),
])
def test_corrupt_blobs_are_caught_at_their_end(loopback, helpers, options, body, error) -> None:
    storage = storage_server(loopback, helpers, body=body)
    registry = basic_auth_registry(loopback, helpers, storage.host)
    with RegistryClient(registry.host, options) as client:
        with client.get_blob("team/app", BLOB_DIGEST, expected_size=len(BLOB)) as stream:
            with pytest.raises(error):
                stream.read()
        with client.get_blob("team/app", BLOB_DIGEST, verify=False) as unverified:
            assert unverified.read() == body


def scripted_registry(loopback, helpers, answers: list[tuple[int, bytes, dict[str, str]]]):
    """A registry answering /v2/ with 200 and every other request with the next scripted answer."""
    queue = list(answers)

    def serve(handler, seen) -> None:
        if seen.path == "/v2/":
            return helpers.send(handler, 200, b"{}")
        status, body, headers = queue.pop(0) if len(queue) > 1 else queue[0]
        helpers.send(handler, status, body, headers)

    return loopback(serve)


def error_body(code: str, message: str) -> bytes:
    return ('{"errors":[{"code":"%s","message":"%s","detail":{"why":"testing"}}]}' % (code, message)).encode()


@pytest.mark.parametrize(("status", "body", "kind", "temporary", "why"), [
    (403, error_body("DENIED", "requested access to the resource is denied"), Denied, False,
     "requested access to the resource is denied"),
    (429, error_body("TOOMANYREQUESTS", "slow down"), TooManyRequests, True, "slow down"),
    (503, b"", ServerError, True, "server error (HTTP 503)"),
    (502, b"<html>bad gateway</html>", ServerError, True, "server error (HTTP 502): <html>bad gateway</html>"),
    (400, error_body("MANIFEST_INVALID", "manifest invalid"), RegistryError, False, "manifest invalid"),
])
def test_error_answers_become_typed_errors(loopback, helpers, plain_options, status, body, kind, temporary, why) -> None:
    registry = scripted_registry(loopback, helpers, [(status, body, {"Content-Type": "application/json"})])
    with RegistryClient(registry.host, plain_options) as client:
        with pytest.raises(kind) as caught:
            client.get_manifest("team/app", "v1")
    assert type(caught.value) is kind
    assert str(caught.value) == f"reading manifest v1 in {registry.host}/team/app: {why}"
    assert caught.value.status == status and caught.value.temporary is temporary
    if body.startswith(b"{"):
        assert caught.value.detail == '{"why": "testing"}'


def test_temporary_failures_of_reads_are_retried_when_asked(loopback, helpers, plain_options, test_images) -> None:
    image = test_images.single_layer
    registry = scripted_registry(loopback, helpers, [
        (503, b"", {}),
        (429, b"", {}),
        (200, image.manifest.data, {"Content-Type": image.manifest.media_type, "Docker-Content-Digest": image.digest}),
    ])
    with RegistryClient(registry.host, replace(plain_options, retry_times=2, retry_delay=0.01)) as client:
        assert str(client.get_manifest("team/app", "v1").digest) == image.digest
    with RegistryClient(registry.host, plain_options) as client:  # no retries unless asked
        client.get_manifest("team/app", "v1")
    assert len([seen for seen in registry.seen if "manifests" in seen.path]) == 4


def test_a_registry_lying_about_the_manifest_digest_is_refused(loopback, helpers, plain_options, test_images) -> None:
    image = test_images.single_layer
    wrong = "sha256:" + "0" * 64
    registry = scripted_registry(loopback, helpers, [
        (200, image.manifest.data, {"Content-Type": image.manifest.media_type, "Docker-Content-Digest": wrong})])
    with RegistryClient(registry.host, plain_options) as client:
        with pytest.raises(DigestMismatch):
            client.get_manifest("team/app", "v1")
        with pytest.raises(DigestMismatch):
            client.get_manifest("team/app", Digest.parse(wrong))


def test_a_huge_manifest_is_refused(loopback, helpers, plain_options) -> None:
    registry = scripted_registry(loopback, helpers, [(200, b" " * (4 * MiB + 1), {"Content-Type": "application/json"})])
    with RegistryClient(registry.host, plain_options) as client:
        with pytest.raises(RegistryError, match="larger than the limit of 4194304 bytes"):
            client.get_manifest("team/app", "v1")


def test_only_the_start_of_a_huge_error_body_is_read(plain_options) -> None:
    pulled = {"bytes": 0}

    def endless_error():
        for _ in range(10_000):  # 640 MB if read whole
            pulled["bytes"] += 65536
            yield b"e" * 65536

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2/":
            return httpx.Response(200)
        return httpx.Response(500, content=endless_error())

    with RegistryClient("registry.invalid", plain_options, transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(ServerError) as caught:
            client.get_manifest("team/app", "v1")
    assert pulled["bytes"] <= 2 * 65536
    assert len(str(caught.value)) < 400


def test_an_unreachable_registry_is_a_temporary_error(plain_options) -> None:
    import socket

    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with RegistryClient(f"127.0.0.1:{port}", plain_options) as client:
        with pytest.raises(RegistryUnreachable) as caught:
            client.get_manifest("team/app", "v1")
    assert caught.value.temporary
    assert str(caught.value) == f"pinging container registry 127.0.0.1:{port}: connection refused"
