"""The public surface of pallet.oci: pinned, resolvable, and cheap to import."""

from __future__ import annotations

import subprocess
import sys

import pallet.oci
from pallet.oci import errors

PUBLIC = {
    # errors
    "AmbiguousImage", "BlobInUse", "BlobUnknown", "DigestMismatch", "InvalidDigest", "InvalidLayout",
    "InvalidPlatform", "InvalidPolicy", "InvalidRefName", "InvalidReference", "InvalidRuntimeConfig", "LayoutError",
    "LocalImageNotFound", "MalformedManifest", "ManifestError", "NoMatchingPlatform", "OciError", "RefUnknown",
    "RegistriesConfError", "Schema1Unsupported", "ShortNameError", "SizeMismatch", "UnsafeArchive",
    "UnsupportedMediaType", "VerificationError",
    # digests, references, short names, platforms
    "Digest", "Digester", "VerifyingReader", "verify_bytes",
    "Reference", "is_short_name", "parse_normalized", "with_default_tag",
    "RegistriesConf", "Resolution", "ShortNameMode", "load_registries_conf", "resolve_short_name",
    "NormalizedPlatform", "choose_manifest", "host_platform", "normalize_platform", "parse_platform",
    # manifests, spec types, layout
    "ParsedConfig", "ParsedManifest", "manifest_digest", "parse_config", "parse_manifest",
    "Descriptor", "DockerImageConfig", "DockerManifest", "DockerManifestList", "ImageConfig", "ImageIndex",
    "ImageManifest", "Platform", "RuntimeConfig", "parse_runtime_config",
    "GcReport", "OciLayout",
}


def test_all_is_pinned_and_sorted() -> None:
    assert set(pallet.oci.__all__) == PUBLIC
    assert pallet.oci.__all__ == sorted(pallet.oci.__all__)


def test_every_public_name_resolves_to_its_definition() -> None:
    for name in pallet.oci.__all__:
        value = getattr(pallet.oci, name)
        assert getattr(value, "__name__", name) == name


def test_every_error_descends_from_oci_error() -> None:
    classes = [v for v in vars(errors).values() if isinstance(v, type) and issubclass(v, Exception)]
    assert len(classes) > 15
    assert all(issubclass(c, errors.OciError) for c in classes)


def test_import_is_cheap_until_a_spec_type_is_used() -> None:
    probe = (
        "import sys, pallet.oci, pallet.oci.mediatypes, pallet.oci.platform, pallet.oci.reference;"
        "print('pydantic' in sys.modules);"
        "pallet.oci.Descriptor; print('pydantic' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.stdout.split() == ["False", "True"], result.stderr


def test_messages_quote_hostile_input_cut_short() -> None:
    from pallet.oci.reference import parse_normalized

    try:
        parse_normalized("a" * 100_000 + "/B")
    except errors.InvalidReference as exc:
        assert len(str(exc)) < 400
        assert exc.reference == "a" * 100_000 + "/B"  # the whole input stays on the exception
    else:
        raise AssertionError("a 100 kB name was accepted")
