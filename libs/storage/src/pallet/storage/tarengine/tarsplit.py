"""tar-split metadata (``<id>.tar-split.gz``): write it while applying, and rebuild the tar from it.

Format (containers-storage-format.md 2.4): gzip of JSON lines; ``type`` 2 is a
segment of raw non-content bytes (``payload`` base64), ``type`` 1 a member
(``name`` or ``name_raw``, ``size`` when > 0, ``payload`` = base64 of the
big-endian CRC-64/GO-ISO of the content or null), ``position`` 0, 1, 2, ...
Reassembly writes the segments and, for each member with content, exactly
``size`` bytes of the file from the layer directory (or the first of the
fallback directories that has it), checking the CRC.
"""

from __future__ import annotations

import base64
import gzip
import io
import hashlib
import json
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO, BinaryIO

from pallet.storage.tarengine.crc64 import Crc64
from pallet.storage.tarengine.errors import DuplicateEntryError, TarEngineError, TarSplitError, shown
from pallet.storage.tarengine.limits import Limits
from pallet.storage.tarengine.safety import LayerRoot, clean_name

SEGMENT = 2
FILE = 1
CHUNK = 1 << 20


class TarSplitWriter:
    """Writes tar-split JSON lines, gzip-compressed, to a binary file object (not closed here)."""

    def __init__(self, out: BinaryIO) -> None:
        self._gz = gzip.GzipFile(fileobj=out, mode="wb", compresslevel=1, mtime=0)
        self._lines = io.BufferedWriter(self._gz, 1 << 16)  # one compress call per 64 KiB, not per line
        self._position = 0

    def _emit(self, entry: dict[str, object]) -> None:
        entry["position"] = self._position
        self._position += 1
        self._lines.write(json.dumps(entry, separators=(",", ":")).encode() + b"\n")

    def segment(self, data: bytes) -> None:
        """A raw segment (any length, split into lines of at most 1 MiB)."""
        for start in range(0, max(len(data), 1), CHUNK):
            self._emit({"type": SEGMENT, "payload": base64.b64encode(data[start:start + CHUNK]).decode()})

    def file(self, name: bytes, size: int, crc: bytes | None) -> None:
        """A member entry: its raw tar name, content size and CRC (None when the size is 0)."""
        entry: dict[str, object] = {"type": FILE}
        try:
            entry["name"] = name.decode("utf-8")
        except UnicodeDecodeError:
            entry["name_raw"] = base64.b64encode(name).decode()
        if size > 0:
            entry["size"] = size
        entry["payload"] = base64.b64encode(crc).decode() if crc is not None else None
        self._emit(entry)

    def close(self) -> None:
        """Write the final empty segment and finish the gzip stream."""
        self._emit({"type": SEGMENT, "payload": ""})
        self._lines.close()  # flushes, then closes the gzip stream (not ``out``)


@dataclass(frozen=True)
class Entry:
    """One parsed tar-split line."""

    kind: int
    payload: bytes | None
    name: bytes = b""
    size: int = 0


def _parse(line: bytes) -> Entry:
    try:
        obj = json.loads(line)
        kind = int(obj["type"])
        raw = obj.get("payload")
        payload = None if raw is None else base64.b64decode(raw, validate=True)
        if kind == SEGMENT:
            return Entry(SEGMENT, payload or b"")
        if kind != FILE:
            raise TarSplitError(f"unknown tar-split entry type {kind}")
        name = base64.b64decode(obj["name_raw"]) if "name_raw" in obj else str(obj["name"]).encode("utf-8")
        size = int(obj.get("size") or 0)
    except (ValueError, KeyError, TypeError) as exc:
        raise TarSplitError(f"malformed tar-split line: {exc}") from None
    if size < 0 or (size > 0 and (payload is None or len(payload) != 8)):
        raise TarSplitError(f"bad size or checksum for {shown(name)}")
    return Entry(FILE, payload, name, size)


def read_entries(source: IO[bytes]) -> Iterator[Entry]:
    """The entries of a gzip-compressed tar-split stream, in order."""
    with gzip.GzipFile(fileobj=source, mode="rb") as gz:
        for line in gz:
            if line.strip():
                yield _parse(line)


class Reassembler:
    """Rebuilds a layer tar from tar-split entries and the files under ``roots`` (first match wins)."""

    def __init__(self, roots: Sequence[LayerRoot], limits: Limits) -> None:
        self._roots = roots
        self._limits = limits
        self._seen: set[tuple[bytes, ...]] = set()

    def run(self, entries: Iterator[Entry], out: BinaryIO) -> tuple[str, int]:
        """Write the tar to ``out``; return its digest (``sha256:...``) and size."""
        digest = hashlib.sha256()
        size = 0
        for entry in entries:
            for data in self._bytes_of(entry):
                out.write(data)
                digest.update(data)
                size += len(data)
        return "sha256:" + digest.hexdigest(), size

    def _bytes_of(self, entry: Entry) -> Iterator[bytes]:
        if entry.kind == SEGMENT:
            if entry.payload:
                yield entry.payload
            return
        parts = clean_name(entry.name, self._limits)
        if parts in self._seen and parts:
            raise DuplicateEntryError(entry.name)
        self._seen.add(parts)
        if entry.size:
            yield from self._content(entry, parts)

    def _content(self, entry: Entry, parts: tuple[bytes, ...]) -> Iterator[bytes]:
        fd = self._open(entry.name, parts)
        crc = Crc64()
        remaining = entry.size
        try:
            while remaining:
                data = os.read(fd, min(CHUNK, remaining))
                if not data:
                    raise TarSplitError(f"{shown(entry.name)} is shorter than its recorded size")
                crc.update(data)
                remaining -= len(data)
                yield data
        finally:
            os.close(fd)
        if crc.digest() != entry.payload:
            raise TarSplitError(f"{shown(entry.name)} does not match its recorded checksum")

    def _open(self, name: bytes, parts: tuple[bytes, ...]) -> int:
        if not parts:
            raise TarSplitError(f"{shown(name)} names the layer root but has content")
        for root in self._roots:
            try:
                dir_fd = root.open_dir(parts[:-1])
            except (OSError, TarEngineError):
                continue
            try:
                fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
            except OSError:
                continue
            finally:
                os.close(dir_fd)
            if stat.S_ISREG(os.fstat(fd).st_mode):
                return fd
            os.close(fd)
        raise TarSplitError(f"{shown(name)} is not a readable regular file in the layer")


def reassemble(tar_split: IO[bytes], roots: Sequence[str | os.PathLike[str]], out: BinaryIO,
               limits: Limits | None = None) -> tuple[str, int]:
    """Rebuild the original layer tar into ``out`` from ``tar_split`` and the layer dirs ``roots``.

    ``roots`` is the layer's own directory first, then (overlay) its lower
    layers' diff directories. Content is read by in-root resolution and never
    through a final symlink. Returns (digest, size); the digest equals the
    layer's diff_id when the files are unchanged, else :class:`TarSplitError`.
    """
    opened = [LayerRoot(root) for root in roots]
    try:
        return Reassembler(opened, limits or Limits()).run(read_entries(tar_split), out)
    finally:
        for root in opened:
            root.close()
