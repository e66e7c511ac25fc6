"""The content-addressed blob store of a layout: ``blobs/<algorithm>/<encoded>``.

Contracts:

- A file in ``blobs/`` is complete and was verified when it was written:
  ``put`` streams into a temp file outside ``blobs/``, checks size and digest
  while streaming, fsyncs, and only then renames the file into place. On any
  failure the temp file is removed and ``blobs/`` is unchanged.
- ``put`` is idempotent: a blob already present (of the expected size, when
  one is given) is not read or written again.
- Readers get the bytes as stored: ``open`` does not verify (wrap the file in
  ``VerifyingReader`` to do so); ``read`` and ``verify`` re-hash.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, cast

from pallet.oci.digest import Digest, Digester, VerifyingReader, verify_bytes
from pallet.oci.errors import BlobUnknown, DigestMismatch, InvalidDigest, SizeMismatch
from pallet.oci.layout._files import (
    TEMP_DIR_NAME,
    make_dirs,
    make_temp_file,
    os_error,
    publish,
    remove_quietly,
)

#: Bytes read from a source and written to disk at a time: the memory ``put`` needs.
CHUNK_SIZE = 1 << 20

#: Digest algorithms whose directories under ``blobs/`` this store manages.
ALGORITHMS = ("sha256", "sha512")


class SupportsRead(Protocol):
    """A binary stream: a file, a socket's file, an HTTP response body..."""

    def read(self, size: int = -1, /) -> bytes: ...


BlobSource = bytes | bytearray | memoryview | SupportsRead


@dataclass(frozen=True, slots=True)
class StoredBlob:
    """A blob the layout holds. ``written`` is False when it was already there."""

    digest: Digest
    size: int
    written: bool = False


def as_digest(value: Digest | str) -> Digest:
    """``value`` as a Digest; raises InvalidDigest for a malformed string."""
    return value if isinstance(value, Digest) else Digest.parse(value)


class BlobStore:
    """The ``blobs/`` directory of the layout rooted at ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs_dir = root / "blobs"
        self.temp_dir = root / TEMP_DIR_NAME

    def path(self, digest: Digest) -> Path:
        """Where the blob lives (whether or not it is there)."""
        return self.blobs_dir / digest.algorithm / digest.encoded

    def size(self, digest: Digest) -> int | None:
        """The size of the stored blob, or None when the layout does not hold it."""
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            return None
        except OSError as error:
            raise os_error(f"stat blob {digest}", error) from error

    def open(self, digest: Digest) -> BinaryIO:
        """The blob's file, opened for reading; not verified. Raises BlobUnknown."""
        try:
            return self.path(digest).open("rb")
        except FileNotFoundError:
            raise BlobUnknown(str(digest), str(self.root)) from None
        except OSError as error:
            raise os_error(f"open blob {digest}", error) from error

    def read(self, digest: Digest, expected_size: int | None = None) -> bytes:
        """The whole blob, checked against its digest (and ``expected_size``).

        Raises BlobUnknown, SizeMismatch or DigestMismatch. Meant for small
        blobs (manifests, configs): the blob is held in memory.
        """
        with self.open(digest) as blob:
            try:
                data = blob.read()
            except OSError as error:
                raise os_error(f"read blob {digest}", error) from error
        verify_bytes(data, digest, expected_size)
        return data

    def verify(self, digest: Digest) -> StoredBlob:
        """Re-hash the stored blob in chunks. Raises BlobUnknown or DigestMismatch."""
        digester = Digester(digest.algorithm)
        with self.open(digest) as blob:
            try:
                while chunk := blob.read(CHUNK_SIZE):
                    digester.update(chunk)
            except OSError as error:
                raise os_error(f"read blob {digest}", error) from error
        actual = digester.digest()
        if actual != digest:
            raise DigestMismatch(str(digest), str(actual))
        return StoredBlob(digest, digester.size)

    def delete(self, digest: Digest) -> int | None:
        """Remove the blob; the size it had, or None if it was not there (idempotent)."""
        size = self.size(digest)
        try:
            self.path(digest).unlink()
        except FileNotFoundError:
            return None
        except OSError as error:
            raise os_error(f"delete blob {digest}", error) from error
        return size

    def digests(self) -> Iterator[Digest]:
        """Every blob stored under a managed algorithm; foreign file names are skipped."""
        for algorithm in ALGORITHMS:
            directory = self.blobs_dir / algorithm
            try:
                names = sorted(os.listdir(directory))
            except FileNotFoundError:
                continue
            except OSError as error:
                raise os_error(f"list {directory}", error) from error
            for name in names:
                try:
                    yield Digest(algorithm, name)
                except InvalidDigest:
                    continue

    def put(
        self,
        source: BlobSource,
        expected_digest: Digest | None = None,
        expected_size: int | None = None,
        algorithm: str = "sha256",
    ) -> StoredBlob:
        """Store the bytes of ``source``, verified while they stream; see the module's contracts.

        With ``expected_digest``, a blob already present (of ``expected_size``,
        if given) is returned without reading ``source``; a stored blob of
        another size is corrupt and is replaced by the verified new copy.
        Without it, the digest is computed with ``algorithm``. Raises
        SizeMismatch or DigestMismatch (the source is not what was promised),
        LayoutError (the filesystem failed); errors of ``source`` pass through.
        """
        if expected_digest is not None:
            present = self.size(expected_digest)
            if present is not None and (expected_size is None or present == expected_size):
                return StoredBlob(expected_digest, present)
        stream: SupportsRead = io.BytesIO(source) if isinstance(source, bytes | bytearray | memoryview) else source
        return self._write(stream, expected_digest, expected_size, algorithm)

    def _write(
        self, stream: SupportsRead, expected_digest: Digest | None, expected_size: int | None, algorithm: str
    ) -> StoredBlob:
        action = f"write blob {expected_digest}" if expected_digest else "write blob"
        fd, temp_path = make_temp_file(self.temp_dir, "blob", action)
        published = False
        try:
            with _temp_writer(fd, action) as out:
                digest, size = _copy_verified(stream, out, expected_digest, expected_size, algorithm, action)
                _sync(out, action)
            action = f"write blob {digest}"
            final_path = self.path(digest)
            make_dirs(final_path.parent, action)
            if expected_digest is None and final_path.exists():
                return StoredBlob(digest, size, written=False)
            try:
                publish(temp_path, final_path)
            except OSError as error:
                raise os_error(action, error) from error
            published = True
            return StoredBlob(digest, size, written=True)
        finally:
            if not published:
                remove_quietly(temp_path)


