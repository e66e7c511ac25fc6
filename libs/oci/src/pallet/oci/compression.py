"""Compression of layers and archives: detected from magic bytes, undone while streaming.

Shared by the copy engine (which also compresses: ``pallet.oci.copy.compression``)
and the transports that read compressed archives or layer files. Everything
works on streams in chunks of ``CHUNK_SIZE``: memory stays constant whatever
the size of the data.

- :func:`detect_compression`: gzip, zstd, bzip2, xz or none, from the first bytes
  (containers/image's ``compression.DetectCompression``);
- :class:`ChunkReader`: the base of the small readers that wrap one another;
- :class:`PeekableReader`: look at the first bytes, then read them again;
- :func:`decompressing_reader`: the uncompressed bytes of a stream;
- :func:`auto_decompressed`: both at once (containers/image's ``AutoDecompress``).

zstandard is imported only when zstd is met.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import zlib
from typing import BinaryIO, Literal, cast

CHUNK_SIZE = 1 << 20
#: What a blob may be compressed with; bzip2 and xz are read (as containers/image does), never written.
DetectedCompression = Literal["none", "gzip", "zstd", "bzip2", "xz"]

_MAGIC: tuple[tuple[bytes, DetectedCompression], ...] = (
    (b"\x1f\x8b\x08", "gzip"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
)
MAGIC_LENGTH = max(len(magic) for magic, _ in _MAGIC)


def detect_compression(prefix: bytes) -> DetectedCompression:
    """The compression whose magic number ``prefix`` starts with, else ``"none"``."""
    for magic, name in _MAGIC:
        if prefix.startswith(magic):
            return name
    return "none"


class ChunkReader(io.RawIOBase):
    """A read-only stream whose subclasses implement ``_read_some(size)`` (size > 0)."""

    def readable(self) -> bool:
        return True

    def _read_some(self, size: int) -> bytes:  # pragma: no cover - abstract
        raise NotImplementedError

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return b"".join(iter(lambda: self._read_some(CHUNK_SIZE), b""))
        return self._read_some(size) if size else b""

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._read_some(len(buffer))
        memoryview(buffer)[: len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        return self.read(-1)


class PeekableReader(ChunkReader):
    """A reader whose first bytes can be looked at before they are read.

    ``close`` closes ``source`` too when ``owns_source``.
    """

    def __init__(self, source: BinaryIO, *, owns_source: bool = False) -> None:
        self._source = source
        self._owns_source = owns_source
        self._buffer = b""

    def peek(self, size: int) -> bytes:
        """Up to ``size`` first bytes (fewer only at end of stream), left to be read again."""
        while len(self._buffer) < size:
            data = self._source.read(size - len(self._buffer))
            if not data:
                break
            self._buffer += data
        return self._buffer[:size]

    def _read_some(self, size: int) -> bytes:
        if self._buffer:
            data, self._buffer = self._buffer[:size], self._buffer[size:]
            return data
        return self._source.read(size)

    def close(self) -> None:
        if not self.closed and self._owns_source:
            self._source.close()
        super().close()


def decompression_errors() -> tuple[type[Exception], ...]:
    """The exceptions a decompressor raises for corrupt or truncated data."""
    errors: tuple[type[Exception], ...] = (zlib.error, EOFError, gzip.BadGzipFile, lzma.LZMAError, OSError)
    try:
        import zstandard
    except ImportError:  # pragma: no cover - zstandard is a dependency
        return errors
    return (*errors, zstandard.ZstdError)


def decompressing_reader(source: BinaryIO, compression: DetectedCompression) -> BinaryIO:
    """A reader of the uncompressed bytes of ``source`` (all gzip members, all zstd frames).

    Closing the reader does not close ``source`` (``auto_decompressed`` does).
    """
    if compression == "none":
        return source
    if compression == "gzip":
        return cast(BinaryIO, gzip.GzipFile(fileobj=source, mode="rb"))
    if compression == "zstd":
        import zstandard

        reader = zstandard.ZstdDecompressor().stream_reader(source, read_across_frames=True, closefd=False)
        return cast(BinaryIO, reader)
    if compression == "bzip2":
        return cast(BinaryIO, bz2.BZ2File(source, mode="rb"))
    return cast(BinaryIO, lzma.LZMAFile(source, mode="rb"))


class _Decompressed(ChunkReader):
    """The uncompressed bytes of a peeked source; ``close`` closes both the decompressor and the source."""

    def __init__(self, source: PeekableReader, compression: DetectedCompression) -> None:
        self._source = source
        self._reader = decompressing_reader(cast(BinaryIO, source), compression)

    def _read_some(self, size: int) -> bytes:
        return self._reader.read(size)

    def close(self) -> None:
        if not self.closed:
            try:
                self._reader.close()
            finally:
                self._source.close()
        super().close()


def auto_decompressed(source: BinaryIO) -> tuple[BinaryIO, DetectedCompression]:
    """The uncompressed bytes of ``source``, whatever it is compressed with, and what that was.

    The result owns ``source``: closing it closes ``source``. Corrupt data
    raises one of ``decompression_errors()`` while reading.
    """
    peekable = PeekableReader(source, owns_source=True)
    compression = detect_compression(peekable.peek(MAGIC_LENGTH))
    if compression == "none":
        return cast(BinaryIO, peekable), compression
    return cast(BinaryIO, _Decompressed(peekable, compression)), compression
