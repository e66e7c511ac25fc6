"""The ``docker://`` transport: an image in a registry, as skopeo 1.9 addresses it.

``docker://NAME[:TAG|@DIGEST]``: NAME is normalised as docker does
(``busybox`` is ``docker.io/library/busybox``) and ``:latest`` is added when
neither tag nor digest is given. A tag and a digest together are refused, as
containers/image refuses them.

- Source: registries.conf applies (location rewriting, mirrors first for
  pulls, blocked registries); the top-level manifest is fetched when the
  source opens and verified when the reference names a digest; children are
  fetched by digest and verified. Blobs are streamed (resumed with Range
  after a cut connection) and not verified here: the copy engine verifies.
  ``repository_tags`` lists the repository's tags.
- Destination: stores every manifest type a registry takes; blobs already in
  the repository are reused (HEAD), blobs of another repository of the same
  registry are mounted (``set_source_hint``; ``try_reusing_blob`` then says
  so with a ``ReusedBlob(mounted=True)``), others are uploaded streamed;
  children of an index are put by digest, the top-level manifest by tag (or
  digest). A registry makes a manifest visible when it is put, so ``commit``
  has nothing left to do: the copy engine puts the manifest last.
- Delete: the manifest the reference names, by digest (the registry must
  allow deletes), as ``skopeo delete`` does.
"""

from __future__ import annotations

import threading
from typing import BinaryIO

from pallet.oci.digest import Digest
from pallet.oci.errors import InvalidImageName, InvalidReference, RegistryError
from pallet.oci.reference import Reference, parse_normalized, with_default_tag
from pallet.oci.registry.client import RegistryClient
from pallet.oci.registry.endpoints import push_endpoint
from pallet.oci.registry.options import RegistryOptions
from pallet.oci.registry.pull import open_pull_source
from pallet.oci.transports.base import (
    BlobInfo,
    ImageDestination,
    ImageReference,
    ImageSource,
    ImageTransport,
    ReusedBlob,
    SystemContext,
)


class DockerTransport(ImageTransport):
    name = "docker"

    def parse_reference(self, text: str) -> DockerReference:
        if not text.startswith("//"):
            raise InvalidImageName(self.name, text, "docker: references must start with //, e.g. docker://busybox")
        try:
            ref = parse_normalized(text[2:])
        except InvalidReference as error:
            raise InvalidImageName(self.name, text, str(error)) from error
        if ref.tag is not None and ref.digest is not None:
            raise InvalidImageName(self.name, text, "references with both a tag and a digest are not supported")
        return DockerReference(with_default_tag(ref))


class DockerReference(ImageReference):
    def __init__(self, ref: Reference) -> None:
        self.ref = ref

    @property
    def transport(self) -> ImageTransport:
        return TRANSPORT

    def string_within_transport(self) -> str:
        return "//" + self.ref.familiar()

    def docker_reference(self) -> Reference:
        return self.ref

    def policy_configuration_identity(self) -> str:
        return str(self.ref)

    def new_source(self, context: SystemContext) -> DockerSource:
        return DockerSource(self, RegistryOptions.from_system_context(context))

    def new_destination(self, context: SystemContext) -> DockerDestination:
        return DockerDestination(self, RegistryOptions.from_system_context(context))

    def delete(self, context: SystemContext) -> None:
        options = RegistryOptions.from_system_context(context)
        endpoint = push_endpoint(self.ref, options.registries_conf)
        with RegistryClient.for_endpoint(endpoint, options) as client:
            wanted: str | Digest = endpoint.reference.digest or endpoint.reference.tag or "latest"
            digest = endpoint.reference.digest or client.get_manifest(endpoint.repository, wanted).digest
            client.delete_manifest(endpoint.repository, digest)


class DockerSource(ImageSource):
    def __init__(self, reference: DockerReference, options: RegistryOptions) -> None:
        self._reference = reference
        self._pull = open_pull_source(reference.ref, options)

    @property
    def reference(self) -> DockerReference:
        return self._reference

    @property
    def _repository(self) -> str:
        return self._pull.endpoint.repository

    def get_manifest(self, instance_digest: Digest | None = None) -> tuple[bytes, str]:
        if instance_digest is None:
            return self._pull.manifest.data, self._pull.manifest.media_type
        fetched = self._pull.client.get_manifest(self._repository, instance_digest)  # verified by the client
        return fetched.data, fetched.media_type

    def get_blob(self, info: BlobInfo) -> tuple[BinaryIO, int]:
        if info.digest is None:
            raise ValueError("a registry blob is read by digest")
        expected = info.size if info.size >= 0 else None
        stream = self._pull.client.get_blob(self._repository, info.digest, verify=False, expected_size=expected)
        return stream, info.size  # type: ignore[return-value]

    def has_threadsafe_get_blob(self) -> bool:
        return True

    def repository_tags(self) -> list[str]:
        return self._pull.client.list_tags(self._repository)

    def close(self) -> None:
        self._pull.client.close()


class DockerDestination(ImageDestination):
    def __init__(self, reference: DockerReference, options: RegistryOptions) -> None:
        self._reference = reference
        self._endpoint = push_endpoint(reference.ref, options.registries_conf)
        self._client = RegistryClient.for_endpoint(self._endpoint, options)
        self._mount_from: str | None = None
        self._lock = threading.Lock()

    @property
    def reference(self) -> DockerReference:
        return self._reference

    @property
    def _repository(self) -> str:
        return self._endpoint.repository

    def has_threadsafe_put_blob(self) -> bool:
        return True

    def desired_layer_compression(self) -> str | None:
        """Plain layers are gzipped on the way to a registry, as containers/image does."""
        return "gzip"

    def set_source_hint(self, source: ImageReference) -> None:
        origin = source.docker_reference()
        if origin is not None and origin.domain == self._endpoint.host and origin.path != self._repository:
            self._mount_from = origin.path

    def try_reusing_blob(self, info: BlobInfo, *, can_substitute: bool = False) -> BlobInfo | None:
        if info.digest is None:
            return None
        size = self._client.head_blob(self._repository, info.digest)
        if size is not None:
            return BlobInfo(info.digest, size if size >= 0 else info.size, info.media_type)
        if self._mount_from is not None:
            try:
                if self._client.mount_blob(self._repository, info.digest, self._mount_from):
                    return ReusedBlob(info.digest, info.size, info.media_type, mounted=True)
            except RegistryError:
                return None  # not mountable: upload instead
        return None

    def put_blob(self, stream: BinaryIO, info: BlobInfo, *, is_config: bool = False) -> BlobInfo:
        pushed = self._client.push_blob(self._repository, stream, digest=info.digest,
                                        size=info.size if info.size >= 0 else None)
        return BlobInfo(pushed.digest, pushed.size, info.media_type)

    def put_manifest(self, raw: bytes, media_type: str, instance_digest: Digest | None = None) -> None:
        target: str | Digest
        if instance_digest is not None:
            target = instance_digest
        else:
            ref = self._endpoint.reference
            target = ref.digest or ref.tag or "latest"
        self._client.put_manifest(self._repository, target, raw, media_type)

    def commit(self) -> None:
        """Nothing to do: the registry shows the image once its manifest is put (last)."""

    def close(self) -> None:
        self._client.close()


TRANSPORT = DockerTransport()
