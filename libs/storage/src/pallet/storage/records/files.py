"""Record files on disk: loaded whole, replaced atomically (temp file, fdatasync, chmod, rename)."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Sequence
from typing import Any

from pallet.storage.errors import CorruptRecords
from pallet.storage.records.codec import decode_records, encode_one, encode_records
from pallet.storage.records.model import R, Record


def load_records(kind: type[R], path: str) -> list[R]:
    """The records in ``path``; a missing file holds none."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise CorruptRecords(path, f"cannot read: {exc.strerror}") from exc
    return decode_records(kind, data, path)


def save_records(path: str, records: Sequence[Record]) -> None:
    """Replace ``path`` atomically with ``records`` (checked, then parsed back before the rename)."""
    data = encode_records(records)
    if records:
        kind: Any = type(records[0])
        if any(type(record) is not kind for record in records):
            raise TypeError("records of one file must all be of one kind")
        back: list[Record] = decode_records(kind, data, path)
        if [encode_one(r) for r in back] != [encode_one(r) for r in records]:
            raise CorruptRecords(path, "the encoded records do not parse back to themselves")
    atomic_write(path, data)


def atomic_write(path: str, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` as fswriters.go does: ``.tmp-<name>*`` beside it, fdatasync, chmod, rename."""
    directory, name = os.path.split(os.path.abspath(path))
    fd, temp = _create_temp(directory, name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fdatasync(handle.fileno())
            os.fchmod(handle.fileno(), mode)
        os.rename(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _create_temp(directory: str, name: str) -> tuple[int, str]:
    """A new file ``.tmp-<name><random digits>`` in ``directory`` (as os.CreateTemp names it), mode 0600."""
    while True:
        temp = os.path.join(directory, f".tmp-{name}{secrets.randbelow(10**10)}")
        try:
            return os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600), temp
        except FileExistsError:
            continue
