"""The transport protocol: what the copy engine knows of images, and nothing more.

Four concepts, after containers/image's ``types``:

- ``ImageTransport``: has a ``name`` ("docker", "oci", ...) and parses the
  text after ``NAME:`` into an ``ImageReference``.
- ``ImageReference``: immutable; names one image within its transport and
  opens an ``ImageSource`` or an ``ImageDestination`` on it, or deletes it.
  ``str(ref)`` is ``NAME:TEXT`` and parses back to an equal reference.
- ``ImageSource``: reads the manifest (raw bytes and media type) and blobs.
- ``ImageDestination``: writes blobs, then manifests, then ``commit()``.

Contracts every implementation keeps (the copy engine relies on them):

- Sources do NOT verify blobs; the copy engine verifies every blob it reads
  against its descriptor while streaming. Destinations DO verify what they
  are given against ``BlobInfo.digest``/``size`` when those are known, and
  compute them when not, and never keep a partial blob.
- Call order on a destination: ``put_blob``/``try_reusing_blob`` for every
  blob (possibly from several threads when ``has_threadsafe_put_blob``), then
  ``put_manifest`` for each child manifest of an index (with its
  ``instance_digest``), then the top-level ``put_manifest``, then ``commit``.
  Nothing is promised to be visible before ``commit``; after ``close``
  without ``commit`` a destination leaves no image behind (best effort for
  registries: blobs may stay, but no manifest points at a missing blob).
- Sources and destinations are context managers; ``close`` is idempotent.

New capabilities get a method here with a default, so that existing
transports keep working (as containers/image's stubs do).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO, Self

from pallet.oci.digest import Digest
from pallet.oci.errors import UnsupportedOperation

if TYPE_CHECKING:
    from pallet.oci.reference import Reference
    from pallet.oci.spec.image import Descriptor


@dataclass(frozen=True)
class SystemContext:
    """Options that describe the user's system and wishes, passed down explicitly.

    The CLI fills one from flags and defaults; libraries never read globals.
    ``None`` means "the default for this system".
    """

    tls_verify: bool | None = None
    cert_dir: Path | None = None
    credentials: tuple[str, str] | None = None  # (username, password); never printed
    registry_token: str | None = None
    auth_file: Path | None = None
    registries_conf: Path | None = None
    no_creds: bool = False
    user_agent: str | None = None
    os_choice: str | None = None  # --override-os
    architecture_choice: str | None = None  # --override-arch
    variant_choice: str | None = None  # --override-variant
    tmp_dir: Path | None = None  # for archives that must be staged
    docker_archive_additional_tags: tuple[str, ...] = ()
    oci_accept_uncompressed_layers: bool = False  # --dest-oci-accept-uncompressed-layers
    retry_times: int = 0
    home: Path | None = None  # for tests: the home directory to read config from
    environ: tuple[tuple[str, str], ...] | None = None  # for tests: the environment to use instead of os.environ


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """What is known of a blob: its digest and size may be unknown (None / -1)."""

    digest: Digest | None
    size: int = -1
    media_type: str = ""
    urls: tuple[str, ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class ReusedBlob(BlobInfo):
    """What ``try_reusing_blob`` may return to say how the blob was reused.

    ``mounted``: the destination did not hold the blob but got it without a
    copy (a registry's cross-repository mount). A plain ``BlobInfo`` means
    the destination already held it.
    """

    mounted: bool = False


class ImageTransport(ABC):
    """A named way to address images, e.g. ``docker`` or ``oci``."""

    name: str

    @abstractmethod
    def parse_reference(self, text: str) -> ImageReference:
        """Parse the text after ``NAME:``; ``InvalidImageName`` when it is wrong for this transport."""


class ImageReference(ABC):
    """An immutable name of one image within its transport."""

    @property
    @abstractmethod
    def transport(self) -> ImageTransport: ...

    @abstractmethod
    def string_within_transport(self) -> str:
        """The text after ``NAME:``; parsing it again gives an equal reference."""

    def docker_reference(self) -> Reference | None:
        """The registry-style name this reference carries, if any (for tags and policy scopes)."""
        return None

    def policy_configuration_identity(self) -> str:
        """The identity policy.json scopes match against (see containers-policy.json(5))."""
        return self.string_within_transport()

    @abstractmethod
    def new_source(self, context: SystemContext) -> ImageSource: ...

    @abstractmethod
    def new_destination(self, context: SystemContext) -> ImageDestination: ...

    def delete(self, context: SystemContext) -> None:
        raise UnsupportedOperation(f"deleting images is not supported by the {self.transport.name} transport")

    def __str__(self) -> str:
        return f"{self.transport.name}:{self.string_within_transport()}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ImageReference) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))


class _Closing:
    """Context-manager plumbing shared by sources and destinations."""

    def close(self) -> None:
        """Release what is held; idempotent."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class ImageSource(_Closing, ABC):
    """Reads one image (or index) from where it lives."""

    @property
    @abstractmethod
    def reference(self) -> ImageReference: ...

    @abstractmethod
    def get_manifest(self, instance_digest: Digest | None = None) -> tuple[bytes, str]:
        """The raw manifest and its media type.

        Without ``instance_digest``: the top-level manifest the reference
        names (possibly an index). With it: that child of the index, which
        the source MUST verify hashes to ``instance_digest``. A source whose
        reference names a digest verifies the top-level manifest too.
        ``ImageNotFound`` when there is no such image.
        """

    @abstractmethod
    def get_blob(self, info: BlobInfo) -> tuple[BinaryIO, int]:
        """A stream of the blob's bytes and its size (-1 if unknown). Not verified here.

        The caller closes the stream.
        """

    def has_threadsafe_get_blob(self) -> bool:
        return False

    def get_signatures(self, instance_digest: Digest | None = None) -> list[bytes]:
        return []

    def repository_tags(self) -> list[str] | None:
        """The tags of the repository the image lives in, where that means something (registries)."""
        return None

    def layer_infos_for_copy(self, instance_digest: Digest | None = None) -> list[Descriptor] | None:
        """The layers to copy when they are not the manifest's own, else None.

        A source that holds layers otherwise than its manifest describes them
        (a containers/storage store keeps them uncompressed) serves the
        manifest as stored and lists here, in the manifest's order, the blobs
        it can really give (containers/image's ``LayerInfosForCopy``). The
        copy engine then copies these and writes a manifest for them.
        """
        return None

    def blob_variants(self, descriptor: Descriptor) -> tuple[Descriptor, ...]:
        """Other blobs with the same content as ``descriptor``, which a destination may already hold.

        For a layer served uncompressed: the compressed blob it was pulled as,
        described as the stored manifest describes it. When the destination
        holds that blob, the copy reuses it instead of compressing anew, so an
        image pulled and pushed back keeps its layer and manifest digests
        (containers/image gets the same from its blob info cache).
        """
        return ()


class ImageDestination(_Closing, ABC):
    """Writes one image (or index) to where it will live."""

    @property
    @abstractmethod
    def reference(self) -> ImageReference: ...

    def supported_manifest_types(self) -> tuple[str, ...]:
        """Manifest media types this destination stores, preferred first; empty means any."""
        return ()

    def desired_layer_compression(self) -> str | None:
        """"gzip", "zstd", "none" to ask for a compression, or None to keep what comes."""
        return None

    def accepts_foreign_layer_urls(self) -> bool:
        return False

    def must_match_runtime_os(self) -> bool:
        return False

    def has_threadsafe_put_blob(self) -> bool:
        return False

    def supports_signatures(self) -> bool:
        return False

    def set_source_hint(self, source: ImageReference) -> None:
        """Where the blobs will come from; a destination may use it to reuse them
        (a registry mounts blobs across repositories of the same host).

        The copy engine calls it once, right after opening the destination.
        """

    def try_reusing_blob(self, info: BlobInfo, *, can_substitute: bool = False) -> BlobInfo | None:
        """The blob as the destination now holds it without a copy, else None.

        A ``ReusedBlob`` with ``mounted=True`` when it was just mounted from
        elsewhere; a plain ``BlobInfo`` (or a ``ReusedBlob`` with ``mounted``
        False) when the destination already held it.
        """
        return None

    @abstractmethod
    def put_blob(self, stream: BinaryIO, info: BlobInfo, *, is_config: bool = False) -> BlobInfo:
        """Store a blob from ``stream``; verify against ``info`` when known; return what was stored.

        Atomic: on any failure nothing of the blob is kept.
        """

    @abstractmethod
    def put_manifest(self, raw: bytes, media_type: str, instance_digest: Digest | None = None) -> None:
        """Store a manifest. ``instance_digest`` for a child of an index; None for the top level.

        ``ManifestTypeRejected`` when this destination cannot store ``media_type``.
        """

    def put_signatures(self, signatures: list[bytes], instance_digest: Digest | None = None) -> None:
        if signatures:
            raise UnsupportedOperation(f"{self.reference.transport.name} destinations cannot store signatures")

    @abstractmethod
    def commit(self) -> None:
        """Make the image visible: after this, the image is complete where it was written."""


@dataclass
class Transports:
    """Transports by name, loaded on first use (no import-time side effects).

    Built-in transports are listed here; other distributions add theirs
    through the ``pallet.oci.transports`` entry-point group (pallet-storage
    registers ``containers-storage`` that way). Registering a name twice is a
    programming error.

    ``discover``, when given, lists further transports; it is called once,
    the first time a name is not among the registered ones (or all names are
    asked for): scanning installed distributions for entry points costs
    ~20 ms, which a command naming a built-in transport need not pay.
    """

    _loaders: dict[str, Callable[[], ImageTransport]] = field(default_factory=dict)
    _loaded: dict[str, ImageTransport] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock)
    discover: Callable[[], dict[str, Callable[[], ImageTransport]]] | None = None

    def register(self, name: str, loader: Callable[[], ImageTransport]) -> None:
        if name in self._loaders:
            raise ValueError(f"transport {name!r} is registered twice")
        self._loaders[name] = loader

    def _discover(self) -> None:
        with self._lock:
            discover, self.discover = self.discover, None
            if discover is not None:
                for name, loader in discover().items():
                    self.register(name, loader)

    def names(self) -> list[str]:
        self._discover()
        return sorted(self._loaders)

    def get(self, name: str) -> ImageTransport:
        from pallet.oci.errors import UnknownTransport

        with self._lock:
            transport = self._loaded.get(name)
            if transport is None:
                if name not in self._loaders:
                    self._discover()
                loader = self._loaders.get(name)
                if loader is None:
                    raise UnknownTransport(name, self.names())
                transport = self._loaded[name] = loader()
        return transport

    def parse_image_name(self, text: str) -> ImageReference:
        """Parse ``NAME:TEXT`` (e.g. ``docker://busybox``, ``oci:/tmp/l:v1``) into a reference."""
        from pallet.oci.errors import InvalidImageName

        name, colon, rest = text.partition(":")
        if not colon:
            raise InvalidImageName("", text, "expected TRANSPORT:NAME, e.g. docker://busybox or oci:DIR:TAG")
        return self.get(name).parse_reference(rest)
