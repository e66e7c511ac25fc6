"""Shared pieces of the runtime-spec models: the camelCase base and bounded integers."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import ConfigDict, Field
from pydantic.alias_generators import to_camel

from pallet.oci.spec._base import SpecModel


class RuntimeModel(SpecModel):
    """A runtime-spec model: JSON names are the camelCase of the attribute names
    unless a field gives its own alias (``containerID``, ``kernelTCP``...)."""

    model_config = ConfigDict(alias_generator=to_camel)


Uint16 = Annotated[int, Field(ge=0, le=2**16 - 1, strict=True)]
Uint32 = Annotated[int, Field(ge=0, le=2**32 - 1, strict=True)]
Uint64 = Annotated[int, Field(ge=0, le=2**64 - 1, strict=True)]
Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1, strict=True)]

_ABSOLUTE_WINDOWS_PATH = re.compile(r"^[A-Za-z]:[\\/]")


def require_absolute(value: str, what: str) -> str:
    """``value`` if it is an absolute POSIX (or Windows drive) path, else ValueError."""
    if not (value.startswith("/") or _ABSOLUTE_WINDOWS_PATH.match(value)):
        raise ValueError(f"{what} must be an absolute path, not {value!r}")
    return value
