"""Shared helpers of the transport tests, as fixtures (tests run with --import-mode=importlib).

- ``put_image(dest, image)``: write a pallet_testing image through the destination protocol and commit;
- ``check_image(src, image)``: read it back through the source protocol, bytes and digests equal;
- ``run_skopeo(*args)``: the real skopeo with ``--insecure-policy``, failing the test on a non-zero exit.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
from collections.abc import Callable
from typing import Any

import pytest

from pallet.oci.digest import Digest
from pallet.oci.transports.base import BlobInfo, ImageDestination, ImageSource
from pallet_testing.images import TestImage, TestIndex

PutImage = Callable[[ImageDestination, Any], None]
CheckImage = Callable[[ImageSource, Any], None]


def _children(image: TestImage | TestIndex) -> tuple[TestImage, ...]:
    return image.images if isinstance(image, TestIndex) else ()


def put_image(dest: ImageDestination, image: TestImage | TestIndex) -> None:
    """Blobs, child manifests, the top manifest, commit: the order the protocol prescribes."""
    images = _children(image) or (image,)
    for member in images:
        assert isinstance(member, TestImage)
        for blob in member.blobs():
            info = BlobInfo(Digest.parse(blob.digest), blob.size, blob.media_type)
            stored = dest.put_blob(io.BytesIO(blob.data), info, is_config=blob is member.config)
            assert (str(stored.digest), stored.size) == (blob.digest, blob.size)
    for child in _children(image):
        dest.put_manifest(child.manifest.data, child.manifest.media_type, Digest.parse(child.digest))
    dest.put_manifest(image.manifest.data, image.manifest.media_type)
    dest.commit()


def read_blob(src: ImageSource, digest: str, media_type: str = "") -> bytes:
    stream, size = src.get_blob(BlobInfo(Digest.parse(digest), -1, media_type))
    with stream:
        data = stream.read()
    assert size in (-1, len(data))
    return data


def check_image(src: ImageSource, image: TestImage | TestIndex) -> None:
    """The source gives back the image's exact manifest, child manifests, config and layers."""
    raw, media_type = src.get_manifest()
    assert raw == image.manifest.data
    assert media_type == image.manifest.media_type
    images = _children(image) or (image,)
    for member in images:
        assert isinstance(member, TestImage)
        if isinstance(image, TestIndex):
            child_raw, child_type = src.get_manifest(Digest.parse(member.digest))
            assert (child_raw, child_type) == (member.manifest.data, member.manifest.media_type)
        for blob in member.blobs():
            data = read_blob(src, blob.digest, blob.media_type)
            assert "sha256:" + hashlib.sha256(data).hexdigest() == blob.digest


@pytest.fixture
def put() -> PutImage:
    return put_image


@pytest.fixture
def check() -> CheckImage:
    return check_image


@pytest.fixture
def run_skopeo(skopeo: str) -> Callable[..., str]:
    def run(*args: str) -> str:
        done = subprocess.run(
            [skopeo, "--insecure-policy", *args], capture_output=True, text=True, timeout=300, check=False
        )
        assert done.returncode == 0, f"skopeo {' '.join(args)} failed: {done.stderr}"
        return done.stdout

    return run
