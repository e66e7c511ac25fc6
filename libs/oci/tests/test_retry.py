"""with_retries: only temporary errors are retried, with capped doubling delays; one helper for the lib."""

from __future__ import annotations

import logging

import pytest

from pallet.oci.errors import DigestMismatch, RegistryUnreachable, ServerError
from pallet.oci.retry import MAX_DELAY_SECONDS, is_temporary, with_retries


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
    assert not is_temporary(error)


def test_delays_are_capped():
    slept: list[float] = []

    def operation() -> None:
        raise ServerError("503", status=503)

    with pytest.raises(ServerError):
        with_retries(operation, times=4, delay=10, sleep=slept.append, max_delay=25)
    assert slept == [10, 20, 25, 25]
    slept.clear()
    with pytest.raises(ServerError):
        with_retries(operation, times=8, delay=1, sleep=slept.append)
    assert max(slept) == MAX_DELAY_SECONDS


def test_the_log_line_names_what_was_retried(caplog):
    outcomes: list[Exception] = [ServerError("busy", status=503)]

    def operation() -> str:
        if outcomes:
            raise outcomes.pop()
        return "ok"

    with caplog.at_level(logging.INFO, logger="pallet.oci.retry"):
        assert with_retries(operation, 1, what="reading the manifest", sleep=lambda _: None) == "ok"
    assert caplog.messages == ["reading the manifest failed (busy); retrying in 1.0s (1 of 1)"]


def test_the_registry_module_reexports_the_one_helper_with_positional_times():
    from pallet.oci.registry import with_retries as from_package
    from pallet.oci.registry.retry import with_retries as from_module

    assert from_module is with_retries and from_package is with_retries
    outcomes: list[Exception] = [RegistryUnreachable("reset")]

    def operation() -> str:
        if outcomes:
            raise outcomes.pop()
        return "ok"

    slept: list[float] = []
    assert from_module(operation, 1, sleep=slept.append) == "ok"  # tools/transfer's with_retries(fn, times)
    assert slept == [1.0]


def test_a_registrys_retry_after_lengthens_the_wait_within_the_cap():
    from pallet.oci.errors import TooManyRequests

    slept: list[float] = []
    first, second = TooManyRequests("429", status=429), TooManyRequests("429", status=429)
    first.retry_after, second.retry_after = 5.0, 600.0
    failures = [first, second]

    def operation() -> str:
        if failures:
            raise failures.pop(0)
        return "done"

    assert with_retries(operation, times=3, delay=0.5, sleep=slept.append) == "done"
    assert slept == [5.0, MAX_DELAY_SECONDS]


def test_retry_after_is_read_from_a_429():
    """A real answer with Retry-After, from a loopback server, becomes TooManyRequests.retry_after."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from pallet.oci.errors import TooManyRequests
    from pallet.oci.registry import RegistryClient, RegistryOptions

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            if self.path == "/v2/":
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")
                return
            body = b'{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}'
            self.send_response(429)
            self.send_header("Retry-After", "7")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with RegistryClient(f"127.0.0.1:{server.server_address[1]}", RegistryOptions(tls_verify=False)) as client:
            with pytest.raises(TooManyRequests) as raised:
                client.list_tags("some/repo")
        assert raised.value.retry_after == 7.0
    finally:
        server.shutdown()
