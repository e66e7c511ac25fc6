"""containers/storage lock files: POSIX record locks plus the last-write token.

The mechanism is that of containers/storage 1.43 ``pkg/lockfile`` (format
doc, section 6), so that our processes and podman's exclude each other:

- A whole-file POSIX record lock (``fcntl.lockf``: ``F_SETLK(W)``, start 0,
  length 0), ``F_WRLCK`` for writers and ``F_RDLCK`` for readers. Never
  ``flock(2)``: that lock does not conflict with Go's.
- The file is opened ``O_RDWR|O_CREAT|O_CLOEXEC`` (mode 0644, parent made
  0700 when missing), or ``O_RDONLY`` for read-only stores, on the first
  in-process acquire and closed on the last release. Because POSIX locks
  belong to the process and any ``close`` of the file drops them, one
  :class:`LockFile` (one fd) exists per path per process: get it with
  :func:`get_lockfile`, never by constructing one.
- In the process a reader/writer gate serialises threads: many readers
  share the one file lock; a writer is alone. It is reentrant per thread
  (a thread holding the write lock may lock again, for reading or writing);
  a thread holding only a read lock may not take the write lock (that would
  deadlock; :class:`~pallet.storage.errors.LockError` is raised instead).
- The last-write token (section 6.2): after every change to the data it
  protects, the writer, still holding the write lock, calls
  :meth:`LockFile.record_write`, which ``pwrite``s 64 fresh bytes at offset 0:
  bytes 0-7 UnixNano time (little endian), 8-15 an in-process counter (LE),
  16-19 the pid (LE), 20-63 random. Readers keep the token they last saw and
  ask :meth:`LockFile.modified_since`; a short read (a new, empty file)
  counts as modified.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import itertools
import os
import secrets
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from pallet.storage.errors import LockBusy, LockError, LockNotHeld

TOKEN_SIZE = 64  # bytes of the last-write token at offset 0 of the lock file
_READ, _WRITE = "read", "write"


def new_token(counter: int, pid: int | None = None, now_ns: int | None = None) -> bytes:
    """A fresh 64-byte last-write token laid out as containers/storage lays it out."""
    stamp = time.time_ns() if now_ns is None else now_ns
    head = struct.pack("<QQI", stamp & (2**64 - 1), counter & (2**64 - 1), (os.getpid() if pid is None else pid) & (2**32 - 1))
    return head + secrets.token_bytes(TOKEN_SIZE - len(head))


class _Gate:
    """A reentrant reader/writer gate for the threads of this process.

    ``acquire`` returns False (without waiting) when ``blocking`` is false and
    the gate is taken; it raises LockError for a read-to-write upgrade.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._writer: int | None = None
        self._readers: dict[int, int] = {}
        self._held: dict[int, list[str]] = {}  # thread -> stack of modes it acquired
        self._writers_waiting = 0  # new readers wait behind them, as with Go's sync.RWMutex

    def acquire(self, mode: str, blocking: bool, path: str) -> bool:
        me = threading.get_ident()
        with self._cond:
            if self._writer == me:  # nested under our own write lock: always granted
                self._held[me].append(_WRITE)
                return True
            if mode == _WRITE and me in self._readers:
                raise LockError(path, "this thread holds the lock for reading and cannot upgrade it to writing")
            if mode == _READ and me in self._readers:
                self._readers[me] += 1
                self._held[me].append(_READ)
                return True
            if not self._free_for(mode):
                if not blocking:
                    return False
                self._wait_for(mode)
            if mode == _WRITE:
                self._writer = me
            else:
                self._readers[me] = 1
            self._held[me] = [_WRITE if mode == _WRITE else _READ]
            return True

    def _free_for(self, mode: str) -> bool:
        if mode == _READ:
            return self._writer is None and not self._writers_waiting
        return self._writer is None and not self._readers

    def _wait_for(self, mode: str) -> None:
        """Wait (holding the condition) until ``mode`` can be granted; writers announce themselves."""
        if mode == _READ:
            while not self._free_for(mode):
                self._cond.wait()
            return
        self._writers_waiting += 1
        try:
            while not self._free_for(mode):
                self._cond.wait()
        finally:
            self._writers_waiting -= 1
            self._cond.notify_all()

    def release(self, path: str) -> None:
        me = threading.get_ident()
        with self._cond:
            stack = self._held.get(me)
            if not stack:
                raise LockNotHeld(path, "unlock by a thread that does not hold the lock")
            stack.pop()
            if stack:
                if self._writer != me:
                    self._readers[me] -= 1
                return
            del self._held[me]
            if self._writer == me:
                self._writer = None
            else:
                del self._readers[me]
            self._cond.notify_all()

    def writer_is_me(self) -> bool:
        with self._cond:
            return self._writer == threading.get_ident()

    def held_by_me(self) -> bool:
        with self._cond:
            return bool(self._held.get(threading.get_ident()))


