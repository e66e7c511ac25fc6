"""``memory:NAME``: an in-memory image transport, a fake for tests of the copy engine.

One ``MemoryTransport`` is a store of blobs and named images, like a small
registry. Its sources and destinations implement the protocol of
``pallet.oci.transports.base`` and keep its contracts (destinations verify
blobs, keep nothing before ``commit``), with knobs a test can turn:

- ``DestinationCapabilities``: manifest types stored, desired compression,
  thread-safe puts, signatures, foreign URLs; ``keep_blob_data=False`` to
  hash and count blobs without holding them (for huge layers);
  ``rendezvous=N`` makes the first N layer puts wait for one another, so a
  test can see parallel copies overlap without timing anything;
- ``SourceFaults``: serve wrong bytes for a blob, fail N times with a
  temporary error, or fail for good;
- what happened: ``events`` (ordered log), ``get_blob_calls``,
  ``max_concurrent_puts``.

``add_image`` loads a ``pallet_testing.images`` image; ``add_lazy_blob``
adds a blob generated on demand, never held in memory.

``RecordingProgress`` is a thread-safe progress sink that keeps every event.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import BinaryIO

from pallet.oci.digest import Digest, Digester
from pallet.oci.errors import DigestMismatch, ImageNotFound, ManifestTypeRejected, OciError, ServerError, SizeMismatch
from pallet.oci.transports.base import BlobInfo, ImageDestination, ImageReference, ImageSource, ImageTransport, SystemContext

from pallet_testing.images import TestImage, TestIndex

CHUNK = 1 << 20
RENDEZVOUS_TIMEOUT = 10.0


@dataclass(frozen=True)
class LazyBlob:
    """A blob made on demand by ``open()``; only its digest and size are held."""

    digest: Digest
    size: int
    open: Callable[[], BinaryIO]


@dataclass(frozen=True)
class DestinationCapabilities:
    supported_manifest_types: tuple[str, ...] = ()
    desired_compression: str | None = None
    threadsafe_put: bool = True
    accepts_foreign_urls: bool = False
    supports_signatures: bool = False
    keep_blob_data: bool = True
    rendezvous: int = 0
    requires_children: bool = True  # an index may not be put before its children (False: like a registry)
    must_match_runtime_os: bool = False  # like containers-storage


@dataclass
class SourceFaults:
    corrupt: set[str] = field(default_factory=set)
    fail_temporarily: dict[str, int] = field(default_factory=dict)
    fail_permanently: set[str] = field(default_factory=set)
    threadsafe_get: bool = True


@dataclass
class StoredImage:
    manifest: bytes
    media_type: str
    instances: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    signatures: dict[str, list[bytes]] = field(default_factory=dict)  # "" for the top level


class InjectedPermanentFailure(OciError):
    """A non-temporary failure the fake was told to raise."""


class MemoryTransport(ImageTransport):
    """A store of blobs and images named ``memory:NAME`` (see the module docstring)."""

    name = "memory"

    def __init__(self, capabilities: DestinationCapabilities | None = None, faults: SourceFaults | None = None) -> None:
        self.capabilities = capabilities or DestinationCapabilities()
        self.faults = faults or SourceFaults()
        self.blobs: dict[str, bytes | LazyBlob] = {}
        self.images: dict[str, StoredImage] = {}
        self.events: list[tuple[str, str]] = []
        self.get_blob_calls: Counter[str] = Counter()
        self.max_concurrent_puts = 0
        self._puts_in_flight = 0
        self._rendezvous_left = self.capabilities.rendezvous
        self._barrier = threading.Barrier(max(self.capabilities.rendezvous, 1))
        self.lock = threading.RLock()

    def parse_reference(self, text: str) -> MemoryReference:
        return MemoryReference(self, text)

    def reference(self, name: str) -> MemoryReference:
        return MemoryReference(self, name)

    def log(self, kind: str, detail: str = "") -> None:
        with self.lock:
            self.events.append((kind, detail))

    def add_image(self, name: str, image: TestImage | TestIndex, *, signatures: list[bytes] | None = None) -> None:
        """Store a test image (its blobs, child manifests and manifest) under ``name``."""
        children = image.images if isinstance(image, TestIndex) else (image,)
        for blob in image.blobs():
            self.blobs[blob.digest] = blob.data
        instances = {child.digest: (child.manifest.data, child.manifest.media_type) for child in children}
        stored = StoredImage(image.manifest.data, image.manifest.media_type, instances)
        if signatures:
            stored.signatures[""] = list(signatures)
        self.images[name] = stored

    def add_manifest(self, name: str, manifest: dict[str, object], blobs: dict[str, bytes | LazyBlob]) -> str:
        """Store an image from a manifest document and its blobs; returns the manifest digest."""
        raw = json.dumps(manifest).encode()
        self.blobs.update(blobs)
        self.images[name] = StoredImage(raw, str(manifest["mediaType"]))
        return "sha256:" + hashlib.sha256(raw).hexdigest()

    def add_lazy_blob(self, blob: LazyBlob) -> None:
        self.blobs[str(blob.digest)] = blob

    def blob_bytes(self, digest: str) -> bytes:
        data = self.blobs[digest]
        assert isinstance(data, bytes), "a lazy blob or a blob kept without data"
        return data

    def put_started(self) -> None:
        with self.lock:
            self._puts_in_flight += 1
            self.max_concurrent_puts = max(self.max_concurrent_puts, self._puts_in_flight)
            wait = self._rendezvous_left > 0
            self._rendezvous_left -= 1
        if wait:
            try:
                self._barrier.wait(RENDEZVOUS_TIMEOUT)
            except threading.BrokenBarrierError:
                pass

    def put_finished(self) -> None:
        with self.lock:
            self._puts_in_flight -= 1


class MemoryReference(ImageReference):
    def __init__(self, transport: MemoryTransport, name: str) -> None:
        self._transport = transport
        self.name = name

    @property
    def transport(self) -> MemoryTransport:
        return self._transport

    def string_within_transport(self) -> str:
        return self.name

    def new_source(self, context: SystemContext) -> MemorySource:
        image = self._transport.images.get(self.name)
        if image is None:
            raise _NotFound(f"no image {self.name!r} in the memory transport")
        return MemorySource(self, image)

    def new_destination(self, context: SystemContext) -> MemoryDestination:
        return MemoryDestination(self)


class _NotFound(ImageNotFound):
    pass


class _CorruptingReader(io.RawIOBase):
    """Passes a stream through with its first byte flipped."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._first = True

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        data = self._stream.read(-1 if size is None else size)
        if data and self._first:
            self._first = False
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        memoryview(buffer)[: len(data)] = data
        return len(data)


