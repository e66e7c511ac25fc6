"""pallet.oci: OCI image, distribution and runtime spec types, references,
digests, platforms and the OCI image layout.

The public names are re-exported here lazily, so that ``import pallet.oci``
stays cheap: pydantic is imported only when a spec type is first used.
"""

from __future__ import annotations

from pallet.oci._lazy import lazy_exports

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "AmbiguousImage": "errors",
    "BlobInUse": "errors",
    "BlobUnknown": "errors",
    "DigestMismatch": "errors",
    "InvalidDigest": "errors",
    "InvalidLayout": "errors",
    "InvalidPlatform": "errors",
    "InvalidPolicy": "errors",
    "InvalidRefName": "errors",
    "InvalidReference": "errors",
    "InvalidRuntimeConfig": "errors",
    "LayoutError": "errors",
    "LocalImageNotFound": "errors",
    "MalformedManifest": "errors",
    "ManifestError": "errors",
    "NoMatchingPlatform": "errors",
    "OciError": "errors",
    "RefUnknown": "errors",
    "RegistriesConfError": "errors",
    "Schema1Unsupported": "errors",
    "ShortNameError": "errors",
    "SizeMismatch": "errors",
    "UnsafeArchive": "errors",
    "UnsupportedMediaType": "errors",
    "VerificationError": "errors",
    "Digest": "digest",
    "Digester": "digest",
    "VerifyingReader": "digest",
    "verify_bytes": "digest",
    "Reference": "reference",
    "is_short_name": "reference",
    "parse_normalized": "reference",
    "with_default_tag": "reference",
    "RegistriesConf": "shortnames",
    "Resolution": "shortnames",
    "ShortNameMode": "shortnames",
    "load_registries_conf": "shortnames",
    "resolve_short_name": "shortnames",
    "NormalizedPlatform": "platform",
    "choose_manifest": "platform",
    "host_platform": "platform",
    "normalize_platform": "platform",
    "parse_platform": "platform",
    "ParsedConfig": "manifest",
    "ParsedManifest": "manifest",
    "manifest_digest": "manifest",
    "parse_config": "manifest",
    "parse_manifest": "manifest",
    "Descriptor": "spec",
    "DockerImageConfig": "spec",
    "DockerManifest": "spec",
    "DockerManifestList": "spec",
    "ImageConfig": "spec",
    "ImageIndex": "spec",
    "ImageManifest": "spec",
    "Platform": "spec",
    "RuntimeConfig": "spec",
    "parse_runtime_config": "spec",
    "GcReport": "layout",
    "OciLayout": "layout",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
