"""Layer compression: detecting it from magic bytes, and changing it while streaming.

Everything here works on streams in chunks of ``CHUNK_SIZE``: memory stays
constant whatever the size of the layer. The building blocks are small
readers that wrap one another (each has ``read(size)``):

- :class:`PeekableReader`: look at the first bytes, then read them again;
- :class:`HashingReader`: hash and count what passes (digest and size);
- :class:`TransformingReader`: apply a compressor object chunk by chunk;
- :func:`decompressing_reader` / :func:`compressing_reader`.

:func:`recompress` chains them: source → decompress → hash (the DiffID, the
digest of the uncompressed tar, which no compression changes) → compress →
hash (the new blob's digest and size).

zstandard is imported only when zstd is used.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, Literal, cast

from pallet.oci.digest import Digest, Digester
from pallet.oci.errors import ConversionError
from pallet.oci.mediatypes import Compression

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
DEFAULT_LEVELS: dict[str, int] = {"gzip": 6, "zstd": 3}


def detect_compression(prefix: bytes) -> DetectedCompression:
    """The compression whose magic number ``prefix`` starts with, else ``"none"``."""
    for magic, name in _MAGIC:
        if prefix.startswith(magic):
            return name
    return "none"


class _Reader(io.RawIOBase):
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


class PeekableReader(_Reader):
    """A reader whose first bytes can be looked at before they are read."""

    def __init__(self, source: BinaryIO) -> None:
        self._source = source
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


class HashingReader(_Reader):
    """Passes bytes through, hashing and counting them: ``digest()`` and ``size`` at the end."""

    def __init__(self, source: BinaryIO, algorithm: str = "sha256") -> None:
        self._source = source
        self._digester = Digester(algorithm)

    @property
    def size(self) -> int:
        return self._digester.size

    def digest(self) -> Digest:
        return self._digester.digest()

    def _read_some(self, size: int) -> bytes:
        data = self._source.read(size)
        self._digester.update(data)
        return data


class TransformingReader(_Reader):
    """Feeds the source, chunk by chunk, to ``transform``; ``finish()`` gives the tail at end of source."""

    def __init__(self, source: BinaryIO, transform: Callable[[bytes], bytes], finish: Callable[[], bytes]) -> None:
        self._source = source
        self._transform = transform
        self._finish: Callable[[], bytes] | None = finish
        self._pending = b""

    def _read_some(self, size: int) -> bytes:
        while not self._pending and self._finish is not None:
            data = self._source.read(CHUNK_SIZE)
            if data:
                self._pending = self._transform(data)
            else:
                self._pending, self._finish = self._finish(), None
        data, self._pending = self._pending[:size], self._pending[size:]
        return data


def decompression_errors() -> tuple[type[Exception], ...]:
    """The exceptions a decompressor raises for corrupt or truncated data."""
    errors: tuple[type[Exception], ...] = (zlib.error, EOFError, gzip.BadGzipFile, lzma.LZMAError, OSError)
    try:
        import zstandard
    except ImportError:  # pragma: no cover - zstandard is a dependency
        return errors
    return (*errors, zstandard.ZstdError)


def decompressing_reader(source: BinaryIO, compression: DetectedCompression) -> BinaryIO:
    """A reader of the uncompressed bytes of ``source`` (all gzip members, all zstd frames)."""
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


def compressing_reader(source: BinaryIO, compression: Compression, level: int | None = None) -> BinaryIO:
    """A reader of ``source`` compressed with ``compression`` (gzip: mtime 0; zstd: with checksum)."""
    if compression == "none":
        return source
    chosen = DEFAULT_LEVELS[compression] if level is None else level
    if compression == "gzip":
        deflate = zlib.compressobj(chosen, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        return cast(BinaryIO, TransformingReader(source, deflate.compress, deflate.flush))
    if compression == "zstd":
        import zstandard

        zstd = zstandard.ZstdCompressor(level=chosen, write_checksum=True).compressobj()
        return cast(BinaryIO, TransformingReader(source, zstd.compress, zstd.flush))
    raise ConversionError(f"cannot compress layers with {compression!r}")


@dataclass
class Recompression:
    """A stream of a blob in another compression, and what is learnt while reading it.

    Read ``reader`` to its end; then ``digest()``/``size`` describe the new
    blob and ``diff_id()`` the uncompressed tar. ``detected`` is the
    compression the source bytes really had.
    """

    reader: BinaryIO
    detected: DetectedCompression
    target: Compression
    _uncompressed: HashingReader
    _output: HashingReader

    @property
    def size(self) -> int:
        return self._output.size

    def digest(self) -> Digest:
        return self._output.digest()

    def diff_id(self) -> Digest:
        return self._uncompressed.digest()


def recompress(source: PeekableReader, target: Compression, level: int | None = None) -> Recompression:
    """Chain decompression of whatever ``source`` holds and compression with ``target``."""
    detected = detect_compression(source.peek(MAGIC_LENGTH))
    uncompressed = HashingReader(decompressing_reader(cast(BinaryIO, source), detected))
    output = HashingReader(compressing_reader(cast(BinaryIO, uncompressed), target, level))
    return Recompression(cast(BinaryIO, output), detected, target, uncompressed, output)
