"""``RegistryClient``: the OCI distribution-spec v1.1 API of one registry host (sync).

Operations take a repository path within the registry (``library/busybox``)
and a tag or digest. Contracts:

- Manifests are bytes: ``get_manifest`` returns them with their media type
  (Content-Type, normalised) and digest. The client VERIFIES manifests: by
  digest, the bytes must hash to it; by tag, the digest is computed from the
  bytes and must equal ``Docker-Content-Digest`` when the registry sends one
  (``DigestMismatch`` otherwise). Bodies over 4 MiB are refused.
- Blobs stream (``get_blob``), verified at their end unless asked not to;
  uploads stream with bounded memory (see ``pallet.oci.registry.blobs``).
- Listing (tags, catalog) follows the ``Link`` header page by page.
- Errors are pallet.oci errors whose messages start with what was being done
  (``reading manifest latest in 127.0.0.1:5000/foo: manifest unknown``).

One client holds one ``httpx.Client``; close it (or use it as a context
manager). It is safe to use from several threads at once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO, Self

import httpx

from pallet.oci import mediatypes
from pallet.oci.digest import Digest, verify_bytes
from pallet.oci.errors import (
    DigestMismatch,
    ImageNotFound,
    InvalidDigest,
    ManifestTypeRejected,
    ManifestUnknown,
    NameUnknown,
    RegistryError,
    RemoteBlobUnknown,
)
from pallet.oci.reference import Reference
from pallet.oci.registry.blobs import BlobReader, PushedBlob, mount_blob, push_blob
from pallet.oci.registry.endpoints import Endpoint
from pallet.oci.registry.options import MAX_MANIFEST_SIZE, RegistryOptions
from pallet.oci.registry.session import Answer, RegistrySession

if TYPE_CHECKING:
    from pallet.oci.spec.image import Descriptor

#: The Accept header of manifest requests: OCI and Docker schema2, indexes first; no schema1.
MANIFEST_ACCEPT = ", ".join(mediatypes.MANIFEST_ACCEPT)
_LINK_NEXT = re.compile(r'<([^>]*)>\s*;[^,]*\brel="?next"?', re.IGNORECASE)
_REJECTING_CODES = {"MANIFEST_INVALID", "TAG_INVALID"}
_UNINFORMATIVE_TYPES = {"", "application/json", "text/plain", "application/octet-stream"}


@dataclass(frozen=True)
class FetchedManifest:
    """A manifest as the registry holds it: raw bytes, media type, verified digest."""

    data: bytes
    media_type: str
    digest: Digest


@dataclass(frozen=True)
class ManifestInfo:
    """What a HEAD says of a manifest; ``digest`` None when the registry did not send it."""

    digest: Digest | None
    media_type: str
    size: int


class RegistryClient:
    """The distribution API of one registry host; see the module docstring."""

    def __init__(
        self,
        host: str,
        options: RegistryOptions | None = None,
        *,
        insecure: bool = False,
        credentials_name: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """``host`` is ``host[:port]`` as references write it (``docker.io`` included).

        ``insecure`` allows what registries.conf's ``insecure`` allows;
        ``credentials_name`` is the ``host/repo`` whose auth-file entry to use
        (default: the host's); ``transport`` replaces httpx's (tests).
        """
        self.session = RegistrySession(
            host, options, credentials_name=credentials_name, insecure=insecure, transport=transport
        )
        self.host = host

    @classmethod
    def for_endpoint(cls, endpoint: Endpoint, options: RegistryOptions | None = None) -> RegistryClient:
        """A client for an endpoint of ``pull_endpoints``/``push_endpoint`` (registries.conf applied)."""
        return cls(endpoint.host, options, insecure=endpoint.insecure, credentials_name=endpoint.reference.name)

    @classmethod
    def for_reference(cls, ref: Reference, options: RegistryOptions | None = None) -> RegistryClient:
        """A client for ``ref``'s own registry, with the credentials stored for ``ref``'s repository.

        No location rewriting or mirrors: those come from ``push_endpoint``,
        ``pull_endpoints`` and ``open_pull_source``.
        """
        if ref.domain is None:
            raise ValueError(f"{ref} names no registry: normalise it first (parse_normalized)")
        return cls(ref.domain, options, credentials_name=ref.name)

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RegistryClient({self.host!r})"

    # --- the registry ---------------------------------------------------------------------

    def ping(self) -> None:
        """Check that the registry answers the v2 API and accepts our credentials (Unauthorized if not)."""
        self.session.call("GET", "/v2/", action=f"pinging container registry {self.host}")

    def catalog(self, *, page_size: int | None = None) -> list[str]:
        """Every repository name of ``/v2/_catalog``, page after page."""
        params = {"n": str(page_size)} if page_size else {}
        return list(self._pages("/v2/_catalog", params, "repositories", f"listing repositories of {self.host}"))

    # --- manifests ------------------------------------------------------------------------

    def get_manifest(self, repository: str, reference: str | Digest) -> FetchedManifest:
        """The manifest (or index) ``reference`` names, verified (see the module docstring)."""
        tag, digest = self._split(repository, reference)
        action = f"reading manifest {reference} in {self.host}/{repository}"
        answer = self.session.call(
            "GET", f"/v2/{repository}/manifests/{reference}", action=action, limit=MAX_MANIFEST_SIZE,
            headers={"Accept": MANIFEST_ACCEPT}, not_found=ManifestUnknown,
        )
        if digest is not None:
            verify_bytes(answer.body, digest)
            found = digest
        else:
            found = _digest_of(answer.body, answer.headers.get("docker-content-digest"))
        return FetchedManifest(answer.body, _media_type(answer), found)

    def head_manifest(self, repository: str, reference: str | Digest) -> ManifestInfo:
        """The digest, media type and size a HEAD request reports (nothing is verified)."""
        tag, digest = self._split(repository, reference)
        action = f"checking manifest {reference} in {self.host}/{repository}"
        answer = self.session.call(
            "HEAD", f"/v2/{repository}/manifests/{reference}", action=action,
            headers={"Accept": MANIFEST_ACCEPT}, not_found=ManifestUnknown,
        )
        stated = answer.headers.get("docker-content-digest", "")
        if digest is None and stated:
            try:
                digest = Digest.parse(stated)
            except InvalidDigest:
                digest = None
        length = answer.headers.get("content-length", "")
        return ManifestInfo(digest, _media_type(answer), int(length) if length.isdigit() else -1)

    def put_manifest(self, repository: str, reference: str | Digest, data: bytes, media_type: str) -> Digest:
        """Store a manifest under a tag or its digest; return its digest.

        By digest, ``data`` must hash to it (checked before sending).
        ``ManifestTypeRejected`` when the registry refuses the media type or
        the manifest as invalid (the copy engine may convert and try another).
        """
        tag, digest = self._split(repository, reference)
        if digest is not None:
            verify_bytes(data, digest)
        computed = digest or Digest.from_bytes(data)
        action = f"writing manifest {reference} to {self.host}/{repository}"
        try:
            answer = self.session.call(
                "PUT", f"/v2/{repository}/manifests/{reference}", action=action, expected=(201,),
                content=bytes(data), headers={"Content-Type": media_type},
            )
        except RegistryError as error:
            if error.status == 415 or _REJECTING_CODES & set(error.codes):
                raise ManifestTypeRejected(media_type, (), str(error)) from error
            raise
        stated = answer.headers.get("docker-content-digest")
        if stated and stated != str(computed) and stated.startswith(f"{computed.algorithm}:"):
            raise DigestMismatch(str(computed), stated)
        return computed

    def delete_manifest(self, repository: str, reference: str | Digest) -> Digest:
        """Delete the manifest ``reference`` names (a tag is resolved to its digest first, as skopeo).

        Every tag pointing at that manifest goes with it. Returns the digest deleted.
        """
        tag, digest = self._split(repository, reference)
        if digest is None:
            digest = self.head_manifest(repository, reference).digest
            if digest is None:
                digest = self.get_manifest(repository, reference).digest
        self.session.call(
            "DELETE", f"/v2/{repository}/manifests/{digest}", expected=(202, 200),
            action=f"deleting manifest {reference} in {self.host}/{repository}", not_found=ManifestUnknown,
        )
        return digest

    # --- blobs ----------------------------------------------------------------------------

    def head_blob(self, repository: str, digest: Digest) -> int | None:
        """The blob's size if ``repository`` holds it (-1 when unknown), else None."""
        self._split(repository, digest)
        try:
            answer = self.session.call(
                "HEAD", f"/v2/{repository}/blobs/{digest}", not_found=RemoteBlobUnknown,
                action=f"checking blob {digest} in {self.host}/{repository}",
            )
        except (RemoteBlobUnknown, NameUnknown):
            return None
        length = answer.headers.get("content-length", "")
        return int(length) if length.isdigit() else -1

    def get_blob(
        self,
        repository: str,
        digest: Digest,
        *,
        verify: bool = True,
        expected_size: int | None = None,
        offset: int = 0,
    ) -> BlobReader:
        """A stream of the blob from ``offset`` (resumed after broken connections); the caller closes it.

        Verified at its end when ``verify`` and ``offset`` is 0 (see blobs.BlobReader).
        """
        self._split(repository, digest)
        action = f"reading blob {digest} in {self.host}/{repository}"
        return BlobReader(
            self.session, f"/v2/{repository}/blobs/{digest}", action,
            digest=digest, verify=verify, expected_size=expected_size, offset=offset,
        )

    def push_blob(
        self,
        repository: str,
        source: BinaryIO,
        *,
        digest: Digest | None = None,
        size: int | None = None,
        chunk_size: int | None = None,
    ) -> PushedBlob:
        """Upload a blob from ``source`` (monolithic, or chunked when ``chunk_size`` is set)."""
        self._split(repository, digest)
        return push_blob(self.session, repository, source, digest=digest, size=size, chunk_size=chunk_size)

    def mount_blob(self, repository: str, digest: Digest, from_repository: str) -> bool:
        """Cross-repository mount within this registry; False when the registry would not mount it."""
        self._split(repository, digest)
        self._split(from_repository, None)
        return mount_blob(self.session, repository, digest, from_repository)

    # --- tags and referrers ---------------------------------------------------------------

    def list_tags(self, repository: str, *, page_size: int | None = None, last: str | None = None) -> list[str]:
        """Every tag of ``repository`` (after ``last``, if given), following the pages."""
        return list(self.iter_tags(repository, page_size=page_size, last=last))

    def iter_tags(self, repository: str, *, page_size: int | None = None, last: str | None = None) -> Iterator[str]:
        """The tags of ``repository``, page by page as they are fetched."""
        self._split(repository, None)
        params = {"n": str(page_size)} if page_size else {}
        if last:
            params["last"] = last
        action = f"listing tags of {self.host}/{repository}"
        return self._pages(f"/v2/{repository}/tags/list", params, "tags", action)

    def referrers(self, repository: str, digest: Digest, *, artifact_type: str | None = None) -> list[Descriptor]:
        """The manifests whose ``subject`` is ``digest``: the referrers API, else the tag schema.

        A registry without the API (404) is asked for the index tagged
        ``<algorithm>-<hex>``; none there means no referrers.
        """
        from pallet.oci.manifest import parse_index

        self._split(repository, digest)
        action = f"listing referrers of {digest} in {self.host}/{repository}"
        params = {"artifactType": artifact_type} if artifact_type else {}
        try:
            answer = self.session.call(
                "GET", f"/v2/{repository}/referrers/{digest}", action=action, params=params,
                headers={"Accept": mediatypes.OCI_INDEX},
            )
            data, filtered = answer.body, "artifacttype" in answer.headers.get("oci-filters-applied", "").lower()
        except RegistryError as error:
            if error.status != 404:
                raise
            try:
                data = self.get_manifest(repository, f"{digest.algorithm}-{digest.encoded}").data
            except ImageNotFound:
                return []
            filtered = False
        descriptors = list(parse_index(data, mediatypes.OCI_INDEX).model.manifests)  # type: ignore[union-attr]
        if artifact_type and not filtered:
            descriptors = [d for d in descriptors if d.artifact_type == artifact_type]
        return descriptors

    # --- helpers --------------------------------------------------------------------------

    def _split(self, repository: str, reference: str | Digest | None) -> tuple[str | None, Digest | None]:
        """Validate the repository and reference (nothing odd reaches a URL); (tag, digest)."""
        tag: str | None = None
        digest: Digest | None = None
        if isinstance(reference, Digest):
            digest = reference
        elif isinstance(reference, str) and ":" in reference:
            digest = Digest.parse(reference)
        elif reference is not None:
            tag = reference
        Reference(self.host, repository, tag)  # raises InvalidReference for a bad path or tag
        return tag, digest

    def _pages(self, path: str, params: dict[str, str], key: str, action: str) -> Iterator[str]:
        target: httpx.URL | None = self.session.base_url().join(path).copy_merge_params(params)
        while target is not None:
            answer = self.session.call("GET", target, action=action, not_found=NameUnknown)
            yield from _string_list(answer.body, key, action)
            target = _next_page(answer)


def _string_list(body: bytes, key: str, action: str) -> list[str]:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise RegistryError(f"{action}: the answer is not JSON") from None
    values = document.get(key) if isinstance(document, dict) else None
    if values is None:
        return []  # distribution answers "tags": null for a repository without tags
    if not isinstance(values, list) or not all(isinstance(value, str) for value in values):
        raise RegistryError(f"{action}: {key!r} is not a list of strings")
    return values


def _next_page(answer: Answer) -> httpx.URL | None:
    """The next page's URL from the ``Link`` header, on the same host (its path and query only)."""
    match = _LINK_NEXT.search(answer.headers.get("link", ""))
    if match is None:
        return None
    linked = answer.url.join(match[1])
    return answer.url.copy_with(raw_path=linked.raw_path)


def _media_type(answer: Answer) -> str:
    declared = mediatypes.base_media_type(answer.headers.get("content-type", ""))
    if declared not in _UNINFORMATIVE_TYPES or not answer.body:
        return declared
    try:
        stated = json.loads(answer.body).get("mediaType")
    except (ValueError, UnicodeDecodeError, AttributeError):
        return declared
    return mediatypes.base_media_type(stated) if isinstance(stated, str) else declared


def _digest_of(data: bytes, stated: str | None) -> Digest:
    """sha256 of ``data``; DigestMismatch when the registry's ``Docker-Content-Digest`` differs."""
    computed = Digest.from_bytes(data)
    if stated:
        try:
            expected = Digest.parse(stated)
        except InvalidDigest:
            return computed
        verify_bytes(data, expected)
    return computed
