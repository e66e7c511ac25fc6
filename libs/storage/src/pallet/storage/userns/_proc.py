"""Low-level parts of :mod:`pallet.storage.userns.unshare`: libc calls and the pipe protocol.

libc is reached with :mod:`ctypes` (``unshare``, ``mount``, ``prctl``); no
external ``unshare(1)`` or ``mount(8)`` is run. The CDLL handle is made by the
caller before ``fork`` and passed in, so that the child never calls dlopen.

The child talks to the parent in frames on one pipe: a one-byte tag, a
four-byte big-endian length and that many bytes of payload. Reads wait with
``select`` up to a deadline (a ``time.monotonic`` value, or None for no limit)
and raise :class:`UsernsTimeout` when it passes; EOF before a whole frame is
reported as None.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
import signal
import struct
import time

from pallet.storage.userns.errors import UsernsTimeout

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
PR_SET_PDEATHSIG = 1

TAG_UNSHARED = b"U"  # child -> parent: the namespaces exist, map me
TAG_GO = b"G"  # parent -> child: the maps are written, carry on
TAG_SETUP_ERROR = b"E"  # child -> parent: payload "STAGE\0ERRNO\0MESSAGE"
TAG_RESULT = b"R"  # child -> parent: payload a pickled (ok, value)
TAG_EXEC_ERROR = b"X"  # child -> parent: payload "ERRNO\0MESSAGE"

_HEADER = struct.Struct(">cI")


def load_libc() -> ctypes.CDLL:
    """The C library, with errno kept for :func:`ctypes.get_errno`."""
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _check(result: int, what: str) -> None:
    """Raise OSError with the saved errno when a libc call returned -1."""
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def unshare_user_and_mount(libc: ctypes.CDLL) -> None:
    """unshare(CLONE_NEWUSER | CLONE_NEWNS) in the calling (single-threaded) process; OSError on failure."""
    _check(libc.unshare(ctypes.c_int(CLONE_NEWUSER | CLONE_NEWNS)), "unshare(CLONE_NEWUSER|CLONE_NEWNS)")


def make_mounts_private(libc: ctypes.CDLL) -> None:
    """mount --make-rprivate / in the calling process's mount namespace; OSError on failure."""
    flags = ctypes.c_ulong(MS_REC | MS_PRIVATE)
    _check(libc.mount(b"none", b"/", None, flags, None), "mount(/, MS_REC|MS_PRIVATE)")


def die_with_parent(libc: ctypes.CDLL) -> None:
    """Ask the kernel to SIGKILL the calling process when its parent (thread) exits."""
    _check(libc.prctl(PR_SET_PDEATHSIG, ctypes.c_ulong(signal.SIGKILL), 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")


def write_frame(fd: int, tag: bytes, payload: bytes = b"") -> None:
    """Write one whole frame to ``fd`` (a pipe: blocks until the reader has taken enough)."""
    data = _HEADER.pack(tag, len(payload)) + payload
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_exact(fd: int, size: int, deadline: float | None) -> bytes | None:
    """``size`` bytes from ``fd``, or None at EOF; UsernsTimeout when ``deadline`` passes first."""
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        ready, _, _ = select.select([fd], [], [], wait)
        if not ready:
            raise UsernsTimeout("the child in the user namespace did not answer in time; it was killed")
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int, deadline: float | None) -> tuple[bytes, bytes] | None:
    """The next frame from ``fd`` as (tag, payload), or None at EOF (the writer closed or exec'd)."""
    header = _read_exact(fd, _HEADER.size, deadline)
    if header is None:
        return None
    tag, size = _HEADER.unpack(header)
    payload = _read_exact(fd, size, deadline) if size else b""
    return None if payload is None else (tag, payload)


def deadline_after(seconds: float | None) -> float | None:
    """The monotonic time ``seconds`` from now, or None for no limit."""
    return None if seconds is None else time.monotonic() + seconds


def kill_and_reap(pid: int) -> int:
    """SIGKILL ``pid`` (if still there) and wait for it; its wait status, or 0 when already reaped."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        return os.waitpid(pid, 0)[1]
    except ChildProcessError:
        return 0


def exit_code(status: int) -> int:
    """A wait status as a shell does: the exit code, or 128 + the signal number."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.waitstatus_to_exitcode(status)
