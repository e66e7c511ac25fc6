"""pallet.oci: OCI image, distribution and runtime spec types, references,
digests, platforms and the OCI image layout.

The public names are re-exported here lazily, so that ``import pallet.oci``
stays cheap: pydantic is imported only when a spec type is first used.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "BlobUnknown": "errors",
    "Digest": "digest",
    "DigestMismatch": "errors",
    "Digester": "digest",
    "InvalidDigest": "errors",
    "InvalidLayout": "errors",
    "InvalidPlatform": "errors",
    "InvalidReference": "errors",
    "LayoutError": "errors",
    "MalformedManifest": "errors",
    "ManifestError": "errors",
    "NoMatchingPlatform": "errors",
    "OciError": "errors",
    "RefUnknown": "errors",
    "RegistriesConfError": "errors",
    "Schema1Unsupported": "errors",
    "ShortNameError": "errors",
    "SizeMismatch": "errors",
    "UnsupportedMediaType": "errors",
    "VerificationError": "errors",
    "VerifyingReader": "digest",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pallet.oci' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"pallet.oci.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