def _fcntl_lock(fd: int, operation: int) -> None:
    """A whole-file record lock; a blocking attempt that the kernel calls a deadlock is retried
    every 10 ms, as Go's loop around ``F_SETLKW`` does (it retries on any error)."""
    while True:
        try:
            fcntl.lockf(fd, operation, 0, 0, os.SEEK_SET)
            return
        except OSError as exc:
            if operation & fcntl.LOCK_NB or exc.errno != errno.EDEADLK:
                raise
        time.sleep(0.01)


class LockFile:
    """One containers/storage lock file, shared by every user in this process.

    Contract: ``lock``/``rlock`` (or the context managers ``writing`` and
    ``reading``) block until held; ``try_lock``/``try_rlock`` raise
    :class:`LockBusy` at once instead. Every acquire is paired with one
    ``unlock`` from the same thread. The token methods need the lock held
    (``record_write`` needs it for writing).
    """

    def __init__(self, path: str, read_only: bool = False) -> None:
        self.path = path
        self.read_only = read_only
        self._gate = _Gate()
        self._state = threading.Lock()  # guards _fd and _count, held across the fcntl wait (as Go does)
        self._fd: int | None = None
        self._count = 0
        self._mode = _READ
        self._counter = itertools.count(1)

    def lock(self) -> None:
        """Take the lock for writing, waiting as long as it takes."""
        self._acquire(_WRITE, blocking=True)

    def rlock(self) -> None:
        """Take the lock for reading, waiting as long as it takes."""
        self._acquire(_READ, blocking=True)

    def try_lock(self) -> None:
        """Take the lock for writing now, or raise :class:`LockBusy`."""
        self._acquire(_WRITE, blocking=False)

    def try_rlock(self) -> None:
        """Take the lock for reading now, or raise :class:`LockBusy`."""
        self._acquire(_READ, blocking=False)

    @contextlib.contextmanager
    def writing(self) -> Iterator[LockFile]:
        """Hold the lock for writing inside the ``with`` block."""
        self.lock()
        try:
            yield self
        finally:
            self.unlock()

    @contextlib.contextmanager
    def reading(self) -> Iterator[LockFile]:
        """Hold the lock for reading inside the ``with`` block."""
        self.rlock()
        try:
            yield self
        finally:
            self.unlock()

    def _acquire(self, mode: str, blocking: bool) -> None:
        if mode == _WRITE and self.read_only and not self._gate.writer_is_me():
            raise LockError(self.path, "a read-only lock file cannot be locked for writing")
        if not self._gate.acquire(mode, blocking, self.path):
            raise LockBusy(self.path, "held by another thread of this process")
        try:
            with self._state:
                if self._count == 0:
                    self._lock_file(mode, blocking)
                self._count += 1
        except BaseException:
            self._gate.release(self.path)
            raise

    def _lock_file(self, mode: str, blocking: bool) -> None:
        fd = self._open()
        operation = fcntl.LOCK_EX if mode == _WRITE else fcntl.LOCK_SH
        try:
            _fcntl_lock(fd, operation if blocking else operation | fcntl.LOCK_NB)
        except BaseException as exc:
            os.close(fd)
            if not isinstance(exc, OSError):
                raise
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise LockBusy(self.path, "held by another process") from exc
            raise LockError(self.path, f"fcntl: {exc.strerror}") from exc
        self._fd = fd
        self._mode = mode

    def _open(self) -> int:
        flags = (os.O_RDONLY if self.read_only else os.O_RDWR | os.O_CREAT) | os.O_CLOEXEC
        try:
            return os.open(self.path, flags, 0o644)
        except FileNotFoundError:
            if self.read_only:
                raise LockError(self.path, "no such lock file (read-only store)") from None
            os.makedirs(os.path.dirname(self.path) or ".", 0o700, exist_ok=True)
            try:
                return os.open(self.path, flags, 0o644)
            except OSError as exc:
                raise LockError(self.path, f"open: {exc.strerror}") from exc
        except OSError as exc:
            raise LockError(self.path, f"open: {exc.strerror}") from exc

    def unlock(self) -> None:
        """Release one acquire of this thread; the last release closes the fd, dropping the file lock."""
        if not self._gate.held_by_me():
            raise LockNotHeld(self.path, "unlock by a thread that does not hold the lock")
        with self._state:
            self._count -= 1
            if self._count == 0 and self._fd is not None:
                os.close(self._fd)
                self._fd = None
        self._gate.release(self.path)

    @property
    def locked_for_writing(self) -> bool:
        """True when the calling thread holds this lock for writing."""
        return self._gate.writer_is_me()

    @property
    def locked(self) -> bool:
        """True when the calling thread holds this lock in any mode."""
        return self._gate.held_by_me()

    def last_write(self) -> bytes:
        """The token now in the file (up to 64 bytes; fewer for a new file). The lock must be held."""
        fd = self._held_fd()
        try:
            return os.pread(fd, TOKEN_SIZE, 0)
        except OSError as exc:
            raise LockError(self.path, f"read token: {exc.strerror}") from exc

    def modified_since(self, token: bytes | None) -> bool:
        """True when the file's token differs from ``token`` (None, or a short/empty file: True)."""
        current = self.last_write()
        return token is None or len(current) < TOKEN_SIZE or current != token

    def record_write(self) -> bytes:
        """Store a fresh token (the caller changed the data) and return it. Needs the write lock."""
        if not self._gate.writer_is_me() or self._mode != _WRITE:
            raise LockNotHeld(self.path, "recording a write needs the lock held for writing")
        fd = self._held_fd()
        token = new_token(next(self._counter))
        try:
            written = os.pwrite(fd, token, 0)
        except OSError as exc:
            raise LockError(self.path, f"write token: {exc.strerror}") from exc
        if written != TOKEN_SIZE:
            raise LockError(self.path, f"write token: short write ({written} bytes)")
        return token

    def _held_fd(self) -> int:
        fd = self._fd
        if fd is None or not self._gate.held_by_me():
            raise LockNotHeld(self.path, "the lock is not held by this thread")
        return fd


