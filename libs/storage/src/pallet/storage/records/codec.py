"""Decoding and encoding records as Go's encoding/json does for the 1.43 structs (see the package doc)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from pallet.storage.errors import CorruptRecords, DuplicateID, DuplicateName, InvalidID
from pallet.storage.records.ids import ZERO_TIME, valid_digest, valid_time
from pallet.storage.records.model import IDMap, Container, Image, Layer, Mountpoint, R, Record

_INT64 = (-(2**63), 2**63 - 1)


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


def encode_one(record: Record) -> dict[str, Any]:
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
    return go_json([encode_one(r) for r in records])


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
