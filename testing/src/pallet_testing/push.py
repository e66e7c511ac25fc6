"""Push test images into a registry with plain HTTP calls (no pallet.oci).

Used by fixtures until pallet.oci's registry client exists, and afterwards as
an independent writer to check that client against.
"""

from __future__ import annotations

from urllib.parse import urljoin

from pallet_testing.images import Blob, TestImage, TestIndex
from pallet_testing.registry import RegistryServer


class PushError(RuntimeError):
    pass


def push_blob(registry: RegistryServer, repository: str, blob: Blob) -> None:
    status, _, _ = registry.request("HEAD", f"/v2/{repository}/blobs/{blob.digest}")
    if status == 200:
        return
    status, headers, body = registry.request("POST", f"/v2/{repository}/blobs/uploads/", b"")
    if status != 202:
        raise PushError(f"start upload of {blob.digest} to {repository}: HTTP {status}: {body[:200]!r}")
    location = urljoin(registry.url + "/", headers["location"])
    separator = "&" if "?" in location else "?"
    status, _, body = registry.request(
        "PUT", f"{location}{separator}digest={blob.digest}", blob.data,
        {"Content-Type": "application/octet-stream", "Content-Length": str(blob.size)},
    )
    if status != 201:
        raise PushError(f"upload {blob.digest} to {repository}: HTTP {status}: {body[:200]!r}")


def push_manifest(registry: RegistryServer, repository: str, manifest: Blob, reference: str) -> None:
    status, _, body = registry.request(
        "PUT", f"/v2/{repository}/manifests/{reference}", manifest.data, {"Content-Type": manifest.media_type}
    )
    if status != 201:
        raise PushError(f"put manifest {reference} in {repository}: HTTP {status}: {body[:300]!r}")


def push_image(registry: RegistryServer, repository: str, image: TestImage | TestIndex, tag: str | None = "latest") -> str:
    """Push blobs, then child manifests, then the manifest; return ``host/repo@digest``."""
    for blob in image.blobs():
        push_blob(registry, repository, blob)
    if isinstance(image, TestIndex):
        for child in image.images:
            push_manifest(registry, repository, child.manifest, child.digest)
    push_manifest(registry, repository, image.manifest, tag or image.digest)
    return f"{registry.host}/{repository}@{image.digest}"
