"""containers-storage: transport: copied in with our copy engine, checked with the real podman and skopeo, copied back out."""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import io
import json
import shutil
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pallet.oci.copy import CopyOptions, Policy, copy_image
from pallet.oci.digest import Digest
from pallet.oci.errors import DigestMismatch, InvalidImageName, LocalImageNotFound, ManifestTypeRejected
from pallet.oci.transports import default_transports
from pallet.oci.transports.base import BlobInfo, SystemContext
from pallet.storage.config import StoreOptions
from pallet.storage.store import Store
from pallet.storage.transport import TRANSPORT, StorageReference
from pallet_testing.images import write_oci_layout

CTX = SystemContext()


@dataclass
class Roots:
    root: Path
    run: Path

    def spec(self, name: str) -> str:
        return f"containers-storage:[vfs@{self.root}+{self.run}]{name}"

    def open(self) -> Store:
        return Store.open(StoreOptions(graph_root=str(self.root), run_root=str(self.run), driver="vfs"))

    def podman(self, *args: str) -> str:
        argv = ["podman", "--root", str(self.root), "--runroot", str(self.run), "--tmpdir", str(self.run / "libpod"),
                "--storage-driver", "vfs", *args]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        return result.stdout


@pytest.fixture
def roots() -> Iterator[Roots]:
    """A graph root and a run root under /tmp (podman wants a run root shorter than 50 characters)."""
    base = Path(tempfile.mkdtemp(prefix="pallet-cs-", dir="/tmp"))
    yield Roots(base / "root", base / "run")
    shutil.rmtree(base, ignore_errors=True)


def _copy(source: str, dest: str) -> None:
    transports = default_transports()
    copy_image(transports.parse_image_name(source), transports.parse_image_name(dest), policy=Policy.accept_anything())


def _layout_image(out: Path, ref: str) -> tuple[dict[str, Any], bytes]:
    index = json.loads((out / "index.json").read_text())
    entry = next(m for m in index["manifests"] if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == ref)
    manifest = json.loads(_blob(out, entry["digest"]))
    return manifest, _blob(out, manifest["config"]["digest"])


