"""Errors of the layer tar engine, under :class:`pallet.storage.errors.StorageError`.

    StorageError
    └── TarEngineError              the root of this package's errors
        ├── TarFormatError          the stream is not a tar archive we can read (bad header, truncated)
        ├── UnsafeEntryError        an entry would act outside the layer directory (``..``, NUL, over-long name)
        ├── UnsupportedEntryError   an entry type we refuse (GNU sparse, device node unprivileged, ...)
        ├── DuplicateEntryError     two entries name the same path (c/storage's tar-split refuses this too)
        ├── LimitExceededError      a configured cap (size, count, name length) is exceeded
        ├── TarSplitError           tar-split metadata is malformed or does not match the files
        └── ApplyError              a filesystem operation failed while an entry was applied
"""

from __future__ import annotations

from pallet.storage.errors import StorageError

_MAX_SHOWN = 200


def shown(name: bytes | str) -> str:
    """``name`` for a message, quoted and cut short (hostile names must not make huge messages)."""
    text = name.decode("utf-8", "backslashreplace") if isinstance(name, bytes) else name
    return repr(text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "...")


class TarEngineError(StorageError):
    """The root of every error of the layer tar engine."""


class TarFormatError(TarEngineError):
    """The uncompressed stream is not a well-formed tar archive."""


class UnsafeEntryError(TarEngineError):
    """An entry names a path that is refused: it climbs out of the layer, holds NUL, or is too long."""

    def __init__(self, name: bytes | str, why: str) -> None:
        self.name = name
        self.why = why
        super().__init__(f"unsafe tar entry {shown(name)}: {why}")


class UnsupportedEntryError(TarEngineError):
    """An entry of a kind that is refused here (GNU sparse, a device node without privilege, ...)."""

    def __init__(self, name: bytes | str, why: str) -> None:
        self.name = name
        self.why = why
        super().__init__(f"unsupported tar entry {shown(name)}: {why}")


class DuplicateEntryError(TarEngineError):
    """Two entries name the same path after cleaning (tar-split cannot store such a layer)."""

    def __init__(self, name: bytes | str) -> None:
        self.name = name
        super().__init__(f"duplicate tar entry {shown(name)}")


class LimitExceededError(TarEngineError):
    """A configured cap was exceeded (``limit`` names it)."""

    def __init__(self, limit: str, value: int, cap: int) -> None:
        self.limit = limit
        self.value = value
        self.cap = cap
        super().__init__(f"{limit} {value} exceeds the cap {cap}")


class TarSplitError(TarEngineError):
    """tar-split metadata is malformed, or a file's content does not match its recorded size or CRC."""


class ApplyError(TarEngineError):
    """A filesystem operation failed while an entry was applied (``__cause__`` holds the OSError)."""

    def __init__(self, name: bytes | str, why: str) -> None:
        self.name = name
        self.why = why
        super().__init__(f"apply {shown(name)}: {why}")
