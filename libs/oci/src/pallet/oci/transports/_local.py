"""Helpers shared by the local transports (``oci:``, ``oci-archive:``, ``dir:``, ``docker-archive:``).

- reference text: ``PATH[:REF]`` split as containers/image does (at the
  first colon: a path cannot hold one, a ref name may);
- ``write_verified``: stream a blob into a file atomically, verified against
  what its ``BlobInfo`` promises (or hashed when nothing is promised);
- ``check_manifest_digest``: a child manifest must hash to its instance digest;
- ``make_temp_dir``, ``os_failure``;
- ``AtomicOutput``: a temp file that becomes its target on ``publish``.

Tar archives (writing, safe extraction, reading members in place) are in ``_tar``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pallet.oci import mediatypes
from pallet.oci.compression import CHUNK_SIZE
from pallet.oci.digest import Digest, Digester, verify_bytes
from pallet.oci.errors import DigestMismatch, InvalidImageName, SizeMismatch, TransportError
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
