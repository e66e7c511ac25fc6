"""The uncompressed layer stream: compression detected from magic bytes, every byte hashed, tar
members scanned at the block level with every non-content byte kept for tar-split.

Nothing is held in memory beyond one chunk: the caller reads each member's
content in chunks and the scanner hands back the raw bytes between contents
(padding, extension headers, the header itself) as the member's preamble.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import zlib
from collections.abc import Iterator
from typing import BinaryIO, Protocol

from pallet.storage.tarengine import tarformat as tf
from pallet.storage.tarengine.errors import LimitExceededError, TarFormatError, UnsupportedEntryError
from pallet.storage.tarengine.limits import Limits

CHUNK = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


def open_uncompressed(source: BinaryIO) -> tuple[Readable, str, tuple[type[BaseException], ...]]:
    """Wrap ``source`` so that reads give the uncompressed tar.

    Also returns ``"gzip"``, ``"zstd"`` or ``"none"``, and the exception types
    that mean a corrupt or truncated compressed stream. zstandard is imported
    only here, and only for a zstd stream.
    """
    buffered: io.BufferedReader = source if isinstance(source, io.BufferedReader) else io.BufferedReader(source)  # type: ignore[arg-type]
    magic = buffered.peek(4)[:4]
    if magic.startswith(GZIP_MAGIC):
        return gzip.GzipFile(fileobj=buffered, mode="rb"), "gzip", (gzip.BadGzipFile, EOFError, zlib.error)
    if magic == ZSTD_MAGIC:
        import zstandard

        from pallet.storage.tarengine.zstdframes import ZstdFrameTap

        tap = ZstdFrameTap(buffered)
        reader = zstandard.ZstdDecompressor().stream_reader(tap, read_across_frames=True, closefd=False)  # type: ignore[arg-type]
        return reader, "zstd", (zstandard.ZstdError,)
    return buffered, "none", ()


class HashingReader:
    """Reads from the uncompressed stream, hashing (sha256) and counting every byte, under a size cap."""

    def __init__(self, source: Readable, cap: int, corrupt: tuple[type[BaseException], ...] = ()) -> None:
        self._source = source
        self._cap = cap
        self._corrupt = corrupt
        self.sha256 = hashlib.sha256()
        self.size = 0

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes; fewer only at the end of the stream."""
        parts = []
        want = size
        while want > 0:
            try:
                data = self._source.read(want)
            except self._corrupt as exc:
                raise TarFormatError(f"corrupt compressed stream: {exc}") from exc
            if not data:
                break
            parts.append(data)
            want -= len(data)
        out = b"".join(parts)
        self.size += len(out)
        if self.size > self._cap:
            raise LimitExceededError("uncompressed layer size", self.size, self._cap)
        self.sha256.update(out)
        return out

    def read_exact(self, size: int) -> bytes:
        data = self.read(size)
        if len(data) != size:
            raise TarFormatError("unexpected end of the tar stream")
        return data

    @property
    def diff_id(self) -> str:
        return "sha256:" + self.sha256.hexdigest()


