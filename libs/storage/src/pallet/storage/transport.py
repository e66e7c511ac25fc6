"""The ``containers-storage:`` transport: images in a containers/storage store, as c/image 5.23 keeps them.

``containers-storage:[DRIVER@GRAPHROOT+RUNROOT]NAME[:TAG|@DIGEST]`` names an
image in an explicit store; ``containers-storage:NAME`` one in the default
store (storage.conf, resolved by :func:`pallet.storage.config.resolve_store_options`
from the context's environment and home, else this process's). NAME is
normalized as c/image does (``busybox`` -> ``docker.io/library/busybox:latest``).
A source may also name an image by its full ID instead of NAME.

- Destination: stores single-image manifests only (OCI and Docker schema2;
  ``supported_manifest_types`` lists them, so the copy engine picks one
  instance of an index and converts what needs it). ``put_blob`` streams each
  blob to a temp file in the destination's own directory under the store's
  ``tmp`` (flock'ed while in use; one a killed process left is removed by the
  next destination on the store), verified against the digest/size given (a
  mismatch keeps nothing); the config is also kept in
  memory. ``put_manifest`` keeps the manifest. Nothing is written into the
  store before ``commit``, which creates the layers in manifest order (a layer
  whose chain ID already exists is reused, as c/image does: layer ID = chain
  ID of the config's diff_ids), then the image (ID = config digest hex, the
  reference's name moved to it, big data as :func:`pulled_big_data` orders
  it, created at the config's ``created``; an image with that ID already
  there gets the name and the big data).
  The temp directory is removed by ``commit`` and by ``close``.
- Rootless: the tools run themselves again in podman's user namespace
  (:mod:`pallet.storage.userns.reexec`) before opening a store, so the layer
  files get podman's owners. A library caller that opens a rootless store
  unprivileged outside it is served the same way by a child in the
  namespace: the destination's store work (``commit``) and the source's
  layer reads run there (:func:`pallet.storage.userns.unshare.run_in_userns`).
- Source: the manifest as stored (as c/image's storage source serves it, so
  ``inspect`` shows the digest skopeo shows), the config, and each layer as
  ``layer_diff`` rebuilds it (the uncompressed tar). Since a store holds
  layers uncompressed only, ``layer_infos_for_copy`` lists them as such (the
  layer's uncompressed digest and size, the plain tar media type of the
  manifest's family), and the copy engine copies those, as c/image's
  ``LayerInfosForCopy`` makes it. ``blob_variants`` names, for each layer,
  the compressed blob of the stored manifest: a destination that holds it
  (pushing back to the registry an image was pulled from) reuses it, so the
  layer and manifest digests stay (c/image gets this from its blob info
  cache). Blobs are read by digest: the config's, or a layer's uncompressed
  digest.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any, BinaryIO

from pallet.oci import mediatypes
from pallet.oci import reference as oci_reference
from pallet.oci.digest import Digest, Digester, VerifyingReader, verify_bytes
from pallet.oci.errors import (
    InvalidImageName,
    InvalidReference,
    LocalImageNotFound,
    ManifestTypeRejected,
    SizeMismatch,
    TransportError,
)
from pallet.oci.spec.image import Descriptor
from pallet.oci.transports.base import (
    BlobInfo,
    ImageDestination,
    ImageReference,
    ImageSource,
    ImageTransport,
    SystemContext,
)
from pallet.storage import records
from pallet.storage.config import Host, StoreOptions, resolve_store_options
from pallet.storage.errors import LayerNotFound, NotFound
from pallet.storage.image_store import pulled_big_data
from pallet.storage.records import Image
from pallet.storage.store import Store
from pallet.storage.tarengine import ApplyOptions, UsernsFsOps
from pallet.storage.userns.command import ROOTLESS_UID
from pallet.storage.userns.unshare import run_in_userns

NAME = "containers-storage"

#: Single-image manifest types a destination stores, preferred first.
DESTINATION_TYPES = (mediatypes.OCI_MANIFEST, mediatypes.DOCKER_MANIFEST)

_CHUNK = 1 << 20
_STORE_SPEC = re.compile(r"^\[(?:(?P<driver>[^@\]]*)@)?(?P<root>[^+\]]+)(?:\+(?P<run>[^\]]+))?\]")


class StorageTransport(ImageTransport):
    """``containers-storage:[DRIVER@GRAPHROOT+RUNROOT]NAME[:TAG|@DIGEST]``."""

    name = NAME

    def parse_reference(self, text: str) -> StorageReference:
        """Parse the text after ``containers-storage:`` (InvalidImageName when it is wrong).

        The store spec needs absolute roots; the name is normalized and gets
        ``:latest`` when it has neither tag nor digest. A bare 64-hex ID (or
        ``@ID``) names an image by ID.
        """
        driver = graph_root = run_root = ""
        rest = text
        if text.startswith("["):
            match = _STORE_SPEC.match(text)
            if match is None:
                raise InvalidImageName(NAME, text, "expected [DRIVER@GRAPHROOT+RUNROOT]NAME")
            driver, graph_root, run_root = match["driver"] or "", match["root"], match["run"] or ""
            if not os.path.isabs(graph_root) or (run_root and not os.path.isabs(run_root)):
                raise InvalidImageName(NAME, text, "the graph root and run root must be absolute paths")
            rest = text[match.end():]
        image_id = ""
        name = ""
        candidate = rest[1:] if rest.startswith("@") else rest
        if records.valid_id(candidate):
            image_id = candidate
        elif rest:
            try:
                name = str(oci_reference.with_default_tag(oci_reference.parse_normalized(rest)))
            except InvalidReference as error:
                raise InvalidImageName(NAME, text, str(error)) from error
        else:
            raise InvalidImageName(NAME, text, "no image name or ID")
        return StorageReference(driver, graph_root, run_root, name, image_id)


@dataclass(frozen=True, eq=False)
class StorageReference(ImageReference):
    """An image in a store: ``name`` (normalized, tagged or digested) or ``image_id``; roots "" for the default store."""

    driver: str
    graph_root: str
    run_root: str
    name: str = ""
    image_id: str = ""

    @property
    def transport(self) -> ImageTransport:
        return TRANSPORT

    def string_within_transport(self) -> str:
        spec = ""
        if self.graph_root:
            driver = f"{self.driver}@" if self.driver else ""
            run = f"+{self.run_root}" if self.run_root else ""
            spec = f"[{driver}{self.graph_root}{run}]"
        return spec + (self.name or f"@{self.image_id}")

    def docker_reference(self) -> oci_reference.Reference | None:
        return oci_reference.parse(self.name) if self.name else None

    def store_options(self, context: SystemContext) -> StoreOptions:
        """The store this reference names: the bracketed one, else the default (roots/driver filled from it).

        Rootless (the user is not root, or ``_CONTAINERS_ROOTLESS_UID`` names
        another user inside podman's user namespace) holds for a bracketed
        store too: it picks the overlay driver's ``user.overlay.*`` xattrs, as
        c/storage decides by the process, not by the store.
        """
        host = _host(context)
        if self.graph_root and self.run_root:
            return StoreOptions(graph_root=self.graph_root, run_root=self.run_root, driver=self.driver,
                                rootless=host.rootless, rootless_uid=host.uid)
        default = resolve_store_options(host)
        if not self.graph_root:
            return default
        return StoreOptions(graph_root=self.graph_root, run_root=self.run_root or default.run_root,
                            driver=self.driver or default.driver, driver_options=default.driver_options,
                            rootless=default.rootless, rootless_uid=default.rootless_uid)

    def open_store(self, context: SystemContext) -> Store:
        return Store.open(self.store_options(context))

    def new_source(self, context: SystemContext) -> StorageSource:
        return StorageSource.open(self, self.open_store(context))

    def new_destination(self, context: SystemContext) -> StorageDestination:
        if not self.name:
            raise InvalidImageName(NAME, self.string_within_transport(), "a destination needs an image name")
        return StorageDestination(self, self.open_store(context))


def _host(context: SystemContext) -> Host:
    """The host the default store is resolved for: the context's environment and home, else this process's."""
    if context.environ is None:
        return Host.current()
    env = dict(context.environ)
    euid = os.geteuid()
    named = env.get(ROOTLESS_UID, "")  # inside podman's (or our re-exec's) user namespace
    uid = int(named) if named.isdigit() else euid
    return Host(env=env, uid=uid, euid=euid, home=str(context.home or env.get("HOME", "")))


def _layer_tar_type(manifest_type: str) -> str:
    return mediatypes.DOCKER_LAYER_TAR if manifest_type == mediatypes.DOCKER_MANIFEST else mediatypes.OCI_LAYER_TAR


def _manifest_type(raw: bytes, declared: str = "") -> str:
    base = mediatypes.base_media_type(declared)
    if base:
        return base
    document = json.loads(raw)
    media_type = document.get("mediaType", "") if isinstance(document, dict) else ""
    if isinstance(media_type, str) and media_type:
        return media_type
    return mediatypes.OCI_MANIFEST


class StorageSource(ImageSource):
    """Reads one image of a store; the image is looked up once, when opened. Not thread-safe for blobs."""

    def __init__(self, reference: StorageReference, store: Store, image: Image) -> None:
        self._reference = reference
        self._store = store
        self._image = image
        self._diff_ids: dict[str, tuple[str, int]] = {}  # uncompressed digest -> (layer ID, size)
        self._variants: dict[str, tuple[Descriptor, ...]] = {}  # uncompressed digest -> the stored manifest's blob
        self._lock = threading.Lock()

    @classmethod
    def open(cls, reference: StorageReference, store: Store) -> StorageSource:
        """Look the image up (LocalImageNotFound when the store has no such image)."""
        wanted = reference.image_id or reference.name
        try:
            image = store.lookup_image(wanted)
        except NotFound as error:
            raise LocalImageNotFound(f"no image {wanted} in {store.options.graph_root}") from error
        source = cls(reference, store, image)
        with store.reading() as view:
            layer_id = image.top_layer
            while layer_id:
                layer = view.layer(layer_id)
                source._diff_ids.setdefault(layer.uncompressed_digest, (layer.id, layer.uncompressed_size))
                layer_id = layer.parent
        return source

    @property
    def reference(self) -> ImageReference:
        return self._reference

    def _big_data(self, key: str) -> bytes:
        try:
            with self._store.reading() as view:
                return view.image_big_data(self._image.id, key)
        except (FileNotFoundError, NotFound) as error:
            raise LocalImageNotFound(f"{self._reference}: image {self._image.id} has no {key!r}") from error

    def get_manifest(self, instance_digest: Digest | None = None) -> tuple[bytes, str]:
        """The manifest as stored; ``instance_digest`` selects a stored ``manifest-<digest>`` item (verified)."""
        if instance_digest is not None:
            raw = self._big_data(f"manifest-{instance_digest}")
            verify_bytes(raw, instance_digest)
        else:
            digest = self._reference_digest()
            raw = self._big_data(f"manifest-{digest}" if digest else "manifest")
            if digest:
                verify_bytes(raw, Digest.parse(digest))
        return raw, _manifest_type(raw)

    def _reference_digest(self) -> str:
        if self._reference.name and "@" in self._reference.name:
            return self._reference.name.rsplit("@", 1)[1]
        return ""

    def layer_infos_for_copy(self, instance_digest: Digest | None = None) -> list[Descriptor] | None:
        """The layers as this store holds them: uncompressed (see the module docstring)."""
        raw, media_type = self.get_manifest(instance_digest)
        if media_type not in DESTINATION_TYPES:
            return None
        document: dict[str, Any] = json.loads(raw)
        config = json.loads(self._big_data(str(document["config"]["digest"])))
        diff_ids: list[str] = list(config.get("rootfs", {}).get("diff_ids", []))
        layers: list[dict[str, Any]] = document.get("layers", [])
        if len(diff_ids) != len(layers):
            raise TransportError(f"{self._reference}: the config lists {len(diff_ids)} diff_ids for {len(layers)} layers")
        served = []
        for stored, diff_id in zip(layers, diff_ids, strict=True):
            if diff_id not in self._diff_ids:
                raise TransportError(f"{self._reference}: no layer of the image has diff {diff_id}")
            plain = Descriptor(media_type=_layer_tar_type(media_type), digest=Digest.parse(diff_id),
                               size=self._diff_ids[diff_id][1])
            served.append(plain)
            if stored.get("digest") != diff_id:
                with self._lock:
                    self._variants[diff_id] = (Descriptor.model_validate(stored),)
        return served

    def blob_variants(self, descriptor: Descriptor) -> tuple[Descriptor, ...]:
        """The compressed blob the stored manifest names for a layer served uncompressed."""
        with self._lock:
            return self._variants.get(str(descriptor.digest), ())

    def get_blob(self, info: BlobInfo) -> tuple[BinaryIO, int]:
        """The config's bytes, or a layer's uncompressed tar rebuilt from tar-split (spooled to a temp file)."""
        if info.digest is None:
            raise TransportError(f"{self._reference}: a blob can only be read by digest")
        wanted = str(info.digest)
        if wanted in self._diff_ids:
            layer_id, _ = self._diff_ids[wanted]
            out = tempfile.TemporaryFile(dir=os.path.join(self._store.options.graph_root, "tmp"))
            try:
                if _outside_user_namespace(self._store):  # files owned by subordinate ids: read them as podman does
                    _, size = run_in_userns(_layer_diff_into, self._store, layer_id, out)
                else:
                    _, size = _layer_diff_into(self._store, layer_id, out)
                out.seek(0)
            except BaseException:
                out.close()
                raise
            return out, size
        try:
            with self._store.reading() as view:
                data = view.image_big_data(self._image.id, wanted)
        except (FileNotFoundError, NotFound) as error:
            raise LocalImageNotFound(f"{self._reference}: no blob {wanted} in image {self._image.id}") from error
        return io.BytesIO(data), len(data)


@dataclass(frozen=True)
class _Staged:
    path: str
    digest: str
    size: int


class StorageDestination(ImageDestination):
    """Writes one image into a store at ``commit``; until then blobs are temp files in the store's ``tmp``.

    ``put_blob`` may be called from several threads; manifests and ``commit`` from one.
    """

    def __init__(self, reference: StorageReference, store: Store) -> None:
        self._reference = reference
        self._store = store
        self._staging = _Staging(os.path.join(store.options.graph_root, "tmp"))
        self._blobs: dict[str, _Staged] = {}
        self._config: tuple[str, bytes] | None = None
        self._manifest: tuple[bytes, str] | None = None
        self._lock = threading.Lock()
        self._committed = False

    @property
    def reference(self) -> ImageReference:
        return self._reference

    def supported_manifest_types(self) -> tuple[str, ...]:
        return DESTINATION_TYPES

    def has_threadsafe_put_blob(self) -> bool:
        return True

    def put_blob(self, stream: BinaryIO, info: BlobInfo, *, is_config: bool = False) -> BlobInfo:
        """Stream to a temp file, verified against ``info`` (digest computed when unknown); nothing kept on failure."""
        fd, path = tempfile.mkstemp(prefix="blob-", dir=self._staging.path)
        kept = False
        try:
            with os.fdopen(fd, "wb") as out:
                if info.digest is not None:
                    reader = VerifyingReader(stream, info.digest, info.size if info.size >= 0 else None)
                    while chunk := reader.read(_CHUNK):
                        out.write(chunk)
                    reader.verify()
                    digest, size = str(info.digest), reader.bytes_read
                else:
                    digester = Digester("sha256")
                    while chunk := stream.read(_CHUNK):
                        digester.update(chunk)
                        out.write(chunk)
                    if 0 <= info.size != digester.size:
                        raise SizeMismatch(info.size, digester.size)
                    digest, size = str(digester.digest()), digester.size
            staged = _Staged(path, digest, size)
            config = None
            if is_config:
                with open(path, "rb") as handle:
                    config = handle.read()
            with self._lock:
                old = self._blobs.get(digest)
                self._blobs[digest] = staged
                if config is not None:
                    self._config = (digest, config)
            if old is not None:
                _unlink(old.path)
            kept = True
        finally:
            if not kept:
                _unlink(path)
        return BlobInfo(Digest.parse(digest), size, info.media_type, info.urls, info.annotations)

    def put_manifest(self, raw: bytes, media_type: str, instance_digest: Digest | None = None) -> None:
        """Keep the top-level single-image manifest (ManifestTypeRejected for anything else)."""
        kind = _manifest_type(raw, media_type)
        if kind not in DESTINATION_TYPES or instance_digest is not None:
            raise ManifestTypeRejected(kind, DESTINATION_TYPES, "containers-storage: stores one image manifest")
        self._manifest = (raw, kind)

    def commit(self) -> None:
        """Create the layers (reusing existing chains), then the image with its name and big data; drop temps."""
        if self._manifest is None or self._config is None:
            raise TransportError(f"{self._reference}: commit without a manifest and a config")
        raw, _ = self._manifest
        document: dict[str, Any] = json.loads(raw)
        config_digest, config = self._config
        if str(document["config"]["digest"]) != config_digest:
            raise TransportError(f"{self._reference}: the manifest's config is not the config written")
        config_doc = json.loads(config)
        diff_ids: list[str] = list(config_doc.get("rootfs", {}).get("diff_ids", []))
        created = _created(config_doc)
        layers: list[dict[str, Any]] = document.get("layers", [])
        if len(diff_ids) != len(layers):
            raise TransportError(f"{self._reference}: the config lists {len(diff_ids)} diff_ids for {len(layers)} layers")
        staged = []
        for descriptor in layers:
            blob = self._blobs.get(str(descriptor["digest"]))
            if blob is None:
                raise TransportError(f"{self._reference}: layer {descriptor['digest']} was not written")
            staged.append(blob)
        big_data = pulled_big_data(config_digest, config, _sha256(raw), raw)
        image_id = records.image_id_for_config(config_digest)
        layer_plan = [(blob.path, diff_id) for blob, diff_id in zip(staged, diff_ids, strict=True)]
        if _outside_user_namespace(self._store):  # a library caller that did not re-exec: write in a child there
            run_in_userns(_write_image, self._store, layer_plan, image_id, big_data, created, self._reference.name)
        else:
            _write_image(self._store, layer_plan, image_id, big_data, created, self._reference.name)
        self._committed = True
        self.close()

    def close(self) -> None:
        """Remove the temp files and their directory; idempotent."""
        with self._lock:
            blobs, self._blobs = list(self._blobs.values()), {}
        for blob in blobs:
            _unlink(blob.path)
        self._staging.close()


class _Staging:
    """A destination's directory for blobs under the store's ``tmp``, flock'ed while the destination lives.

    A process killed mid-copy leaves its directory behind; the next destination
    made on the store removes every such directory whose lock it can take
    (its owner is gone), so killed pulls do not pile up blobs. A directory
    without its lock file yet (just made) is left alone for a minute.
    """

    PREFIX = "pallet-dest-"
    _LOCK = ".lock"
    _GRACE = 60.0

    def __init__(self, tmp: str) -> None:
        self.remove_stale(tmp)
        self.path = tempfile.mkdtemp(prefix=self.PREFIX, dir=tmp)
        # The lock file appears already locked: it is made and locked under another name, then renamed.
        # Made in place, another process's remove_stale could find it between the open and the flock,
        # take the lock and remove the live directory (seen with 8 processes pulling at once).
        draft = os.path.join(self.path, self._LOCK + ".new")
        fd = os.open(draft, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.rename(draft, os.path.join(self.path, self._LOCK))
        except BaseException:
            os.close(fd)
            shutil.rmtree(self.path, ignore_errors=True)
            raise
        self._fd: int | None = fd

    @classmethod
    def remove_stale(cls, tmp: str) -> list[str]:
        """Remove the staging directories in ``tmp`` that no live destination holds; their names."""
        removed: list[str] = []
        try:
            names = [name for name in os.listdir(tmp) if name.startswith(cls.PREFIX)]
        except FileNotFoundError:
            return removed
        for name in names:
            path = os.path.join(tmp, name)
            try:
                fd = os.open(os.path.join(path, cls._LOCK), os.O_RDWR | os.O_CLOEXEC)
            except FileNotFoundError:
                try:
                    young = time.time() - os.stat(path).st_mtime < cls._GRACE
                except FileNotFoundError:
                    continue
                if not young:
                    shutil.rmtree(path, ignore_errors=True)
                    removed.append(name)
                continue
            except NotADirectoryError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            try:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(name)
            finally:
                os.close(fd)
        return removed

    def close(self) -> None:
        """Remove the directory (with whatever is left in it) and release the lock; idempotent."""
        if self._fd is None:
            return
        shutil.rmtree(self.path, ignore_errors=True)
        os.close(self._fd)
        self._fd = None


def _outside_user_namespace(store: Store) -> bool:
    """True for a rootless store opened by an unprivileged process outside podman's user namespace.

    The tools run themselves again inside it (:mod:`pallet.storage.userns.reexec`),
    where the process is uid 0; a library caller that did not is helped by
    doing the store work in a child in the namespace (:func:`run_in_userns`).
    """
    return store.options.rootless and os.geteuid() != 0


def _write_image(store: Store, layers: list[tuple[str, str]], image_id: str, big_data: list[tuple[str, bytes]],
                 created: str, name: str) -> None:
    """Create the layers (path of the staged blob, diff_id; reusing existing chains), then the image and its name.

    Rootless (in podman's user namespace) device nodes cannot be made and are
    skipped, and ids outside the mapping fail clearly (or, with the overlay
    option ``ignore_chown_errors``, are given the namespace's root), as
    c/storage does there.
    """
    ignore_chown_errors = _parse_bool(store.options.driver_option("ignore_chown_errors") or "false")
    with store.writing() as view:
        parent = ""
        for path, diff_id in layers:
            layer_id = records.layer_chain_id(parent, diff_id)
            try:
                view.layer(layer_id)
            except LayerNotFound:
                options = ApplyOptions(whiteouts=store.driver.whiteouts, skip_devices=True,
                                       fsops=UsernsFsOps(ignore_chown_errors=ignore_chown_errors)) \
                    if store.options.rootless else None
                with open(path, "rb") as diff:
                    view.create_layer(parent, diff, layer_id=layer_id, uncompressed_digest=diff_id, options=options)
            parent = layer_id
        try:
            view.lookup_image(image_id)
        except NotFound:
            view.create_image(image_id, parent, (), big_data=big_data, created=created)
        else:
            for key, data in big_data:
                view.set_image_big_data(image_id, key, data)
        view.add_names(image_id, [name])


def _parse_bool(text: str) -> bool:
    """A boolean option value as Go's strconv.ParseBool reads it (anything else is false)."""
    return text in ("1", "t", "T", "TRUE", "true", "True")


def _layer_diff_into(store: Store, layer_id: str, out: BinaryIO) -> tuple[str, int]:
    """Rebuild a layer's tar into ``out`` (flushed: it may be written by a child); (digest, size)."""
    with store.reading() as view:
        result = view.layer_diff(layer_id, out)
    out.flush()
    return result


def _created(config: Any) -> str:
    """The config's ``created`` as Go prints it (c/image's image creation date), "" (now) when absent or invalid."""
    value = config.get("created") if isinstance(config, dict) else None
    if not isinstance(value, str):
        return ""
    try:
        return records.normalize_time(value)
    except ValueError:
        return ""


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


TRANSPORT = StorageTransport()