class MemorySource(ImageSource):
    def __init__(self, reference: MemoryReference, image: StoredImage) -> None:
        self._reference = reference
        self._image = image

    @property
    def reference(self) -> MemoryReference:
        return self._reference

    def get_manifest(self, instance_digest: Digest | None = None) -> tuple[bytes, str]:
        self._reference.transport.log("get_manifest", str(instance_digest or ""))
        if instance_digest is None:
            return self._image.manifest, self._image.media_type
        found = self._image.instances.get(str(instance_digest))
        if found is None:
            raise _NotFound(f"no instance {instance_digest}")
        return found

    def get_blob(self, info: BlobInfo) -> tuple[BinaryIO, int]:
        transport = self._reference.transport
        digest = str(info.digest)
        faults = transport.faults
        with transport.lock:
            transport.get_blob_calls[digest] += 1
            calls = transport.get_blob_calls[digest]
        transport.log("get_blob", digest)
        if digest in faults.fail_permanently:
            raise InjectedPermanentFailure(f"injected permanent failure for {digest}")
        if calls <= faults.fail_temporarily.get(digest, 0):
            raise ServerError(f"injected temporary failure for {digest}", status=503)
        blob = transport.blobs.get(digest)
        if blob is None:
            raise _NotFound(f"no blob {digest}")
        stream: BinaryIO = blob.open() if isinstance(blob, LazyBlob) else io.BytesIO(blob)
        size = blob.size if isinstance(blob, LazyBlob) else len(blob)
        if digest in faults.corrupt:
            stream = _CorruptingReader(stream)  # type: ignore[assignment]
        return stream, size

    def has_threadsafe_get_blob(self) -> bool:
        return self._reference.transport.faults.threadsafe_get

    def get_signatures(self, instance_digest: Digest | None = None) -> list[bytes]:
        return list(self._image.signatures.get(str(instance_digest or ""), []))