class TarScanner:
    """Iterates tar members; ``preamble`` of each is every raw byte since the previous content ended.

    Contract: after each member from :meth:`members`, the caller reads exactly
    ``member.size`` bytes with :meth:`read_content` before asking for the next.
    After the last member, :meth:`trailer` yields the end of the stream (padding,
    end blocks, anything after them) in chunks of at most 1 MiB.
    """

    def __init__(self, reader: HashingReader, limits: Limits) -> None:
        self._r = reader
        self._limits = limits
        self._pending = bytearray()
        self._remaining = 0
        self._padding = 0
        self._count = 0
        self._ext_total = 0

    def read_content(self, size: int) -> bytes:
        """Up to ``size`` bytes of the current member's content (never past its end)."""
        size = min(size, self._remaining)
        data = self._r.read_exact(size)
        self._remaining -= size
        return data

    def members(self) -> Iterator[tuple[bytes, tf.Member]]:
        """(preamble, member) pairs until the end-of-archive blocks (or a clean end of stream)."""
        while True:
            member = self._next_member()
            if member is None:
                return
            self._count += 1
            if self._count > self._limits.max_entries:
                raise LimitExceededError("tar entries", self._count, self._limits.max_entries)
            preamble = bytes(self._pending)
            self._pending.clear()
            yield preamble, member
            if self._remaining:
                raise TarFormatError("member content not consumed")

    def _block(self) -> bytes | None:
        data = self._r.read(tf.BLOCK)
        self._pending += data
        if not data:
            return None
        if len(data) != tf.BLOCK:
            raise TarFormatError("truncated tar header block")
        return data

    def _next_member(self) -> tf.Member | None:
        self._pending += self._r.read_exact(self._padding)
        self._padding = 0
        longname: bytes | None = None
        longlink: bytes | None = None
        pax: dict[bytes, bytes] = {}
        self._ext_total = 0
        while True:
            block = self._block()
            if block is None:
                if longname is not None or longlink is not None or pax:
                    raise TarFormatError("extension header without a member")
                return None
            if block == tf.ZERO_BLOCK:
                second = self._block()
                if second is not None and second != tf.ZERO_BLOCK:
                    raise TarFormatError("a zero block followed by a non-zero block")
                return None
            member = tf.parse_header(block)
            if member.typeflag == tf.PAX_GLOBAL:
                if longname is not None or longlink is not None or pax:
                    raise TarFormatError("a global PAX header between a member and its extension headers")
                return self._global(member)
            if member.typeflag in tf.EXTENSION_TYPES:
                data = self._extension_data(member.size)
                if member.typeflag == tf.PAX_LOCAL:
                    pax.update(tf.parse_pax(data))
                elif member.typeflag == tf.GNU_LONGNAME:
                    longname = tf.cstring(data)
                elif member.typeflag == tf.GNU_LONGLINK:
                    longlink = tf.cstring(data)
                continue
            return self._finish(member, longname, longlink, pax)

    def _global(self, member: tf.Member) -> tf.Member:
        """A global PAX header is a member of its own, as Go's reader returns it (and tar-split records it).

        Its records are not applied to later members: containers/storage ignores them.
        Its padding goes to the next preamble, as in Go's tar-split.
        """
        size = member.size
        if size > self._limits.max_extension_size:
            raise LimitExceededError("global PAX header size", size, self._limits.max_extension_size)
        data = self._r.read_exact(size)
        tf.parse_pax(data)  # refused when malformed, as Go refuses it
        self._pending += data
        self._padding = -size % tf.BLOCK
        member.size = 0
        return member

    def _extension_data(self, size: int) -> bytes:
        self._ext_total += size
        if self._ext_total > self._limits.max_extension_size:
            raise LimitExceededError("tar extension header bytes of one member", self._ext_total,
                                     self._limits.max_extension_size)
        data = self._r.read_exact(size)
        self._pending += data
        self._pending += self._r.read_exact(-size % tf.BLOCK)
        return data

    def _finish(self, member: tf.Member, longname: bytes | None, longlink: bytes | None,
                pax: dict[bytes, bytes]) -> tf.Member:
        if member.typeflag == tf.GNU_SPARSE:
            raise UnsupportedEntryError(member.name, "GNU sparse files are refused")
        if member.typeflag not in tf.MEMBER_TYPES:
            raise UnsupportedEntryError(member.name, f"tar type {member.typeflag!r} is refused")
        if longname is not None:
            member.name = longname
        if longlink is not None:
            member.linkname = longlink
        tf.apply_pax(member, pax)
        if member.typeflag in tf.HEADER_ONLY_TYPES:
            member.size = 0  # Go's reader reads no content for these whatever the size field says
        if member.size < 0:
            raise TarFormatError("negative member size")
        if member.size > self._limits.max_file_size:
            raise LimitExceededError("tar member size", member.size, self._limits.max_file_size)
        self._remaining = member.size
        self._padding = -member.size % tf.BLOCK
        return member

    def trailer(self) -> Iterator[bytes]:
        """The rest of the stream after the last member, first chunk holding the end blocks."""
        first = bytes(self._pending)
        self._pending.clear()
        yield first
        while True:
            data = self._r.read(CHUNK)
            if not data:
                return
            yield data
