"""Parsing of tar headers at the block level: ustar, GNU and PAX, as Go's ``archive/tar`` reads them.

Python's :mod:`tarfile` does not keep raw header bytes, and tar-split needs
every one of them, so the scanner here reads 512-byte blocks itself and this
module only turns bytes into fields. Names stay ``bytes`` end to end.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pallet.storage.tarengine.errors import TarFormatError, UnsafeEntryError, UnsupportedEntryError

BLOCK = 512
ZERO_BLOCK = bytes(BLOCK)

REGULAR = b"0"
HARDLINK = b"1"
SYMLINK = b"2"
CHAR = b"3"
BLOCKDEV = b"4"
DIRECTORY = b"5"
FIFO = b"6"
CONTIGUOUS = b"7"
PAX_LOCAL = b"x"
PAX_GLOBAL = b"g"
GNU_LONGNAME = b"L"
GNU_LONGLINK = b"K"
GNU_SPARSE = b"S"

EXTENSION_TYPES = frozenset({PAX_LOCAL, PAX_GLOBAL, GNU_LONGNAME, GNU_LONGLINK})
HEADER_ONLY_TYPES = frozenset({HARDLINK, SYMLINK, CHAR, BLOCKDEV, DIRECTORY, FIFO})
MEMBER_TYPES = frozenset({REGULAR, CONTIGUOUS, b"\x00"}) | HEADER_ONLY_TYPES


@dataclass
class Member:
    """One tar member with its extension headers merged in (PAX over GNU over ustar fields)."""

    name: bytes
    typeflag: bytes
    size: int  # content bytes that follow the header in the stream
    mode: int
    uid: int
    gid: int
    mtime_ns: int
    atime_ns: int
    linkname: bytes = b""
    devmajor: int = 0
    devminor: int = 0
    xattrs: dict[bytes, bytes] = field(default_factory=dict)


def parse_number(raw: bytes) -> int:
    """A numeric header field: octal, or GNU base-256 when the high bit of the first byte is set."""
    if raw and raw[0] & 0x80:
        value = int.from_bytes(bytes([raw[0] & 0x7F]) + raw[1:], "big")
        if raw[0] & 0x40:  # negative base-256
            value -= 1 << (len(raw) * 8 - 1)
        return value
    text = raw.strip(b" \x00")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise TarFormatError(f"bad numeric field {raw!r}") from None


def _cstring(raw: bytes) -> bytes:
    end = raw.find(b"\x00")
    return raw if end < 0 else raw[:end]


_HIGH_BYTES = bytes(range(128, 256))


def check_checksum(block: bytes) -> None:
    """Refuse a header whose checksum matches neither the unsigned nor the signed byte sum."""
    stored = parse_number(block[148:156])
    unsigned = sum(block[:148]) + 8 * 32 + sum(block[156:])
    if stored == unsigned:
        return
    rest = block[:148] + block[156:]
    signed = unsigned - 256 * (len(rest) - len(rest.translate(None, _HIGH_BYTES)))  # bytes >= 128 count negative
    if stored != signed:
        raise TarFormatError("bad tar header checksum")


def parse_header(block: bytes) -> Member:
    """The fields of one 512-byte header block (before any extension header is applied)."""
    check_checksum(block)
    magic = block[257:263]
    name = _cstring(block[0:100])
    if magic == b"ustar\x00":
        prefix = _cstring(block[345:500])
        if prefix:
            name = prefix + b"/" + name
    typeflag = block[156:157]
    if typeflag == b"\x00":
        typeflag = DIRECTORY if name.endswith(b"/") else REGULAR
    mtime = parse_number(block[136:148])
    return Member(
        name=name, typeflag=typeflag, size=parse_number(block[124:136]), mode=parse_number(block[100:108]),
        uid=parse_number(block[108:116]), gid=parse_number(block[116:124]), mtime_ns=mtime * 1_000_000_000,
        atime_ns=mtime * 1_000_000_000, linkname=_cstring(block[157:257]),
        devmajor=parse_number(block[329:337]), devminor=parse_number(block[337:345]),
    )


def parse_pax(data: bytes) -> dict[bytes, bytes]:
    """PAX records ``LEN KEY=VALUE\\n`` as a dict of raw bytes (later records win)."""
    records: dict[bytes, bytes] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos, pos + 20)
        if space < 0:
            if not data[pos:].strip(b"\x00"):
                break  # NUL padding at the end of the block
            raise TarFormatError("bad PAX record length")
        try:
            length = int(data[pos:space])
        except ValueError:
            raise TarFormatError("bad PAX record length") from None
        end = pos + length
        if length <= space - pos + 1 or end > len(data) or data[end - 1:end] != b"\n":
            raise TarFormatError("bad PAX record")
        key, eq, value = data[space + 1:end - 1].partition(b"=")
        if not eq or not key or b"\x00" in key:
            raise TarFormatError("bad PAX record key")
        records[key] = value
        pos = end
    return records


def _pax_time(value: bytes) -> int:
    text = value.decode("ascii", "replace")
    whole, _, frac = text.partition(".")
    try:
        seconds = int(whole)
        nanos = int((frac + "000000000")[:9]) if frac else 0
    except ValueError:
        raise TarFormatError(f"bad PAX time {value!r}") from None
    return seconds * 1_000_000_000 + (-nanos if whole.startswith("-") else nanos)


def _pax_int(value: bytes) -> int:
    try:
        number = int(value)
    except ValueError:
        raise TarFormatError(f"bad PAX number {value!r}") from None
    if number < 0:
        raise TarFormatError(f"negative PAX number {value!r}")
    return number


def apply_pax(member: Member, records: dict[bytes, bytes]) -> None:
    """Merge PAX records into ``member``; GNU sparse records are refused."""
    for key, value in records.items():
        if key.startswith(b"GNU.sparse."):
            raise UnsupportedEntryError(member.name, "GNU sparse files (PAX form) are refused")
        if key in (b"path", b"linkpath") and b"\x00" in value:
            raise UnsafeEntryError(value, "NUL in a PAX path")
        if key == b"path":
            member.name = value
        elif key == b"linkpath":
            member.linkname = value
        elif key == b"size":
            member.size = _pax_int(value)
        elif key == b"uid":
            member.uid = _pax_int(value)
        elif key == b"gid":
            member.gid = _pax_int(value)
        elif key == b"mtime":
            member.mtime_ns = _pax_time(value)
        elif key == b"atime":
            member.atime_ns = _pax_time(value)
        elif key.startswith(b"SCHILY.xattr."):
            member.xattrs[key[len(b"SCHILY.xattr."):]] = value


def cstring(raw: bytes) -> bytes:
    """A GNU long name or link record: its bytes up to the first NUL (Go cuts there too)."""
    return _cstring(raw)
