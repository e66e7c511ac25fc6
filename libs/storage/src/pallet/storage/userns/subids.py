"""/etc/subuid and /etc/subgid, read as containers/storage's ``idtools`` reads them.

Format (subuid(5)): one range a line, ``<user name or uid>:<start>:<count>``.
Leading and trailing white space is stripped; blank lines and lines starting
with ``#`` are ignored. A user may have several lines; their ranges are kept
in file order, which is the order podman maps them in. A line with any other
number of fields, or whose start or count is not a decimal integer, is a hard
error (:class:`SubIDFileInvalid`) even when it belongs to another user, as in
idtools' ``parseSubidFile``. A line matches a user when its first field is the
user's name or the user's numeric id (as newer idtools and shadow's
newuidmap do).

Nothing here caches or reads anything but the file named by the caller.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pallet.storage.userns.errors import NoSubIDRanges, SubIDFileInvalid

SUBUID_PATH = Path("/etc/subuid")
SUBGID_PATH = Path("/etc/subgid")


@dataclass(frozen=True)
class SubIDRange:
    """``count`` host ids starting at ``start`` (``start`` .. ``start + count - 1``)."""

    start: int
    count: int

    @property
    def end(self) -> int:
        """One past the last id of the range."""
        return self.start + self.count


@dataclass(frozen=True)
class SubIDEntry:
    """One line of a subordinate-id file: the ``owner`` field as written (a name or a uid) and its range."""

    owner: str
    range: SubIDRange


def _decimal(field: str, what: str, source: str, line_number: int) -> int:
    """``field`` as a non-negative decimal integer, or :class:`SubIDFileInvalid`."""
    if not field.isdecimal() or not field.isascii():
        raise SubIDFileInvalid(source, line_number, f"{what} {field[:40]!r} is not a non-negative decimal integer")
    return int(field)


def iter_entries(text: str, source: str) -> Iterator[SubIDEntry]:
    """Every entry of the file contents ``text``, in order; ``source`` names the file in errors.

    Raises :class:`SubIDFileInvalid` at the first malformed line (the lines
    before it have been yielded already).
    """
    for line_number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(":")
        if len(fields) != 3:
            raise SubIDFileInvalid(source, line_number, f"want 3 fields NAME:START:COUNT, found {len(fields)}")
        start = _decimal(fields[1], "start", source, line_number)
        count = _decimal(fields[2], "count", source, line_number)
        yield SubIDEntry(fields[0], SubIDRange(start, count))


def parse_subid_text(text: str, user: str, uid: int | None, source: str = "<text>") -> tuple[SubIDRange, ...]:
    """The ranges of ``user`` (by name, or by ``uid`` when given) in the contents ``text``, in file order.

    The whole text is validated (a malformed line anywhere raises
    :class:`SubIDFileInvalid`). Ranges of count 0 are dropped. An empty result
    is not an error here; :func:`ranges_for_user` makes it one.
    """
    wanted = {user} if uid is None else {user, str(uid)}
    entries = list(iter_entries(text, source))
    return tuple(e.range for e in entries if e.owner in wanted and e.range.count > 0)


def read_subid_file(path: Path, user: str, uid: int | None) -> tuple[SubIDRange, ...]:
    """The ranges of ``user``/``uid`` in the file ``path``; a missing file holds no ranges.

    Raises :class:`SubIDFileInvalid` for a malformed file and ``OSError`` when
    the file exists but cannot be read.
    """
    try:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
    except FileNotFoundError:
        return ()
    return parse_subid_text(text, user, uid, str(path))


def ranges_for_user(path: Path, user: str, uid: int) -> tuple[SubIDRange, ...]:
    """The non-empty ranges of ``user``/``uid`` in ``path``; :class:`NoSubIDRanges` when there are none."""
    ranges = read_subid_file(path, user, uid)
    if not ranges:
        raise NoSubIDRanges(str(path), user, uid)
    return ranges