@contextmanager
def _temp_writer(fd: int, action: str) -> Iterator[BinaryIO]:
    """The temp file ``fd`` as a binary file; closing errors are wrapped, unless another error is on its way."""
    out = os.fdopen(fd, "wb")
    try:
        yield out
    except BaseException:
        with suppress(OSError):
            out.close()
        raise
    try:
        out.close()
    except OSError as error:
        raise os_error(action, error) from error


def _copy_verified(
    stream: SupportsRead,
    out: BinaryIO,
    expected_digest: Digest | None,
    expected_size: int | None,
    algorithm: str,
    action: str,
) -> tuple[Digest, int]:
    """Copy ``stream`` to ``out`` in chunks, checking size and digest as bytes pass.

    Raises SizeMismatch as soon as more than ``expected_size`` bytes came,
    and SizeMismatch or DigestMismatch at the end of the stream.
    """
    if expected_digest is not None:
        reader = VerifyingReader(cast(BinaryIO, stream), expected_digest, expected_size)
        _pump(reader.read, out, action)
        reader.verify()
        return expected_digest, reader.bytes_read
    digester = Digester(algorithm)

    def read_counted(size: int) -> bytes:
        chunk = stream.read(size)
        digester.update(chunk)
        if expected_size is not None and digester.size > expected_size:
            raise SizeMismatch(expected_size, digester.size, at_least=True)
        return chunk

    _pump(read_counted, out, action)
    if expected_size is not None and digester.size != expected_size:
        raise SizeMismatch(expected_size, digester.size)
    return digester.digest(), digester.size


class _Read(Protocol):
    def __call__(self, size: int, /) -> bytes: ...


def _pump(read: _Read, out: BinaryIO, action: str) -> None:
    while chunk := read(CHUNK_SIZE):
        try:
            out.write(chunk)
        except OSError as error:
            raise os_error(action, error) from error


def _sync(out: BinaryIO, action: str) -> None:
    try:
        out.flush()
        os.fsync(out.fileno())
    except OSError as error:
        raise os_error(action, error) from error
