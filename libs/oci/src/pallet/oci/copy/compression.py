"""Layer compression in the copy engine: changing it while streaming.

Detection and decompression are ``pallet.oci.compression``'s (shared with
the transports); this adds the readers that recompress, in chunks of
``CHUNK_SIZE``: memory stays constant whatever the size of the layer.

- :class:`HashingReader`: hash and count what passes (digest and size);
- :class:`TransformingReader`: apply a compressor object chunk by chunk;
- :func:`compressing_reader`.

:func:`recompress` chains them: source → decompress → hash (the DiffID, the
digest of the uncompressed tar, which no compression changes) → compress →
hash (the new blob's digest and size).

zstandard is imported only when zstd is used.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, cast

from pallet.oci.compression import (
    CHUNK_SIZE,
    MAGIC_LENGTH,
    ChunkReader,
    DetectedCompression,
    PeekableReader,
    decompressing_reader,
    detect_compression,
)
from pallet.oci.digest import Digest, Digester
from pallet.oci.errors import ConversionError
from pallet.oci.mediatypes import Compression

DEFAULT_LEVELS: dict[str, int] = {"gzip": 6, "zstd": 3}


class HashingReader(ChunkReader):
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


class TransformingReader(ChunkReader):
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
