"""Filesystem primitives of the layout: temp files, atomic replace, fsync, locking.

Every ``OSError`` of the layout's own files leaves this module as a
``LayoutError`` whose message says what was being done ("write blob
sha256:...: No space left on device"), with the ``OSError`` as its cause.
Errors of a caller's source stream are not this module's business.
"""

from __future__ import annotations

import errno
import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pallet.oci._fsutil import fsync_dir
from pallet.oci.errors import LayoutError

#: The directory, at the root of a layout, that holds files being written.
#: It is on the layout's filesystem, so that a finished file is renamed into
#: place; it is outside ``blobs/``, so that ``blobs/`` never holds a partial blob.
TEMP_DIR_NAME = ".pallet-tmp"

FILE_MODE = 0o644
DIR_MODE = 0o755


def os_error(action: str, error: OSError) -> LayoutError:
    """A LayoutError for ``error``, saying what was being done."""
    reason = error.strerror or str(error)
    where = f" ({error.filename})" if error.filename and error.errno not in {errno.ENOSPC, errno.EDQUOT} else ""
    return LayoutError(f"{action}: {reason}{where}")


def make_dirs(path: Path, action: str) -> None:
    """``mkdir -p`` with the layout's directory mode."""
    try:
        path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    except OSError as error:
        raise os_error(action, error) from error


def remove_quietly(path: Path) -> None:
    """Remove a file if it is there; for cleanup paths that must not raise."""
    try:
        path.unlink()
    except OSError:
        pass


def make_temp_file(temp_dir: Path, purpose: str, action: str) -> tuple[int, Path]:
    """A new, empty, private temp file in ``temp_dir`` (created if needed): (fd, path)."""
    make_dirs(temp_dir, action)
    try:
        fd, name = tempfile.mkstemp(prefix=f"{purpose}-", dir=temp_dir)
    except OSError as error:
        raise os_error(action, error) from error
    return fd, Path(name)


def publish(temp_path: Path, final_path: Path) -> None:
    """Make ``temp_path`` (already fsynced) visible as ``final_path``, durably.

    The rename is atomic: a reader sees the old file or the new one, never a
    mix. Raises OSError; the caller wraps it and removes ``temp_path``.
    """
    os.chmod(temp_path, FILE_MODE)
    os.replace(temp_path, final_path)
    fsync_dir(final_path.parent)


def write_atomically(path: Path, data: bytes, temp_dir: Path, action: str) -> None:
    """Replace ``path`` with ``data``: temp file, fsync, rename, fsync of the directory.

    On failure ``path`` is unchanged (or, if only the last fsync failed,
    already replaced) and no temp file is left.
    """
    fd, temp_path = make_temp_file(temp_dir, path.name, action)
    published = False
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        publish(temp_path, path)
        published = True
    except OSError as error:
        raise os_error(action, error) from error
    finally:
        if not published:
            remove_quietly(temp_path)


def read_file(path: Path, action: str) -> bytes:
    """The whole file; FileNotFoundError passes through, other OSErrors are wrapped."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as error:
        raise os_error(action, error) from error


@contextmanager
def locked(directory: Path, action: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``directory`` for the duration of the block.

    It serialises the read-modify-write of ``index.json`` and garbage
    collection between Pallet processes (and threads with their own
    ``OciLayout``). Other tools do not take it. Not re-entrant: a thread that
    holds it must not ask for it again.
    """
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as error:
        raise os_error(action, error) from error
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as error:
            raise os_error(action, error) from error
        yield
    finally:
        os.close(fd)
