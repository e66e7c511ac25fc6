"""Every kind of corrupt input raises its own documented error (errors.py), and
nothing partial is left in a layout. One table, across the lib's modules."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest

from pallet.oci import errors
from pallet.oci.layout import OciLayout
from pallet.oci.manifest import parse_manifest
from pallet.oci.reference import parse_normalized

BLOB = b"layer bytes " * 4096
DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
SCHEMA1 = json.dumps({"schemaVersion": 1, "name": "library/busybox", "tag": "latest", "fsLayers": [], "history": []}).encode()


def put_truncated(layout: OciLayout) -> None:
    layout.put_blob(io.BytesIO(BLOB[:-1]), DIGEST, len(BLOB))


def put_wrong_digest(layout: OciLayout) -> None:
    layout.put_blob(io.BytesIO(BLOB.replace(b"layer", b"LAYER", 1)), DIGEST, len(BLOB))


def put_oversized(layout: OciLayout) -> None:
    layout.put_blob(io.BytesIO(BLOB + b"more"), DIGEST, len(BLOB))


@pytest.mark.parametrize(
    ("write", "error"),
    [(put_truncated, errors.SizeMismatch), (put_wrong_digest, errors.DigestMismatch), (put_oversized, errors.SizeMismatch)],
)
def test_bad_blobs_leave_nothing_in_the_layout(tmp_path: Path, write, error: type[Exception]) -> None:
    layout = OciLayout.create(tmp_path / "layout")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    with pytest.raises(error):
        write(layout)
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert after == before
    assert not layout.has_blob(DIGEST)
    assert layout.list_refs() == []


@pytest.mark.parametrize(
    ("raw", "media_type", "error", "message"),
    [
        (b'{"schemaVersion": 2, "config": ', OCI_MANIFEST, errors.MalformedManifest, "JSON"),
        (b"[1, 2]", OCI_MANIFEST, errors.MalformedManifest, "object"),
        (SCHEMA1, None, errors.Schema1Unsupported, "schema1"),
        (SCHEMA1, "application/vnd.docker.distribution.manifest.v1+prettyjws", errors.Schema1Unsupported, "schema1"),
        (b'{"schemaVersion": 2}', "application/vnd.example.unknown+json", errors.UnsupportedMediaType, "unknown"),
        (json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {"mediaType": "x", "digest": "sha256:zz", "size": 1},
                     "layers": []}).encode(), None, errors.MalformedManifest, "digest"),
    ],
)
def test_bad_manifests_raise_their_error(raw: bytes, media_type: str | None, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=f"(?i){message}"):
        parse_manifest(raw, media_type)


@pytest.mark.parametrize("text", ["", "upper/CASE", "name:", "name@sha256:abc", "-leading/dash", "a//b", "host:port/x"])
def test_bad_references_raise_invalid_reference(text: str) -> None:
    with pytest.raises(errors.InvalidReference) as caught:
        parse_normalized(text)
    assert caught.value.part in {"name", "domain", "tag", "digest", "path component", "length", "format"}
