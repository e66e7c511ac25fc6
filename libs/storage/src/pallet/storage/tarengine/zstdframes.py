"""A tap on a compressed zstd stream that follows the frame structure, so that a truncated stream
is an error. (python-zstandard's stream reader returns a clean end of data when its input stops
in the middle of a frame.)

Only headers are parsed: frame header sizes, then the 3-byte block headers,
skipping block contents, then the optional 4-byte checksum; skippable frames
are skipped. The cost is per block (at most 128 KiB each), not per byte.
"""

from __future__ import annotations

from typing import Protocol

from pallet.storage.tarengine.errors import TarFormatError

_ZSTD_MAGIC = 0xFD2FB528
_FCS_SIZES = (0, 2, 4, 8)
_DICT_SIZES = (0, 1, 2, 4)


class _Source(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


class ZstdFrameTap:
    """Reads through to ``source``; at its end, raises :class:`TarFormatError` unless every frame is complete."""

    def __init__(self, source: _Source) -> None:
        self._source = source
        self._state = "magic"
        self._need = 4  # header bytes wanted by the state
        self._header = bytearray()
        self._skip = 0  # content bytes to pass over before the state resumes
        self._checksum = False

    def read(self, size: int = -1, /) -> bytes:
        data = self._source.read(size if size and size > 0 else 1 << 20)
        if data:
            self._feed(data)
        elif self._state != "magic" or self._header or self._skip:
            raise TarFormatError("truncated zstd stream: it ends inside a frame")
        return data

    def _feed(self, data: bytes) -> None:
        pos = 0
        while pos < len(data):
            if self._skip:
                step = min(self._skip, len(data) - pos)
                self._skip -= step
                pos += step
                continue
            take = min(self._need - len(self._header), len(data) - pos)
            self._header += data[pos:pos + take]
            pos += take
            if len(self._header) == self._need:
                header = bytes(self._header)
                self._header.clear()
                self._advance(header)

    def _goto(self, state: str, need: int, skip: int = 0) -> None:
        self._state, self._need, self._skip = state, need, skip

    def _advance(self, header: bytes) -> None:
        if self._state == "magic":
            magic = int.from_bytes(header, "little")
            if magic == _ZSTD_MAGIC:
                self._goto("descriptor", 1)
            elif magic & 0xFFFFFFF0 == 0x184D2A50:
                self._goto("skippable", 4)
            else:
                raise TarFormatError("corrupt zstd stream: bad frame magic")
        elif self._state == "skippable":
            self._goto("magic", 4, int.from_bytes(header, "little"))
        elif self._state == "descriptor":
            desc = header[0]
            single = (desc >> 5) & 1
            fcs = _FCS_SIZES[desc >> 6] or single
            self._checksum = bool((desc >> 2) & 1)
            self._goto("block", 3, (0 if single else 1) + _DICT_SIZES[desc & 3] + fcs)
        elif self._state == "block":
            value = int.from_bytes(header, "little")
            kind, size = (value >> 1) & 3, value >> 3
            if kind == 3:
                raise TarFormatError("corrupt zstd stream: reserved block type")
            content = 1 if kind == 1 else size
            if not value & 1:
                self._goto("block", 3, content)
            elif self._checksum:
                self._goto("magic", 4, content + 4)
            else:
                self._goto("magic", 4, content)
