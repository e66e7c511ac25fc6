"""Helpers shared by the local transports (``oci:``, ``oci-archive:``, ``dir:``, ``docker-archive:``).

- reference text: ``PATH[:REF]`` split as containers/image does (at the
  first colon: a path cannot hold one, a ref name may);
- the errors these transports add to ``pallet.oci.errors``' tree
  (``LocalImageNotFound``, ``AmbiguousImage``, ``UnsafeArchive``);
- ``write_verified``: stream a blob into a file atomically, verified against
  what its ``BlobInfo`` promises (or hashed when nothing is promised);
- ``check_manifest_digest``: a child manifest must hash to its instance digest.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pallet.oci import mediatypes
from pallet.oci.digest import Digest, Digester, verify_bytes
from pallet.oci.errors import DigestMismatch, ImageNotFound, InvalidImageName, SizeMismatch, TransportError
from pallet.oci.layout import is_valid_ref_name
from pallet.oci.manifest import parse_manifest
from pallet.oci.transports.base import BlobInfo, SystemContext

#: Bytes copied at a time: the memory a streaming copy needs.
CHUNK_SIZE = 1 << 20


class LocalImageNotFound(TransportError, ImageNotFound):
    """There is no image at the local path (or under the name) given."""


class AmbiguousImage(TransportError):
    """The reference names no image and the place holds several: the user must choose one."""


class UnsafeArchive(TransportError):
    """An archive holds a member that would land outside its directory, or is not a file or directory."""


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


def write_verified(stream: BinaryIO, info: BlobInfo, final_path: Path, temp_dir: Path) -> BlobInfo:
    """Copy ``stream`` to ``final_path`` atomically, checking it against ``info`` while it streams.

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
        os.replace(temp_name, final_path)
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
