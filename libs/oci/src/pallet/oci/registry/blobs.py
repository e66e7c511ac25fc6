"""Blobs over the distribution API: streamed, resumable downloads and constant-memory uploads.

Downloads (``BlobReader``): the body is read as it arrives (never buffered
whole; the session asks for ``Accept-Encoding: identity``, so the bytes are the blob's own).
Redirects to storage backends are followed without the registry's
Authorization. When the connection breaks after enough progress
(``resume_min_progress``, as containers/image's body reader decides), the
download resumes from the current offset with a ``Range`` request and checks
the ``206``'s ``Content-Range``. With ``verify`` (the default for a download
from offset 0), size and digest are checked as the bytes stream, and the read
that reaches the end raises ``SizeMismatch``/``DigestMismatch`` if they are
wrong; bytes read before that are unverified.

Uploads (``push_blob``): ``POST`` starts a session; then either one ``PUT
?digest=`` with the streamed body (monolithic), or ``PATCH`` requests of at
most ``chunk_size`` bytes with ``Content-Range`` and a final ``PUT``
(chunked). Memory stays bounded by the chunk size (monolithic: 64 KiB
pieces). The digest may be unknown: it is then computed while streaming. The
registry verifies the digest; a mismatch we can see first (chunked, or a
source shorter or longer than ``size``) cancels the session before anything is
committed. Any failure cancels the upload session (best effort).

Thread safety: a BlobReader belongs to one thread; uploads of different blobs
may run in parallel on one session.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, cast

import httpx

from pallet.oci.digest import Digest, Digester
from pallet.oci.errors import (
    DigestMismatch,
    OciError,
    RegistryError,
    RegistryUnreachable,
    RemoteBlobUnknown,
    SizeMismatch,
)
from pallet.oci.registry.errors_map import transport_error
from pallet.oci.registry.session import Answer, RegistrySession, close_quietly

#: Bytes read from a source per piece of a streamed upload body.
STREAM_PIECE = 64 * 1024
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
_RESUMABLE = (httpx.ReadError, httpx.RemoteProtocolError)


class BlobReader(io.RawIOBase):
    """A blob's bytes as a binary stream; see the module docstring. ``size`` is -1 when unknown."""

    def __init__(
        self,
        session: RegistrySession,
        path: str,
        action: str,
        *,
        digest: Digest,
        verify: bool = True,
        expected_size: int | None = None,
        offset: int = 0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__()
        self._session = session
        self._path = path
        self._action = action
        self._sleep = sleep
        self._digest = digest
        self._digester = Digester(digest.algorithm) if verify and offset == 0 else None
        self._received = offset
        self._last_connect_offset = offset
        self._pending = b""
        self._response: httpx.Response | None = None
        self._chunks: Iterator[bytes] = iter(())
        self.size: int = -1
        self._connect(offset)
        assert self._response is not None
        declared = self._response.headers.get("content-length", "")
        self.size = expected_size if expected_size is not None else (
            offset + int(declared) if declared.isdigit() else -1
        )

    @property
    def bytes_read(self) -> int:
        """Bytes of the blob received so far (counting from offset 0)."""
        return self._received

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            if self._response is None:
                return 0
            try:
                chunk = next(self._chunks)
            except StopIteration:
                self._finish()
                return 0
            except _RESUMABLE as error:
                self._resume(error)
                continue
            except httpx.HTTPError as error:  # a timeout, or worse: not resumed
                self.close()
                raise transport_error(error, self._action) from error
            self._accept(chunk)
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count

    def close(self) -> None:
        if self._response is not None:
            close_quietly(self._response)
            self._response = None
        super().close()

    def _accept(self, chunk: bytes) -> None:
        self._received += len(chunk)
        if self.size >= 0 and self._received > self.size:
            raise SizeMismatch(self.size, self._received, at_least=True)
        if self._digester is not None:
            self._digester.update(chunk)
        self._pending = chunk

    def _finish(self) -> None:
        if self._response is not None:
            close_quietly(self._response)
            self._response = None
        if self.size >= 0 and self._received != self.size:
            raise SizeMismatch(self.size, self._received)
        if self._digester is not None:
            actual = self._digester.digest()
            if actual != self._digest:
                raise DigestMismatch(str(self._digest), str(actual))

    def _connect(self, offset: int) -> None:
        headers: dict[str, str] = {}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        response = self._session.open(
            "GET", self._path, action=self._action, expected=(200, 206), not_found=RemoteBlobUnknown, headers=headers
        )
        if offset:
            self._check_partial(response, offset)
        self._response = response
        self._chunks = response.iter_raw()
        self._last_connect_offset = offset

    def _check_partial(self, response: httpx.Response, offset: int) -> None:
        why = ""
        if response.status_code != 206:
            why = f"the server ignored the Range request (status {response.status_code})"
        else:
            match = _CONTENT_RANGE.match(response.headers.get("content-range", ""))
            if match is None:
                why = f"invalid Content-Range {response.headers.get('content-range', '')!r}"
            elif int(match[1]) != offset or (match[3] != "*" and int(match[2]) + 1 != int(match[3])):
                why = f"unexpected Content-Range {match[0]!r} for offset {offset}"
        if why:
            close_quietly(response)
            raise RegistryUnreachable(f"{self._action}: resuming at byte {offset}: {why}", temporary=True)

    def _resume(self, error: httpx.HTTPError) -> None:
        if self._response is not None:
            close_quietly(self._response)
            self._response = None
        broken = transport_error(error, f"{self._action} (after {self._received} bytes)")
        if self._received - self._last_connect_offset < self._session.options.resume_min_progress:
            raise broken from error
        self._sleep(self._session.options.resume_delay)
        try:
            self._connect(self._received)
        except OciError as again:
            raise RegistryUnreachable(f"{broken}; reconnecting failed: {again}", temporary=True) from again


@dataclass(frozen=True)
class PushedBlob:
    """A blob the registry now holds."""

    digest: Digest
    size: int


def push_blob(
    session: RegistrySession,
    repository: str,
    source: BinaryIO,
    *,
    digest: Digest | None = None,
    size: int | None = None,
    chunk_size: int | None = None,
) -> PushedBlob:
    """Upload ``source`` into ``repository``; see the module docstring for the modes."""
    action = f"uploading blob {digest or '(digest computed while streaming)'} to {session.host}/{repository}"
    started = session.call("POST", f"/v2/{repository}/blobs/uploads/", action=action, expected=(202,))
    location = upload_location(started, action)
    try:
        if chunk_size is not None:
            return _push_chunked(session, location, source, digest, size, chunk_size, action)
        return _push_streamed(session, location, source, digest, size, action)
    except Exception:  # not on Ctrl-C: no more network calls then
        cancel_upload(session, location)
        raise


def _push_streamed(
    session: RegistrySession, location: httpx.URL, source: BinaryIO, digest: Digest | None, size: int | None, action: str
) -> PushedBlob:
    headers = {"Content-Type": "application/octet-stream"}
    if size is not None:
        headers["Content-Length"] = str(size)
    if digest is None:  # stream it with PATCH, then commit under the digest computed meanwhile
        digester = Digester("sha256")
        body = _pieces(source, size, digester)
        answer = session.call("PATCH", location, action=action, expected=(202,), content=body, headers=headers)
        return _commit(session, upload_location(answer, action), digester.digest(), digester.size, action)
    # The digest is known: the registry checks the bytes against it when the
    # upload is committed (and refuses a mismatch), so they are only counted here.
    counter = _ByteCounter()
    answer = session.call(
        "PUT", location.copy_merge_params({"digest": str(digest)}), action=action, expected=(201,),
        content=_pieces(source, size, counter), headers=headers,
    )
    return _committed(answer, digest, None, action, size=counter.size)


def _push_chunked(
    session: RegistrySession,
    location: httpx.URL,
    source: BinaryIO,
    digest: Digest | None,
    size: int | None,
    chunk_size: int,
    action: str,
) -> PushedBlob:
    if chunk_size <= 0:
        raise ValueError("chunk_size must be positive")
    digester = Digester(digest.algorithm if digest else "sha256")
    while True:
        chunk = _read_up_to(source, chunk_size)  # the one chunk in memory: the last is released below
        if not chunk:
            break
        start = digester.size
        digester.update(cast(bytes, chunk))  # hashlib takes any buffer: no copy of the chunk
        if size is not None and digester.size > size:
            raise SizeMismatch(size, digester.size, at_least=True)
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{start}-{digester.size - 1}",
            "Content-Length": str(len(chunk)),
        }
        # Pieces of the chunk, not the bytes: the HTTP layer copies what it is given, and
        # finished requests linger in reference cycles until the garbage collector runs.
        answer = session.call(
            "PATCH", location, action=action, expected=(202,), content=_slices(chunk), headers=headers
        )
        del chunk
        location = upload_location(answer, action)
    if size is not None and digester.size != size:
        raise SizeMismatch(size, digester.size)
    actual = digester.digest()
    if digest is not None and actual != digest:
        raise DigestMismatch(str(digest), str(actual))
    return _commit(session, location, actual, digester.size, action)


