"""Helpers shared by the local transports (``oci:``, ``oci-archive:``, ``dir:``, ``docker-archive:``).

- reference text: ``PATH[:REF]`` split as containers/image does (at the
  first colon: a path cannot hold one, a ref name may);
- ``write_verified``: stream a blob into a file atomically, verified against
  what its ``BlobInfo`` promises (or hashed when nothing is promised);
- ``check_manifest_digest``: a child manifest must hash to its instance digest;
- tar archives: ``TarWriter`` (deterministic headers as Go's archive/tar
  writes them; a failed member is cut off again), ``write_tree_tar``,
  ``safe_extract`` (files and directories only, nothing outside), and
  ``index_tar``/``open_section`` to read members of an uncompressed tar in
  place; ``uncompressed_tar`` for compressed archives;
- ``AtomicOutput``: a temp file that becomes its target on ``publish``.
"""

from __future__ import annotations

import io
import os
import posixpath
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

from pallet.oci import mediatypes
from pallet.oci.compression import CHUNK_SIZE, MAGIC_LENGTH, auto_decompressed, decompression_errors, detect_compression
from pallet.oci.digest import Digest, Digester, verify_bytes
from pallet.oci.errors import DigestMismatch, InvalidImageName, SizeMismatch, TransportError, UnsafeArchive
from pallet.oci.layout import is_valid_ref_name
from pallet.oci.manifest import parse_manifest
from pallet.oci.transports.base import BlobInfo, SystemContext

@dataclass(frozen=True, slots=True)
class PathAndRef:
    """``PATH[:REF]`` as typed: ``ref`` is "" when none was given."""

    path: str
    ref: str


def split_path_and_ref(transport: str, text: str) -> PathAndRef:
    """Split ``PATH[:REF]`` at the first colon (containers/image's rule on Unix).

    ``REF`` is an OCI ``ref.name`` (which may itself hold colons, e.g.
    ``/tmp/l:example.com/app:v1``). Raises InvalidImageName for an empty
    path or a ref name that breaks the image-spec grammar.
    """
    path, _, ref = text.partition(":")
    if path == "":
        raise InvalidImageName(transport, text, "the path is empty (expected PATH[:REF])")
    if ref and not is_valid_ref_name(ref):
        raise InvalidImageName(
            transport,
            text,
            f"invalid ref name {ref!r}: components of [A-Za-z0-9] joined by one of -._:@+ or --, separated by /",
        )
    return PathAndRef(path, ref)


def require_path(transport: str, text: str) -> str:
    """``text`` as a path; InvalidImageName when it is empty."""
    if text == "":
        raise InvalidImageName(transport, text, "the path is empty")
    return text


def resolved_path(path: str) -> str:
    """An absolute path with the symlinks of its existing part resolved (for policy identities)."""
    return os.path.realpath(os.path.abspath(path))


def temp_root(context: SystemContext) -> str | None:
    """Where to stage archives: ``SystemContext.tmp_dir``, else the system default."""
    return None if context.tmp_dir is None else str(context.tmp_dir)


def make_temp_dir(context: SystemContext, purpose: str) -> Path:
    """A new private directory under ``temp_root(context)``; the caller removes it."""
    try:
        return Path(tempfile.mkdtemp(prefix=f"pallet-{purpose}-", dir=temp_root(context)))
    except OSError as error:
        raise TransportError(f"create a temporary directory for {purpose}: {error.strerror or error}") from error


def manifest_media_type(raw: bytes, declared: str = "") -> str:
    """The media type of manifest bytes: ``declared`` (without parameters) when given, else from the body."""
    base = mediatypes.base_media_type(declared)
    if base:
        return base
    return parse_manifest(raw).media_type


def check_manifest_digest(raw: bytes, instance_digest: Digest) -> None:
    """DigestMismatch unless ``raw`` hashes to ``instance_digest``."""
    verify_bytes(raw, instance_digest)