class MemoryDestination(ImageDestination):
    """Stages blobs and manifests; ``commit`` makes them the transport's."""

    def __init__(self, reference: MemoryReference) -> None:
        self._reference = reference
        self._blobs: dict[str, bytes | LazyBlob] = {}
        self._instances: dict[str, tuple[bytes, str]] = {}
        self._signatures: dict[str, list[bytes]] = {}
        self._manifest: tuple[bytes, str] | None = None
        self.committed = False

    @property
    def reference(self) -> MemoryReference:
        return self._reference

    @property
    def _transport(self) -> MemoryTransport:
        return self._reference.transport

    @property
    def _caps(self) -> DestinationCapabilities:
        return self._transport.capabilities

    def supported_manifest_types(self) -> tuple[str, ...]:
        return self._caps.supported_manifest_types

    def desired_layer_compression(self) -> str | None:
        return self._caps.desired_compression

    def accepts_foreign_layer_urls(self) -> bool:
        return self._caps.accepts_foreign_urls

    def has_threadsafe_put_blob(self) -> bool:
        return self._caps.threadsafe_put

    def must_match_runtime_os(self) -> bool:
        return self._caps.must_match_runtime_os

    def supports_signatures(self) -> bool:
        return self._caps.supports_signatures

    def _has_blob(self, digest: str) -> bool:
        with self._transport.lock:
            return digest in self._blobs or digest in self._transport.blobs

    def try_reusing_blob(self, info: BlobInfo, *, can_substitute: bool = False) -> BlobInfo | None:
        digest = str(info.digest)
        if info.digest is None or not self._has_blob(digest):
            return None
        self._transport.log("reused", digest)
        return replace(info)

    def put_blob(self, stream: BinaryIO, info: BlobInfo, *, is_config: bool = False) -> BlobInfo:
        transport = self._transport
        if not is_config:
            transport.put_started()
        try:
            digester = Digester(info.digest.algorithm if info.digest else "sha256")
            kept = io.BytesIO() if self._caps.keep_blob_data else None
            while data := stream.read(CHUNK):
                digester.update(data)
                if info.size >= 0 and digester.size > info.size:
                    raise SizeMismatch(info.size, digester.size, at_least=True)
                if kept is not None:
                    kept.write(data)
        finally:
            if not is_config:
                transport.put_finished()
        digest = digester.digest()
        if info.size >= 0 and digester.size != info.size:
            raise SizeMismatch(info.size, digester.size)
        if info.digest is not None and digest != info.digest:
            raise DigestMismatch(str(info.digest), str(digest))
        with transport.lock:
            self._blobs[str(digest)] = kept.getvalue() if kept is not None else LazyBlob(digest, digester.size, _gone)
        transport.log("put_blob", str(digest))
        return BlobInfo(digest, digester.size, info.media_type)

    def put_manifest(self, raw: bytes, media_type: str, instance_digest: Digest | None = None) -> None:
        supported = self._caps.supported_manifest_types
        if supported and media_type not in supported:
            raise ManifestTypeRejected(media_type, supported)
        self._check_references(raw)
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        if instance_digest is not None:
            assert str(instance_digest) == digest, "instance_digest is not the digest of the manifest"
            self._instances[digest] = (raw, media_type)
        else:
            self._manifest = (raw, media_type)
        self._transport.log("put_manifest", digest)

    def _check_references(self, raw: bytes) -> None:
        """A manifest must come after its blobs (and an index after its children, unless a registry)."""
        document = json.loads(raw)
        blobs = [document["config"], *document["layers"]] if "config" in document else []
        missing = [b["digest"] for b in blobs if not self._has_blob(b["digest"]) and not b.get("urls")]
        if self._caps.requires_children:
            missing += [m["digest"] for m in document.get("manifests", []) if m["digest"] not in self._instances]
        if missing:
            raise AssertionError(f"manifest put before what it references: {missing}")

    def put_signatures(self, signatures: list[bytes], instance_digest: Digest | None = None) -> None:
        if signatures and not self._caps.supports_signatures:
            super().put_signatures(signatures, instance_digest)
        self._signatures[str(instance_digest or "")] = list(signatures)

    def commit(self) -> None:
        if self._manifest is None:
            raise AssertionError("commit without a manifest")
        transport = self._transport
        with transport.lock:
            transport.blobs.update(self._blobs)
            raw, media_type = self._manifest
            transport.images[self._reference.name] = StoredImage(raw, media_type, dict(self._instances), self._signatures)
        self.committed = True
        transport.log("commit", self._reference.name)

    def close(self) -> None:
        self._transport.log("close", self._reference.name)


class RecordingProgress:
    """A thread-safe ``pallet.oci.copy.ProgressSink`` keeping every event as a tuple.

    ``("copy", index)``, ``("instances", count, total)``, ``("instance", digest, position, count)``,
    ``("started", digest, size, is_config)``, ``("progress", digest, copied)``,
    ``("skipped", digest, size, reason)``, ``("done", digest, stored, size)``,
    ``("manifest", digest, media_type, instance)``, ``("index", digest, media_type)``.
    """

    def __init__(self) -> None:
        self.events: list[tuple[object, ...]] = []
        self._lock = threading.Lock()

    def _add(self, *event: object) -> None:
        with self._lock:
            self.events.append(event)

    def copy_started(self, *, index: bool) -> None:
        self._add("copy", index)

    def instances_started(self, count: int, total: int) -> None:
        self._add("instances", count, total)

    def instance_started(self, digest: Digest, position: int, count: int) -> None:
        self._add("instance", str(digest), position, count)

    def blob_started(self, digest: Digest, size: int, *, is_config: bool) -> None:
        self._add("started", str(digest), size, is_config)

    def blob_progress(self, digest: Digest, copied: int) -> None:
        self._add("progress", str(digest), copied)

    def blob_skipped(self, digest: Digest, size: int, *, is_config: bool, reason: str) -> None:
        self._add("skipped", str(digest), size, reason)

    def blob_done(self, digest: Digest, stored: Digest, size: int) -> None:
        self._add("done", str(digest), str(stored), size)

    def manifest_written(self, digest: Digest, media_type: str, *, instance: bool) -> None:
        self._add("manifest", str(digest), media_type, instance)

    def index_written(self, digest: Digest, media_type: str) -> None:
        self._add("index", str(digest), media_type)

    def of_kind(self, kind: str) -> list[tuple[object, ...]]:
        return [event for event in self.events if event[0] == kind]


def _gone() -> BinaryIO:
    raise AssertionError("this blob was stored without its data (keep_blob_data=False)")
