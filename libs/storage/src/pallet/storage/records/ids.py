"""IDs, digests, times and big-data file names as containers/storage 1.43 makes and checks them."""

from __future__ import annotations

import base64
import datetime as dt
import re
import secrets
import time

from pallet.storage.errors import InvalidBigDataKey, InvalidID

ZERO_TIME = "0001-01-01T00:00:00Z"
_TIME = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)([.,]\d+)?(Z|[+-]\d\d:\d\d)\Z")  # Go 1.19 takes "," too
_HEX_ID = re.compile(r"[0-9a-f]{64}\Z")
_DIGEST_SIZES = {"sha256": 64, "sha384": 96, "sha512": 128}


def valid_id(value: str) -> bool:
    """True for 64 lowercase hex digits."""
    return bool(_HEX_ID.match(value))


def random_id() -> str:
    """A random ID as pkg/stringid makes it: 32 random bytes as hex, never 12 leading digits."""
    while True:
        value = secrets.token_hex(32)
        if not value[:12].isdigit():
            return value


def layer_chain_id(parent_id: str, diff_id: str) -> str:
    """The ID c/image gives a pulled layer: ``hex(diffID)`` for a base, else ``sha256(parent + "+" + hex(diffID))``."""
    import hashlib  # here, not at the top: start-up cost for every tool that only reads records

    diff_hex = diff_id.split(":", 1)[1] if ":" in diff_id else diff_id
    if not parent_id:
        return diff_hex
    return hashlib.sha256(f"{parent_id}+{diff_hex}".encode("ascii")).hexdigest()


def image_id_for_config(config_digest: str) -> str:
    """The ID of an image pulled from a schema2/OCI manifest: the hex of its config digest."""
    if not valid_digest(config_digest):
        raise InvalidID(config_digest)
    return config_digest.split(":", 1)[1]


def valid_digest(value: str) -> bool:
    """go-digest's Validate: ``sha256|sha384|sha512`` ``:`` lowercase hex of the right length."""
    algorithm, sep, encoded = value.partition(":")
    size = _DIGEST_SIZES.get(algorithm)
    return bool(sep) and size is not None and len(encoded) == size and all(c in "0123456789abcdef" for c in encoded)


def valid_time(text: str) -> bool:
    """True when Go's RFC3339 parser takes ``text`` (a timezone is required)."""
    match = _TIME.match(text)
    if not match:
        return False
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    try:
        dt.datetime(max(year, 1), month, day, hour, minute, second)
    except ValueError:
        return False
    zone = match.group(8)
    return zone == "Z" or (int(zone[1:3]) < 24 and int(zone[4:6]) < 60)


def format_time(moment: dt.datetime, nanoseconds: int | None = None) -> str:
    """``moment`` as Go's RFC3339Nano prints it (fraction without trailing zeros, ``Z`` for UTC).

    ``nanoseconds`` replaces the microseconds of ``moment`` when given. A
    naive ``moment`` is taken as UTC.
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    nanos = moment.microsecond * 1000 if nanoseconds is None else nanoseconds
    text = f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    if nanos:
        text += "." + f"{nanos:09d}".rstrip("0")
    offset = moment.utcoffset() or dt.timedelta(0)
    if not offset:
        return text + "Z"
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    return f"{text}{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def now_time() -> str:
    """The current time in UTC, formatted as Go writes it."""
    ns = time.time_ns()
    return format_time(dt.datetime.fromtimestamp(ns // 10**9, dt.timezone.utc), ns % 10**9)


def normalize_time(text: str) -> str:
    """An RFC3339 time (e.g. an image config's ``created``) re-printed as Go prints it after parsing."""
    match = _TIME.match(text)
    if not match or not valid_time(text):
        raise ValueError(f"not an RFC3339 time: {text[:64]!r}")
    fraction = (match.group(7) or ".")[1:10].ljust(9, "0")
    base = dt.datetime.fromisoformat(text[: match.start(7) if match.group(7) else match.start(8)] + ("+00:00" if match.group(8) == "Z" else match.group(8)))
    return format_time(base, int(fraction))



# -- big data ----------------------------------------------------------------------------------


def big_data_file_name(key: str) -> str:
    """The file name c/storage's makeBigDataBaseName gives a big-data ``key``.

    The key itself when its characters are all in ``[a-z0-9.]``, else ``=``
    plus the standard, padded base64 of its UTF-8 bytes. Like Go, the last
    character is never checked (``"abcD"`` stays ``"abcD"``).
    """
    if not key:
        raise InvalidBigDataKey("a big-data key cannot be empty")
    raw = key.encode("utf-8", "surrogatepass")
    consumed = 0
    for char in key:
        size = len(char.encode("utf-8", "surrogatepass"))
        consumed += size
        if size != 1 or not (char == "." or "0" <= char <= "9" or "a" <= char <= "z"):
            break
    if consumed < len(raw):
        return "=" + base64.b64encode(raw).decode("ascii")
    return key


def big_data_key_of_file(file_name: str) -> str:
    """The key a big-data file name stands for (inverse of :func:`big_data_file_name`)."""
    if file_name.startswith("="):
        return base64.b64decode(file_name[1:], validate=True).decode("utf-8")
    return file_name
