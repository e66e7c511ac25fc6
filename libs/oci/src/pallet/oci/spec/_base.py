"""The base of every spec model, and the field types shared by the spec modules.

Contract of every model derived from :class:`SpecModel`:

- frozen: attributes cannot be reassigned (sequences are tuples; mappings
  are plain dicts, which callers must treat as read-only);
- unknown fields are kept (``extra="allow"``) and written back by a dump;
- Python attribute names are snake_case, JSON names are the spec's (via
  aliases); both are accepted when validating;
- :meth:`SpecModel.to_json_bytes` / :meth:`SpecModel.to_json_dict` serialise
  with the JSON names, leaving out fields that are ``None``.

A re-serialisation is not the original document: digests are always computed
over the raw bytes a model was parsed from (see ``pallet.oci.manifest``).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, PlainValidator, ValidationError

from pallet.oci.digest import Digest


class SpecModel(BaseModel):
    """A frozen spec model that keeps unknown fields."""

    model_config = ConfigDict(
        frozen=True,
        extra="allow",
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        defer_build=True,
    )

    def to_json_dict(self) -> dict[str, Any]:
        """The JSON object of this model (spec field names, ``None`` fields left out)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def to_json_bytes(self) -> bytes:
        """Compact JSON of this model (spec field names, ``None`` fields left out)."""
        return self.model_dump_json(by_alias=True, exclude_none=True).encode()

    @property
    def extra_fields(self) -> dict[str, Any]:
        """The fields of the document this model does not know, by JSON name."""
        return dict(self.__pydantic_extra__ or {})


def _to_digest(value: object) -> Digest:
    if isinstance(value, Digest):
        return value
    if not isinstance(value, str):
        raise ValueError(f"a digest must be a string, not {type(value).__name__}")
    return Digest.parse(value)


#: A digest field: validated with ``Digest.parse``, serialised as ``algorithm:hex``.
DigestField = Annotated[
    Digest,
    PlainValidator(_to_digest, json_schema_input_type=str),
    PlainSerializer(str, return_type=str),
]

#: A byte count or other count that cannot be negative; JSON strings and booleans are refused.
NonNegativeInt = Annotated[int, Field(ge=0, strict=True)]

#: String-to-string annotations (OCI "Annotations" / runtime "annotations").
Annotations = dict[str, str]


def describe_validation_error(error: ValidationError, subject: str) -> str:
    """One message naming every invalid field, e.g.
    ``"manifest: layers[0].digest: invalid digest 'sha256:zz': ..."``.

    Paths use the JSON field names; list indexes are written ``[i]``.
    """
    parts = [f"{_location(item['loc'])}: {_reason(item)}" for item in error.errors(include_url=False)]
    return f"{subject}: " + "; ".join(parts)


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part == "[key]":
            text += " (key)"
        else:
            text += f".{part}" if text else str(part)
    return text or "(document)"


def _reason(item: Any) -> str:
    ctx = item.get("ctx") or {}
    cause = ctx.get("error")
    if item.get("type") == "value_error" and isinstance(cause, Exception):
        return str(cause)
    message = str(item.get("msg", "invalid"))
    message = message[:1].lower() + message[1:]
    if item.get("type") in {"missing", "extra_forbidden"}:
        return message
    return f"{message} (got {_short(item.get('input'))})"


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
