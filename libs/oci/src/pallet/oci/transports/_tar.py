"""Tar archives for the archive transports (``oci-archive:``, ``docker-archive:``).

- ``TarWriter``: deterministic headers as Go's archive/tar writes them; a
  failed member is cut off again; ``write_tree_tar`` tars a directory;
- ``safe_extract``: files and directories only, nothing outside the target;
- ``index_tar``/``open_section``: read members of an uncompressed tar in
  place, each stream its own file (thread-safe);
- ``uncompressed_tar``: a compressed archive decompressed to a temp file.

Everything streams in chunks of ``CHUNK_SIZE``: memory stays constant.
"""

from __future__ import annotations

import io
import os
import posixpath
import shutil
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

from pallet.oci.compression import CHUNK_SIZE, MAGIC_LENGTH, auto_decompressed, decompression_errors, detect_compression
from pallet.oci.errors import SizeMismatch, TransportError, UnsafeArchive
from pallet.oci.transports._local import make_temp_dir
from pallet.oci.transports.base import SystemContext

TAR_BLOCK = 512
_TAR_END = b"\0" * (2 * TAR_BLOCK)  # what Go's archive/tar writes at the end: no padding to a 10 KiB record


class TarWriter:
    """Writes a deterministic tar stream to a seekable file, member by member.

    Every header has mtime 0, uid/gid 0, no user or group names; USTAR when
    the name fits, PAX otherwise. ``add_stream`` is atomic: when the stream
    fails, ends early, has bytes beyond ``size``, or its verification (a
    ``VerifyingReader`` checks at end of stream) fails, the member is cut off
    again and the archive is as it was. ``close`` ends the archive.
    """

    def __init__(self, out: BinaryIO) -> None:
        self._out = out

    def add_dir(self, name: str, mode: int = 0o755) -> None:
        self._out.write(_tar_header(name.rstrip("/") + "/", tarfile.DIRTYPE, mode))

    def add_symlink(self, name: str, target: str) -> None:
        self._out.write(_tar_header(name, tarfile.SYMTYPE, 0, linkname=target))

    def add_bytes(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self.add_stream(name, io.BytesIO(data), len(data), mode)

    def add_stream(self, name: str, stream: BinaryIO, size: int, mode: int = 0o644) -> None:
        """Copy exactly ``size`` bytes of ``stream`` as member ``name``; see the class contract."""
        start = self._out.tell()
        try:
            self._out.write(_tar_header(name, tarfile.REGTYPE, mode, size=size))
            remaining = size
            while remaining:
                chunk = stream.read(min(CHUNK_SIZE, remaining))
                if not chunk:
                    raise SizeMismatch(size, size - remaining)
                self._out.write(chunk)
                remaining -= len(chunk)
            if stream.read(1):  # also ends a VerifyingReader, which then checks the digest
                raise SizeMismatch(size, size + 1, at_least=True)
            self._out.write(b"\0" * (-size % TAR_BLOCK))
        except BaseException:
            self._out.seek(start)
            self._out.truncate()
            raise

    def close(self) -> None:
        self._out.write(_TAR_END)
        self._out.flush()


def _tar_header(name: str, kind: bytes, mode: int, *, size: int = 0, linkname: str = "") -> bytes:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = size
    info.mtime = 0
    info.linkname = linkname
    header = bytearray(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
    if len(header) == TAR_BLOCK:  # device numbers written as Go's archive/tar writes them
        header[329:345] = b"0000000\0" * 2
        header[148:156] = b" " * 8
        header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header)


def write_tree_tar(root: Path, out: BinaryIO, skip: frozenset[str] = frozenset()) -> None:
    """Tar the files and directories under ``root`` (names relative to it), sorted: deterministic.

    Top-level entries named in ``skip`` are left out; anything but regular
    files and directories is refused (TransportError).
    """
    writer = TarWriter(out)
    for path in _sorted_tree(root, skip):
        name = path.relative_to(root).as_posix()
        status = path.lstat()
        if stat.S_ISDIR(status.st_mode):
            writer.add_dir(name)
        elif stat.S_ISREG(status.st_mode):
            with path.open("rb") as stream:
                writer.add_stream(name, stream, status.st_size)
        else:
            raise TransportError(f"{path} is neither a file nor a directory: it cannot be archived")
    writer.close()


def _sorted_tree(root: Path, skip: frozenset[str]) -> Iterator[Path]:
    entries = sorted(entry for entry in root.iterdir() if entry.name not in skip)
    for entry in entries:
        yield entry
        if entry.is_dir() and not entry.is_symlink():
            yield from _sorted_tree(entry, frozenset())


def safe_extract(archive: Path, destination: Path) -> None:
    """Extract the tar ``archive`` (compressed or not) into the existing empty directory ``destination``.

    Streams in constant memory. Only regular files (mode 0644) and
    directories (0755) are made; UnsafeArchive for an absolute name, a ``..``
    component, a link, a device or anything else, and for a member whose
    path goes through a file. Nothing is written outside ``destination``:
    no links are ever created there, and files are opened with O_NOFOLLOW.
    """
    try:
        with tarfile.open(archive, mode="r|*") as tar:
            for member in tar:
                parts = _member_parts(archive, member)
                if not parts:
                    continue  # "." or "./"
                target = destination.joinpath(*parts)
                if member.isdir():
                    target.mkdir(mode=0o755, parents=True, exist_ok=True)
                else:
                    target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
                    _extract_file(tar, member, target)
    except (tarfile.TarError, EOFError) as error:
        raise TransportError(f"{archive} is not a readable tar archive: {error}") from error
    except (NotADirectoryError, FileExistsError, IsADirectoryError) as error:
        raise UnsafeArchive(f"{archive}: member {error.filename} conflicts with another member") from error


def _member_parts(archive: Path, member: tarfile.TarInfo) -> tuple[str, ...]:
    """The path components of a member, or UnsafeArchive when the member must not be extracted."""
    name = member.name
    if name.startswith("/") or "\0" in name:
        raise UnsafeArchive(f"{archive}: member {name!r} has an absolute path")
    parts = tuple(part for part in name.split("/") if part not in ("", "."))
    if ".." in parts:
        raise UnsafeArchive(f"{archive}: member {name!r} climbs out of the archive with '..'")
    if not (member.isreg() or member.isdir()) or member.issparse():
        kind = "link" if member.issym() or member.islnk() else "special file"
        raise UnsafeArchive(f"{archive}: member {name!r} is a {kind}; only files and directories are extracted")
    return parts


def _extract_file(tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path) -> None:
    source = tar.extractfile(member)
    if source is None:
        raise UnsafeArchive(f"member {member.name!r} has no data")
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    with source, os.fdopen(fd, "wb") as out:
        while chunk := source.read(CHUNK_SIZE):
            out.write(chunk)


# --- reading members of an uncompressed tar in place -----------------------------------------


@dataclass(frozen=True, slots=True)
class TarMember:
    """Where a member's data lies in a tar file (``offset``, ``size``), and what it is."""

    name: str
    offset: int
    size: int
    is_file: bool
    linkname: str = ""  # a symlink's or hardlink's target; "" otherwise
    is_symlink: bool = False


def index_tar(path: Path) -> dict[str, TarMember]:
    """The members of an uncompressed tar by normalised name (the first of each name, as Go's readers find).

    Reads headers only: tarfile seeks over member data.
    """
    members: dict[str, TarMember] = {}
    try:
        with tarfile.open(path, mode="r:") as tar:
            for info in tar:
                name = posixpath.normpath(info.name)
                if name in members:
                    continue
                is_file = info.isreg() and not info.issparse()
                linkname = info.linkname if info.issym() or info.islnk() else ""
                members[name] = TarMember(name, info.offset_data, info.size, is_file, linkname, info.issym())
    except (tarfile.TarError, EOFError) as error:
        raise TransportError(f"{path} is not a readable tar archive: {error}") from error
    return members


class _Section(io.RawIOBase):
    """``size`` bytes of a file from ``offset``: a member of a tar, read in place."""

    def __init__(self, file: BinaryIO, offset: int, size: int) -> None:
        self._file = file
        self._remaining = size
        file.seek(offset)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        wanted = min(len(view), self._remaining)
        if wanted == 0:
            return 0
        count = self._file.readinto(view[:wanted])  # type: ignore[attr-defined]
        if not count:
            raise EOFError("the tar archive ends inside a member")
        self._remaining -= count
        return int(count)

    def close(self) -> None:
        if not self.closed:
            self._file.close()
        super().close()


def open_section(path: Path, offset: int, size: int) -> BinaryIO:
    """A new stream of ``size`` bytes of ``path`` from ``offset`` (its own file: safe across threads)."""
    file = path.open("rb")
    return cast(BinaryIO, io.BufferedReader(_Section(file, offset, size), CHUNK_SIZE))


# --- compressed archives ----------------------------------------------------------------------


def uncompressed_tar(path: Path, context: SystemContext) -> tuple[Path, Path | None]:
    """``path`` itself when it is not compressed, else a decompressed copy in a new temp directory.

    Returns (tar path, temp directory to remove or None). Streams in constant memory.
    """
    with path.open("rb") as probe:
        kind = detect_compression(probe.read(MAGIC_LENGTH))
    if kind == "none":
        return path, None
    staging = make_temp_dir(context, "archive")
    target = staging / "archive.tar"
    try:
        with auto_decompressed(path.open("rb"))[0] as source, target.open("wb") as out:
            while chunk := source.read(CHUNK_SIZE):
                out.write(chunk)
    except decompression_errors() as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise TransportError(f"decompress {path} ({kind}): {error}") from error
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target, staging