class LockRegistry:
    """The process-wide map from lock file path to its one :class:`LockFile`.

    This is the one piece of global state in pallet.storage, and it has to be:
    POSIX record locks belong to the process, so two objects (two fds) for one
    file in one process would silently drop each other's lock on close. The
    registry is keyed by the absolute, symlink-resolved path and forgets
    everything in a forked child (locks are not inherited across fork).
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._pid = os.getpid()
        self._locks: dict[str, LockFile] = {}

    def get(self, path: str | os.PathLike[str], read_only: bool = False) -> LockFile:
        """The LockFile for ``path``; raises LockError if it was opened in the other mode."""
        key = os.path.realpath(os.fspath(path))
        with self._mutex:
            if self._pid != os.getpid():
                self._pid, self._locks = os.getpid(), {}
            found = self._locks.get(key)
            if found is None:
                found = self._locks[key] = LockFile(key, read_only)
            elif found.read_only != read_only:
                mode = "read-only" if found.read_only else "read-write"
                raise LockError(key, f"already opened {mode} in this process")
            return found


_REGISTRY = LockRegistry()


def get_lockfile(path: str | Path, read_only: bool = False) -> LockFile:
    """The process's one :class:`LockFile` for ``path`` (read-only: for additional image stores)."""
    return _REGISTRY.get(path, read_only)