def write_verified(stream: BinaryIO, info: BlobInfo, temp_dir: Path, final_path: Callable[[Digest], Path]) -> BlobInfo:
    """Copy ``stream`` to ``final_path(digest)`` atomically, checking it against ``info`` while it streams.

    The bytes go to a temp file in ``temp_dir`` (same filesystem), are
    checked (SizeMismatch as soon as too many bytes came; SizeMismatch or
    DigestMismatch at the end), fsynced and renamed into place. On any
    failure the temp file is removed. Returns the digest and size stored,
    with ``info``'s other fields. Constant memory.
    """
    algorithm = info.digest.algorithm if info.digest is not None else "sha256"
    digester = Digester(algorithm)
    fd, temp_name = tempfile.mkstemp(prefix=".blob-", dir=temp_dir)
    published = False
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := stream.read(CHUNK_SIZE):
                digester.update(chunk)
                if 0 <= info.size < digester.size:
                    raise SizeMismatch(info.size, digester.size, at_least=True)
                out.write(chunk)
            _check_end(info, digester)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp_name, 0o644)
        os.replace(temp_name, final_path(digester.digest()))
        published = True
    finally:
        if not published:
            _remove_quietly(Path(temp_name))
    return BlobInfo(digester.digest(), digester.size, info.media_type, info.urls, info.annotations)


def _check_end(info: BlobInfo, digester: Digester) -> None:
    if info.size >= 0 and digester.size != info.size:
        raise SizeMismatch(info.size, digester.size)
    if info.digest is not None:
        actual = digester.digest()
        if actual != info.digest:
            raise DigestMismatch(str(info.digest), str(actual))


def _remove_quietly(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def os_failure(action: str, error: OSError) -> TransportError:
    """A TransportError for an OSError, saying what was being done."""
    reason = error.strerror or str(error)
    where = f" ({error.filename})" if error.filename else ""
    return TransportError(f"{action}: {reason}{where}")


# --- tar archives --------------------------------------------------------------------------

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


# --- writing a file that appears whole ----------------------------------------------------------


class AtomicOutput:
    """A temp file that becomes ``target`` on ``publish``, and vanishes on ``discard``.

    For a regular (or missing) ``target`` the temp file lies beside it and is
    renamed over it; for a pipe or device it lies under the context's temp
    directory and is copied into ``target``. ``staging_dir()`` gives a temp
    directory for other transient files, removed by ``discard``.
    """

    def __init__(self, target: Path, temp_path: Path, context: SystemContext, *, rename: bool) -> None:
        self.target = target
        self.file: BinaryIO = temp_path.open("w+b")
        self._temp_path: Path | None = temp_path
        self._context = context
        self._rename = rename
        self._staging: Path | None = None

    @classmethod
    def create(cls, target: Path, context: SystemContext) -> AtomicOutput:
        rename = not target.exists() or target.is_file()
        try:
            if rename:
                target.parent.mkdir(parents=True, exist_ok=True)
                fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
            else:
                fd, name = tempfile.mkstemp(prefix="pallet-archive-", suffix=".tmp", dir=temp_root(context))
            os.close(fd)
        except OSError as error:
            raise os_failure(f"create a temp file for {target}", error) from error
        return cls(target, Path(name), context, rename=rename)

    def staging_dir(self) -> Path:
        if self._staging is None:
            self._staging = make_temp_dir(self._context, "staging")
        return self._staging

    def publish(self) -> None:
        """Make the written bytes ``target``: fsync and rename (or copy into a pipe/device)."""
        if self._temp_path is None:
            raise TransportError(f"{self.target}: already published or discarded")
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
            if self._rename:
                os.chmod(self._temp_path, 0o644)
                os.replace(self._temp_path, self.target)
            else:
                self.file.seek(0)
                with self.target.open("wb") as out:
                    shutil.copyfileobj(self.file, out, CHUNK_SIZE)
                self._temp_path.unlink()
        except OSError as error:
            raise os_failure(f"write {self.target}", error) from error
        self._temp_path = None
        self.discard()

    def discard(self) -> None:
        """Close and remove what is left (idempotent); after ``publish`` only the staging directory."""
        self.file.close()
        if self._temp_path is not None:
            self._temp_path.unlink(missing_ok=True)
            self._temp_path = None
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None