def _commit(session: RegistrySession, location: httpx.URL, digest: Digest, size: int, action: str) -> PushedBlob:
    answer = session.call(
        "PUT", location.copy_merge_params({"digest": str(digest)}), action=action, expected=(201,),
        content=b"", headers={"Content-Type": "application/octet-stream"},
    )
    return _committed(answer, digest, None, action, size=size)


def _committed(
    answer: Answer, digest: Digest, digester: Digester | None, action: str, *, size: int | None = None
) -> PushedBlob:
    if digester is not None:
        actual = digester.digest()
        if actual != digest:  # the registry accepted what we did not send: should not happen
            raise DigestMismatch(str(digest), str(actual))
        size = digester.size
    stated = answer.headers.get("docker-content-digest")
    if stated and stated != str(digest):
        raise RegistryError(f"{action}: the registry stored the blob as {stated}", status=answer.status)
    return PushedBlob(digest, size if size is not None else -1)


def mount_blob(session: RegistrySession, repository: str, digest: Digest, from_repository: str) -> bool:
    """Mount ``digest`` from ``from_repository`` of the same registry: True when mounted (201).

    False when the registry started an upload instead (202); that session is cancelled.
    """
    action = f"mounting blob {digest} from {session.host}/{from_repository} into {session.host}/{repository}"
    answer = session.call(
        "POST", f"/v2/{repository}/blobs/uploads/", action=action, expected=(201, 202),
        params={"mount": str(digest), "from": from_repository},
    )
    if answer.status == 201:
        return True
    cancel_upload(session, upload_location(answer, action))
    return False