def _blob(layout: Path, digest: str) -> bytes:
    return (layout / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()


def _plain(blob: bytes) -> bytes:
    return gzip.decompress(blob) if blob[:2] == b"\x1f\x8b" else blob


def test_parse_reference_round_trips_and_normalizes() -> None:
    ref = TRANSPORT.parse_reference("[vfs@/var/a+/run/b]busybox")
    assert isinstance(ref, StorageReference)
    assert ref.string_within_transport() == "[vfs@/var/a+/run/b]docker.io/library/busybox:latest"
    assert TRANSPORT.parse_reference(ref.string_within_transport()) == ref
    assert str(ref.docker_reference()) == "docker.io/library/busybox:latest"
    assert str(TRANSPORT.parse_reference("localhost/pallet/multi:v1")) == "containers-storage:localhost/pallet/multi:v1"
    by_id = TRANSPORT.parse_reference("[vfs@/a+/b]@" + "a" * 64)
    assert by_id.image_id == "a" * 64 and by_id.name == ""
    assert default_transports().parse_image_name("containers-storage:[vfs@/a+/b]x:1") == TRANSPORT.parse_reference("[vfs@/a+/b]x:1")
    for bad in ("", "[vfs@relative+/b]x", "[vfs@/a+/b", "[vfs@/a+/b]UPPER", "[vfs@/a+/b]"):
        with pytest.raises(InvalidImageName):
            TRANSPORT.parse_reference(bad)


def test_copy_in_seen_by_podman_and_skopeo_then_copied_out(
        roots: Roots, test_images: Any, podman: str, skopeo: str, tmp_path: Path) -> None:
    image = test_images.multi_layer
    assert all(_plain(layer.data) != layer.data for layer in image.layers)  # compressed: the source must rewrite
    layout = write_oci_layout(tmp_path / "in", {"v1": image})
    _copy(f"oci:{layout}:v1", roots.spec("localhost/pallet/multi:v1"))
    assert not list((roots.root / "tmp").iterdir())  # temps removed by commit

    image_id = image.config.digest.split(":", 1)[1]
    (listed,) = json.loads(roots.podman("images", "--format", "json"))
    assert listed["Id"] == image_id
    assert listed["Names"] == ["localhost/pallet/multi:v1"]
    created = json.loads(image.config.data)["created"]
    assert roots.open().lookup_image(image_id).created == created  # the record, as c/image sets it
    inspected = json.loads(roots.podman("image", "inspect", image_id))
    assert inspected[0]["Created"] == created

    diff_ids = [layer.diff_id for layer in image.layers]
    skopeo_out = tmp_path / "skopeo"
    result = subprocess.run([skopeo, "copy", "--quiet", "--insecure-policy", roots.spec("localhost/pallet/multi:v1"),
                             f"oci:{skopeo_out}:v1"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    manifest, config = _layout_image(skopeo_out, "v1")
    assert config == image.config.data
    assert json.loads(config)["rootfs"]["diff_ids"] == diff_ids
    assert ["sha256:" + hashlib.sha256(_plain(_blob(skopeo_out, d["digest"]))).hexdigest()
            for d in manifest["layers"]] == diff_ids

    ours = tmp_path / "ours"
    _copy(roots.spec("localhost/pallet/multi:v1"), f"oci:{ours}:v1")
    manifest, config = _layout_image(ours, "v1")
    assert config == image.config.data
    assert ["sha256:" + hashlib.sha256(_plain(_blob(ours, d["digest"]))).hexdigest()
            for d in manifest["layers"]] == diff_ids

    inspected = subprocess.run([skopeo, "inspect", roots.spec("localhost/pallet/multi:v1")], capture_output=True,
                               text=True, timeout=120, check=True)
    with TRANSPORT.parse_reference(f"[vfs@{roots.root}+{roots.run}]@{image_id}").new_source(CTX) as source:
        raw, media_type = source.get_manifest()
        assert raw == image.manifest.data  # served as stored, as c/image serves it: skopeo shows that digest
        assert json.loads(inspected.stdout)["Digest"] == image.digest
        served = source.layer_infos_for_copy()
        assert served is not None
        assert [str(d.digest) for d in served] == diff_ids  # what the store really holds: the uncompressed diffs
        assert {d.media_type for d in served} == {"application/vnd.oci.image.layer.v1.tar"}
        assert [[str(v.digest) for v in source.blob_variants(d)] for d in served] == [[layer.digest] for layer in image.layers]
        stream, size = source.get_blob(BlobInfo(Digest.parse(diff_ids[0])))
        with stream:
            data = stream.read()
        assert size == len(data) and "sha256:" + hashlib.sha256(data).hexdigest() == diff_ids[0]


def test_second_copy_reuses_layers_and_moves_the_name(roots: Roots, test_images: Any, tmp_path: Path) -> None:
    image = test_images.multi_layer
    layout = write_oci_layout(tmp_path / "in", {"v1": image})
    _copy(f"oci:{layout}:v1", roots.spec("localhost/a:1"))
    with roots.open().reading() as view:
        layers_before = [layer.id for layer in view.layers()]
    _copy(f"oci:{layout}:v1", roots.spec("localhost/b:1"))
    store = roots.open()
    with store.reading() as view:
        assert sorted(layer.id for layer in view.layers()) == sorted(layers_before)
        (only,) = view.images()
    assert only.names == ["localhost/a:1", "localhost/b:1"]


def test_destination_keeps_nothing_of_a_bad_blob_or_an_uncommitted_image(roots: Roots, test_images: Any) -> None:
    image = test_images.multi_layer
    ref = TRANSPORT.parse_reference(f"[vfs@{roots.root}+{roots.run}]localhost/x:1")
    with ref.new_destination(CTX) as dest:
        layer = image.layers[0]
        with pytest.raises(DigestMismatch):
            corrupt = layer.data[:-1] + bytes([layer.data[-1] ^ 1])
            dest.put_blob(io.BytesIO(corrupt), BlobInfo(Digest.parse(layer.digest), len(layer.data)))
        assert not list((roots.root / "tmp").glob("*/blob-*"))
        dest.put_blob(io.BytesIO(image.config.data), BlobInfo(Digest.parse(image.config.digest)), is_config=True)
        with pytest.raises(ManifestTypeRejected):
            dest.put_manifest(b'{"schemaVersion":2,"manifests":[]}', "application/vnd.oci.image.index.v1+json")
    assert not list((roots.root / "tmp").iterdir())
    assert roots.open().images() == []
    with pytest.raises(LocalImageNotFound):
        ref.new_source(CTX)


def test_default_store_comes_from_storage_conf_in_the_context(roots: Roots, test_images: Any, tmp_path: Path) -> None:
    conf = tmp_path / "storage.conf"
    conf.write_text(f'[storage]\ndriver = "vfs"\ngraphroot = "{roots.root}"\nrunroot = "{roots.run}"\n')
    context = SystemContext(environ=(("CONTAINERS_STORAGE_CONF", str(conf)), ("HOME", str(tmp_path))), home=tmp_path)
    layout = write_oci_layout(tmp_path / "in", {"v1": test_images.multi_layer})
    transports = default_transports()
    dest = transports.parse_image_name("containers-storage:localhost/pallet/multi:v1")
    copy_image(transports.parse_image_name(f"oci:{layout}:v1"), dest, CopyOptions(dest_context=context),
               policy=Policy.accept_anything())
    assert roots.open().lookup_image("localhost/pallet/multi:v1").id == test_images.multi_layer.config.digest[7:]
    with dest.new_source(context) as source:
        assert json.loads(source.get_manifest()[0])["config"]["digest"] == test_images.multi_layer.config.digest


def test_a_killed_destinations_temp_dir_is_removed_by_the_next_one(roots: Roots, test_images: Any) -> None:
    ref = TRANSPORT.parse_reference(f"[vfs@{roots.root}+{roots.run}]localhost/x:1")
    config = test_images.multi_layer.config
    code = (
        "import io, os, sys\n"
        "from pallet.oci.digest import Digest\n"
        "from pallet.oci.transports.base import BlobInfo, SystemContext\n"
        "from pallet.storage.transport import TRANSPORT\n"
        "dest = TRANSPORT.parse_reference(sys.argv[1]).new_destination(SystemContext())\n"
        "dest.put_blob(io.BytesIO(bytes.fromhex(sys.argv[2])), BlobInfo(Digest.parse(sys.argv[3])), is_config=True)\n"
        "os.kill(os.getpid(), 9)\n"
    )
    killed = subprocess.run([sys.executable, "-c", code, ref.string_within_transport(), config.data.hex(), config.digest],
                            capture_output=True, timeout=60)
    assert killed.returncode == -9, killed.stderr
    (left,) = (roots.root / "tmp").iterdir()
    assert [p.name for p in left.glob("blob-*")]  # the killed writer's blob, still there
    with ref.new_destination(CTX) as live:
        dest_dir = next((roots.root / "tmp").iterdir())
        assert dest_dir != left and not left.exists()  # removed: its lock was free
        with ref.new_destination(CTX):
            assert dest_dir.exists()  # a live destination's directory is kept (its lock is held)
        live.put_blob(io.BytesIO(config.data), BlobInfo(Digest.parse(config.digest)), is_config=True)
    assert not list((roots.root / "tmp").iterdir())


def test_a_destination_being_set_up_is_never_taken_for_a_killed_ones(roots: Roots, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process's stale-directory sweep, run at the worst moment of a new destination's set-up (just
    before it locks its lock file), must leave the new directory alone."""
    import pallet.storage.transport as transport_module

    tmp = roots.root / "tmp"
    tmp.mkdir(parents=True)
    real_flock = fcntl.flock
    swept: list[list[str]] = []

    def flock_after_a_sweep(fd: int, operation: int) -> None:
        if not swept:  # the new destination's own lock: another process sweeps first
            swept.append([])
            swept[0] = transport_module._Staging.remove_stale(str(tmp))
        real_flock(fd, operation)

    monkeypatch.setattr(transport_module.fcntl, "flock", flock_after_a_sweep)
    staging = transport_module._Staging(str(tmp))
    monkeypatch.setattr(transport_module.fcntl, "flock", real_flock)
    try:
        assert swept == [[]]
        assert os.path.isdir(staging.path) and os.path.exists(os.path.join(staging.path, ".lock"))
        assert transport_module._Staging.remove_stale(str(tmp)) == []  # locked: kept
    finally:
        staging.close()
    assert list(tmp.iterdir()) == []


def test_a_bracketed_store_is_rootless_when_the_process_is(tmp_path: Path) -> None:
    ref = TRANSPORT.parse_reference(f"[overlay@{tmp_path}/r+{tmp_path}/u]x:1")
    inside = SystemContext(environ=(("_CONTAINERS_ROOTLESS_UID", "1001"), ("HOME", str(tmp_path))), home=tmp_path)
    options = ref.store_options(inside)  # uid 0 in podman's namespace, for user 1001: user.overlay xattrs
    assert (options.rootless, options.rootless_uid, options.driver) == (True, 1001, "overlay")
    if os.geteuid() == 0:
        outside = ref.store_options(SystemContext(environ=(("HOME", str(tmp_path)),), home=tmp_path))
        assert (outside.rootless, outside.rootless_uid) == (False, 0)


def test_an_image_pushed_back_where_it_was_pulled_from_keeps_its_digests(
        roots: Roots, registry: Any, test_images: Any, tmp_path: Path) -> None:
    """Pull from a registry, push back: the compressed layers there are reused, not made anew, so the
    manifest digest stays although our gzip would not reproduce the layer's bytes (it was made at level 1)."""
    from pallet_testing import images
    from pallet_testing.push import push_image

    raw = gzip.decompress(test_images.multi_layer.layers[0].data)
    fast = images.Layer(images.OCI_LAYER["gzip"], gzip.compress(raw, compresslevel=1, mtime=0), diff_id=images.sha256(raw))
    assert gzip.compress(raw, mtime=0) != fast.data  # recompressing would change the layer's digest
    image = images.make_image((fast,))
    push_image(registry, "pallet/roundtrip", image, "v1")
    no_tls = SystemContext(tls_verify=False)
    transports = default_transports()
    options = CopyOptions(source_context=no_tls, dest_context=no_tls)
    copy_image(transports.parse_image_name(f"docker://{registry.host}/pallet/roundtrip:v1"),
               transports.parse_image_name(roots.spec(f"{registry.host}/pallet/roundtrip:v1")), options,
               policy=Policy.accept_anything())
    for repository in ("pallet/roundtrip", "pallet/elsewhere"):  # the same repository, and another one (a mount)
        result = copy_image(transports.parse_image_name(roots.spec(f"{registry.host}/pallet/roundtrip:v1")),
                            transports.parse_image_name(f"docker://{registry.host}/{repository}:back"), options,
                            policy=Policy.accept_anything())
        assert str(result.manifest_digest) == image.digest, repository
        assert [outcome.action for outcome in result.blobs if not outcome.is_config][0] in ("skipped", "mounted")

    fresh = tmp_path / "layout"  # where the compressed blob is not: compressed anew, a new digest, as c/image does
    result = copy_image(transports.parse_image_name(roots.spec(f"{registry.host}/pallet/roundtrip:v1")),
                        transports.parse_image_name(f"oci:{fresh}:v1"), options, policy=Policy.accept_anything())
    assert str(result.manifest_digest) != image.digest
