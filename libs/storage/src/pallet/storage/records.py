"""The record files of containers/storage 1.43: layers.json, images.json, containers.json, mountpoints.json.

Format doc sections 2.1, 4.1, 4.2 and 5. Contracts:

- Reading accepts exactly what Go's encoding/json would decode into the
  1.43 structs: a JSON array (or ``null``) of objects; keys matched as Go
  matches them (exact, else ASCII case-insensitive, the last one wins);
  ``null`` for any field means "empty"; a value of the wrong JSON type, an
  out-of-range integer, a timestamp without a timezone or an invalid image
  digest raises :class:`CorruptRecords` (Go would fail too; 1.43 would then
  silently treat the file as empty, risk R1, so we refuse instead).
- Unknown keys (those that match no field even case-insensitively) are kept
  in ``extra`` and written back after the known keys, so records written by
  a newer Go are not cut down by us. Go ignores such keys.
- Writing produces compact JSON with Go's key names and order, ``omitempty``
  as Go has it (``created`` always; containers' ``image`` and ``layer``
  always; mountpoints' three keys always), UTF-8 with Go's escapes and sorted map keys. It refuses duplicate
  IDs, duplicate names, empty IDs and invalid digests; it parses its own
  output back before the atomic rename (temp file in the same directory,
  fdatasync, chmod 0600, rename, fsync of the directory).
- Timestamps are kept as the RFC3339 text read, so that nanoseconds survive
  a round trip; :func:`format_time` makes new ones the way Go prints them.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import os
import re
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pallet.storage.errors import (
    AmbiguousID,
    ContainerNotFound,
    CorruptRecords,
    DuplicateID,
    DuplicateName,
    ImageNotFound,
    InvalidBigDataKey,
    InvalidID,
    LayerNotFound,
    NotFound,
)

ZERO_TIME = "0001-01-01T00:00:00Z"
_INT64 = (-(2**63), 2**63 - 1)
_TIME = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)([.,]\d+)?(Z|[+-]\d\d:\d\d)\Z")  # Go 1.19 takes "," too
_HEX_ID = re.compile(r"[0-9a-f]{64}\Z")
_DIGEST_SIZES = {"sha256": 64, "sha384": 96, "sha512": 128}


# -- the records ------------------------------------------------------------------------------


@dataclass
class IDMap:
    """One ID mapping range (``container_id``, ``host_id``, ``size``)."""

    container_id: int
    host_id: int
    size: int


@dataclass
class Layer:
    """One layers.json record. ``compression``: 0 none, 1 bzip2, 2 gzip, 3 xz, 4 zstd."""

    id: str
    names: list[str] = field(default_factory=list)
    parent: str = ""
    metadata: str = ""
    mount_label: str = ""
    created: str = ZERO_TIME
    compressed_digest: str = ""
    compressed_size: int = 0
    uncompressed_digest: str = ""
    uncompressed_size: int = 0
    compression: int = 0
    uids: list[int] = field(default_factory=list)
    gids: list[int] = field(default_factory=list)
    flags: dict[str, Any] = field(default_factory=dict)
    uid_map: list[IDMap] = field(default_factory=list)
    gid_map: list[IDMap] = field(default_factory=list)
    big_data_names: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def incomplete(self) -> bool:
        """True when a create or delete of this layer was cut off (section 2.3)."""
        return self.flags.get("incomplete") is True


@dataclass
class Image:
    """One images.json record."""

    id: str
    digest: str = ""
    names: list[str] = field(default_factory=list)
    names_history: list[str] = field(default_factory=list)
    top_layer: str = ""
    mapped_top_layers: list[str] = field(default_factory=list)
    metadata: str = ""
    big_data_names: list[str] = field(default_factory=list)
    big_data_sizes: dict[str, int] = field(default_factory=dict)
    big_data_digests: dict[str, str] = field(default_factory=dict)
    created: str = ZERO_TIME
    flags: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def digests(self) -> list[str]:
        """``digest`` plus every distinct manifest-key big-data digest (Go's in-memory ``Digests``)."""
        found = [self.digest] if self.digest else []
        for key in self.big_data_names:
            value = self.big_data_digests.get(key, "")
            if key.startswith("manifest") and value and value not in found:
                found.append(value)
        return found


@dataclass
class Container:
    """One containers.json record."""

    id: str
    names: list[str] = field(default_factory=list)
    image: str = ""
    layer: str = ""
    metadata: str = ""
    big_data_names: list[str] = field(default_factory=list)
    big_data_sizes: dict[str, int] = field(default_factory=dict)
    big_data_digests: dict[str, str] = field(default_factory=dict)
    created: str = ZERO_TIME
    uid_map: list[IDMap] = field(default_factory=list)
    gid_map: list[IDMap] = field(default_factory=list)
    flags: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Mountpoint:
    """One mountpoints.json record (run root): a layer mounted ``count`` times at ``path``."""

    id: str
    path: str = ""
    count: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


Record = Layer | Image | Container | Mountpoint
R = TypeVar("R", Layer, Image, Container, Mountpoint)


# -- value codecs: (check a decoded JSON value, is it empty) -------------------------------------


def _fail(where: str, why: str) -> CorruptRecords:
    return CorruptRecords(where, why)


def _str(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _fail(where, "want a string")
    return value


def _int(value: Any, where: str, low: int = _INT64[0], high: int = _INT64[1]) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _fail(where, f"want an integer in [{low}, {high}]")
    return value


def _strs(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _fail(where, "want a list of strings")
    return [_str(item, where) for item in value]


def _u32s(value: Any, where: str) -> list[int]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _fail(where, "want a list of integers")
    return [_int(item, where, 0, 2**32 - 1) for item in value]


def _anymap(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _fail(where, "want an object")
    return dict(value)


def _intmap(value: Any, where: str) -> dict[str, int]:
    return {key: _int(item, where) for key, item in _anymap(value, where).items()}


def _strmap(value: Any, where: str) -> dict[str, str]:
    return {key: _str(item, where) for key, item in _anymap(value, where).items()}


def _time(value: Any, where: str) -> str:
    if value is None:
        return ZERO_TIME
    text = _str(value, where)
    if not valid_time(text):
        raise _fail(where, f"not an RFC3339 time with a timezone: {text[:64]!r}")
    return text


def _idmaps(value: Any, where: str) -> list[IDMap]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _fail(where, "want a list of ID maps")
    result = []
    for item in value:
        raw = _anymap(item, where)
        low = {key.lower(): val for key, val in raw.items()}
        result.append(IDMap(*(_int(low.get(name), where) for name in ("container_id", "host_id", "size"))))
    return result


def _encode_idmaps(maps: list[IDMap]) -> list[dict[str, int]]:
    return [{"container_id": m.container_id, "host_id": m.host_id, "size": m.size} for m in maps]


Check = Callable[[Any, str], Any]
# (JSON key, attribute, check, always written)
Spec = tuple[tuple[str, str, Check, bool], ...]

LAYER_SPEC: Spec = (
    ("id", "id", _str, True),
    ("names", "names", _strs, False),
    ("parent", "parent", _str, False),
    ("metadata", "metadata", _str, False),
    ("mountlabel", "mount_label", _str, False),
    ("created", "created", _time, True),
    ("compressed-diff-digest", "compressed_digest", _str, False),
    ("compressed-size", "compressed_size", _int, False),
    ("diff-digest", "uncompressed_digest", _str, False),
    ("diff-size", "uncompressed_size", _int, False),
    ("compression", "compression", _int, False),
    ("uidset", "uids", _u32s, False),
    ("gidset", "gids", _u32s, False),
    ("flags", "flags", _anymap, False),
    ("uidmap", "uid_map", _idmaps, False),
    ("gidmap", "gid_map", _idmaps, False),
    ("big-data-names", "big_data_names", _strs, False),
)
IMAGE_SPEC: Spec = (
    ("id", "id", _str, True),
    ("digest", "digest", _str, False),
    ("names", "names", _strs, False),
    ("names-history", "names_history", _strs, False),
    ("layer", "top_layer", _str, False),
    ("mapped-layers", "mapped_top_layers", _strs, False),
    ("metadata", "metadata", _str, False),
    ("big-data-names", "big_data_names", _strs, False),
    ("big-data-sizes", "big_data_sizes", _intmap, False),
    ("big-data-digests", "big_data_digests", _strmap, False),
    ("created", "created", _time, True),
    ("flags", "flags", _anymap, False),
)
CONTAINER_SPEC: Spec = (
    ("id", "id", _str, True),
    ("names", "names", _strs, False),
    ("image", "image", _str, True),
    ("layer", "layer", _str, True),
    ("metadata", "metadata", _str, False),
    ("big-data-names", "big_data_names", _strs, False),
    ("big-data-sizes", "big_data_sizes", _intmap, False),
    ("big-data-digests", "big_data_digests", _strmap, False),
    ("created", "created", _time, True),
    ("uidmap", "uid_map", _idmaps, False),
    ("gidmap", "gid_map", _idmaps, False),
    ("flags", "flags", _anymap, False),
)
MOUNTPOINT_SPEC: Spec = (
    ("id", "id", _str, True),
    ("path", "path", _str, True),
    ("count", "count", _int, True),
)
_SPECS: dict[type[Any], Spec] = {Layer: LAYER_SPEC, Image: IMAGE_SPEC, Container: CONTAINER_SPEC, Mountpoint: MOUNTPOINT_SPEC}


# -- decode / encode ---------------------------------------------------------------------------


def _decode_one(kind: type[R], raw: Any, where: str) -> R:
    if not isinstance(raw, dict):
        raise _fail(where, "want an object for each record")
    spec = _SPECS[kind]
    exact = {entry[0]: entry for entry in spec}
    folded = {entry[0].lower(): entry for entry in spec}
    values: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in raw.items():
        entry = exact.get(key) or folded.get(key.lower())
        if entry is None:
            extra[key] = value
            continue
        values[entry[1]] = entry[2](value, f"{where}: {entry[0]}")
    if not values.get("id"):
        raise _fail(where, "a record without an id")
    return kind(**values, extra=extra)


def _no_constant(token: str) -> float:
    raise ValueError(f"{token} is not JSON")  # Python takes NaN/Infinity; Go does not


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"number out of range: {text[:40]}")  # Go: overflow error
    return value


def decode_records(kind: type[R], data: bytes, where: str = "records") -> list[R]:
    """The records of one file's bytes (empty bytes or ``null``: none). Raises CorruptRecords."""
    if not data.strip():
        return []
    try:
        parsed = json.loads(data.decode("utf-8"), parse_constant=_no_constant, parse_float=_finite_float)
    except (UnicodeDecodeError, ValueError) as exc:
        raise _fail(where, f"not JSON: {exc}") from exc
    if parsed is None:
        return []
    if not isinstance(parsed, list):
        raise _fail(where, "want a JSON array")
    records = [_decode_one(kind, raw, f"{where}[{index}]") for index, raw in enumerate(parsed)]
    if kind is Image:
        for image in records:
            _check_image_digests(image, where)  # type: ignore[arg-type]
    return records


def _encode_one(record: Record) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, attr, check, always in _SPECS[type(record)]:
        value = getattr(record, attr)
        if not always and not value:
            continue
        if check is _idmaps:
            value = _encode_idmaps(value)
        elif isinstance(value, dict):
            value = _sorted_maps(value)  # Go marshals map keys sorted
        out[key] = value
    known = {entry[0].lower() for entry in _SPECS[type(record)]}
    out.update((key, value) for key, value in record.extra.items() if key.lower() not in known)
    return out


def _sorted_maps(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _sorted_maps(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted_maps(item) for item in value]
    return value


_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def go_json(value: Any) -> bytes:
    """Compact JSON as Go's encoding/json prints it: raw UTF-8, ``<>&`` and U+2028/9 escaped.

    Text that is not valid Unicode (lone surrogates) falls back to ``\\u`` escapes.
    """
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    for char, escape in _GO_ESCAPES.items():
        text = text.replace(char, escape)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode("ascii")


def encode_records(records: Sequence[Record]) -> bytes:
    """Compact JSON for ``records`` as the Go library writes them. Raises on what Go could not take back."""
    check_records(records)
    return go_json([_encode_one(r) for r in records])


def check_records(records: Sequence[Record]) -> None:
    """Refuse empty or duplicate IDs, names held twice (by two records or one), bad times and invalid digests."""
    ids: set[str] = set()
    names: dict[str, str] = {}
    for record in records:
        if not record.id or any(c.isspace() for c in record.id):
            raise InvalidID(record.id)
        if record.id in ids:
            raise DuplicateID(record.id)
        ids.add(record.id)
        for name in getattr(record, "names", ()):
            if name in names:  # also within one record: Go's load drops such a name and makes readers fail
                raise DuplicateName(name, names[name])
            names[name] = record.id
        if not valid_time(getattr(record, "created", ZERO_TIME)):
            raise CorruptRecords(record.id, "created is not an RFC3339 time with a timezone")
        for value in _digest_fields(record):
            if value and not valid_digest(value):
                raise CorruptRecords(record.id, f"invalid digest {value[:80]!r}")


def _digest_fields(record: Record) -> list[str]:
    if isinstance(record, Layer):
        return [record.compressed_digest, record.uncompressed_digest]
    if isinstance(record, Image):
        return [record.digest, *record.big_data_digests.values()]
    if isinstance(record, Container):
        return list(record.big_data_digests.values())
    return []


def _check_image_digests(image: Image, where: str) -> None:
    """Go's recomputeDigests: ``digest`` and manifest-keyed big-data digests must validate."""
    manifest_digests = [v for k, v in image.big_data_digests.items() if k.startswith("manifest")]
    for value in ([image.digest] if image.digest else []) + manifest_digests:
        if not valid_digest(value):
            raise _fail(where, f"image {image.id}: invalid digest {value[:80]!r}")


# -- files -------------------------------------------------------------------------------------


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
        if [_encode_one(r) for r in back] != [_encode_one(r) for r in records]:
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


# -- IDs, digests, times -----------------------------------------------------------------------


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


# -- lookup ------------------------------------------------------------------------------------


def lookup(records: Iterable[R], wanted: str, not_found: type[NotFound] = NotFound, by_layer: bool = False) -> R:
    """The record ``wanted`` names, as c/storage resolves it: ID, then a name, (containers: then the
    layer ID), then a unique ID prefix. Raises ``not_found`` or :class:`AmbiguousID`."""
    items = list(records)
    for record in items:
        if record.id == wanted:
            return record
    if wanted:
        for record in items:
            if wanted in getattr(record, "names", ()):
                return record
        if by_layer:
            for record in items:
                if getattr(record, "layer", None) == wanted:
                    return record
    matches = [r for r in items if r.id.startswith(wanted)] if wanted and " " not in wanted else []
    if len(matches) > 1:
        raise AmbiguousID(wanted, len(matches))
    if not matches:
        raise not_found(wanted)
    return matches[0]


def find_layer(layers: Iterable[Layer], wanted: str) -> Layer:
    """A layer by ID, name or unique ID prefix (LayerNotFound, AmbiguousID)."""
    return lookup(layers, wanted, LayerNotFound)


def find_image(images: Iterable[Image], wanted: str) -> Image:
    """An image by ID, name or unique ID prefix (ImageNotFound, AmbiguousID)."""
    return lookup(images, wanted, ImageNotFound)


def find_container(containers: Iterable[Container], wanted: str) -> Container:
    """A container by ID, name, layer ID or unique ID prefix (ContainerNotFound, AmbiguousID)."""
    return lookup(containers, wanted, ContainerNotFound, by_layer=True)


def images_by_digest(images: Iterable[Image], digest: str) -> list[Image]:
    """The images whose digests (``digest`` plus manifest big-data digests) include ``digest``."""
    return [image for image in images if digest in image.digests]