def upload_location(answer: Answer, action: str) -> httpx.URL:
    """The absolute URL of the upload session an answer's ``Location`` names (relative to the request)."""
    text = answer.headers.get("location")
    if not text:
        raise RegistryError(f"{action}: the registry sent no Location for the upload", status=answer.status)
    return answer.url.join(text)


def cancel_upload(session: RegistrySession, location: httpx.URL) -> None:
    """Ask the registry to drop an upload session; failures are ignored (best effort)."""
    try:
        session.call("DELETE", location, action="cancelling blob upload", expected=(200, 202, 204, 404))
    except OciError:
        pass


class _ByteCounter:
    """Counts the bytes that stream (in place of a Digester when the digest is known)."""

    def __init__(self) -> None:
        self.size = 0

    def update(self, data: bytes) -> None:
        self.size += len(data)


def _pieces(source: BinaryIO, size: int | None, digester: Digester | _ByteCounter) -> Iterator[bytes]:
    """The source in STREAM_PIECE pieces, hashed and counted; SizeMismatch if it is not ``size`` long."""
    while piece := source.read(STREAM_PIECE):
        digester.update(piece)
        if size is not None and digester.size > size:
            raise SizeMismatch(size, digester.size, at_least=True)
        yield piece
    if size is not None and digester.size != size:
        raise SizeMismatch(size, digester.size)


def _slices(data: bytes | bytearray) -> Iterator[memoryview]:
    """``data`` in STREAM_PIECE views (no copies); the iterator lets go of ``data`` when done."""
    view = memoryview(data)
    for start in range(0, len(view), STREAM_PIECE):
        yield view[start : start + STREAM_PIECE]


def _read_up_to(source: BinaryIO, count: int) -> bytearray:
    """Up to ``count`` bytes, fewer only at the end of the source (one buffer, no joined copies)."""
    buffer = bytearray(count)
    filled = 0
    while filled < count:
        piece = source.read(count - filled)
        if not piece:
            break
        buffer[filled : filled + len(piece)] = piece
        filled += len(piece)
    del buffer[filled:]
    return buffer
