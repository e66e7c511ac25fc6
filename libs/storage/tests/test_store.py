"""store: layers and images created under the documented locks, checked with the real podman and skopeo.

A tiny vfs driver stands in for the driver package (per-layer directory
``vfs/dir/<id>``, a copy of the parent, as c/storage's vfs driver makes it).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import random
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pallet.storage import errors, records
from pallet.storage.config import StoreOptions
from pallet.storage.image_store import pulled_big_data
from pallet.storage.layer_store import LayerInUse
from pallet.storage.store import ImageInUse, Store
from pallet.storage.tarengine import WhiteoutFormat
from pallet.storage.tarengine.errors import TarEngineError
from pallet_testing import images


class VfsDriver:
    """The vfs layout: ``<graph root>/vfs/dir/<layer id>``, a full copy of the parent, then the diff applied."""

    name = "vfs"
    whiteouts = WhiteoutFormat.VFS

    def __init__(self, graph_root: str) -> None:
        self.home = Path(graph_root) / "vfs" / "dir"

    def create(self, layer_id: str, parent: str) -> str:
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        target = self.home / layer_id
        self.remove(layer_id)
        if parent:
            subprocess.run(["cp", "-a", "--", str(self.home / parent), str(target)], check=True)
        else:
            target.mkdir(0o755)
        return str(target)

    def remove(self, layer_id: str) -> None:
        shutil.rmtree(self.home / layer_id, ignore_errors=True)

    def diff_roots(self, layer_id: str) -> Sequence[str]:
        return [str(self.home / layer_id)]


@dataclass
class Roots:
    root: Path
    run: Path

    @property
    def options(self) -> StoreOptions:
        return StoreOptions(graph_root=str(self.root), run_root=str(self.run), driver="vfs")

    def open(self) -> Store:
        return Store.open(self.options, VfsDriver(str(self.root)))

    def spec(self, ref: str) -> str:
        return f"containers-storage:[vfs@{self.root}+{self.run}]{ref}"

    def podman(self, *args: str) -> str:
        argv = ["podman", "--root", str(self.root), "--runroot", str(self.run), "--tmpdir", str(self.run / "libpod"),
                "--storage-driver", "vfs", *args]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        return result.stdout


@pytest.fixture
def roots(tmp_path: Path) -> Iterator[Roots]:
    """A graph root under tmp_path and a short run root (podman wants < 50 characters)."""
    run = Path(tempfile.mkdtemp(prefix="pallet-run-", dir="/tmp"))
    yield Roots(tmp_path / "root", run)
    shutil.rmtree(run, ignore_errors=True)


def put_image(store: Store, image: images.TestImage, names: Sequence[str], index: images.TestIndex | None = None) -> str:
    """Pull ``image`` into the store as c/image does (chain IDs, config and manifest big data)."""
    parent = ""
    with store.writing() as view:
        for layer in image.layers:
            layer_id = records.layer_chain_id(parent, layer.diff_id)
            if not any(known.id == layer_id for known in view.layers()):
                view.create_layer(parent, io.BytesIO(layer.data), layer_id=layer_id, uncompressed_digest=layer.diff_id)
            parent = layer_id
        image_id = records.image_id_for_config(image.config.digest)
        big_data = pulled_big_data(image.config.digest, image.config.data, image.manifest.digest, image.manifest.data,
                                   index.digest if index else "", index.index.data if index else b"")
        view.create_image(image_id, parent, names, "{}", big_data, created=images.CREATED)
    return image_id


# -- layout and locks -------------------------------------------------------------------------------


def test_open_makes_the_layout_and_is_idempotent(roots: Roots) -> None:
    roots.open()
    roots.open()
    for lock in ("storage.lock", "userns.lock", "vfs-layers/layers.lock", "vfs-images/images.lock",
                 "vfs-containers/containers.lock"):
        assert (roots.root / lock).is_file()
    assert (roots.run / "vfs-layers" / "mountpoints.lock").is_file()
    assert (roots.root / "defaultNetworkBackend").read_text() in ("netavark", "cni")
    assert not (roots.root / "overlay").exists()  # never pin a vfs store to another driver


def test_every_write_records_a_new_token_and_another_store_reloads(roots: Roots, test_images: Any) -> None:
    first, second = roots.open(), Store.open(roots.options, VfsDriver(str(roots.root)))
    assert second.images() == []
    lock = roots.root / "vfs-images" / "images.lock"
    image_id = put_image(first, test_images.multi_layer, ["localhost/multi:v1"])
    token = lock.read_bytes()
    assert len(token) == 64
    assert [image.id for image in second.images()] == [image_id]
    with first.writing() as view:
        view.add_names(image_id, ["localhost/multi:v2"])
    assert lock.read_bytes() != token
    assert second.lookup_image("localhost/multi:v2").id == image_id


def test_layers_reload_on_an_mtime_change_even_without_a_new_token(roots: Roots, test_images: Any) -> None:
    store = roots.open()
    put_image(store, test_images.single_layer, ["localhost/a:1"])
    assert store.lookup_image("localhost/a:1")
    path = roots.root / "vfs-layers" / "layers.json"
    raw = json.loads(path.read_text())
    raw[0]["names"] = ["renamed-elsewhere"]
    time.sleep(0.01)
    records.atomic_write(str(path), json.dumps(raw).encode())  # a writer that forgot the token
    with store.reading() as view:
        assert view.layer("renamed-elsewhere").id == raw[0]["id"]


def test_wrong_driver_refused(roots: Roots) -> None:
    with pytest.raises(errors.ConfigError):
        Store.open(StoreOptions(str(roots.root), str(roots.run), driver="overlay"), VfsDriver(str(roots.root)))


# -- layers -------------------------------------------------------------------------------------------


def test_layers_complete_with_digests_and_diff_round_trips(roots: Roots, test_images: Any) -> None:
    store = roots.open()
    image = test_images.multi_layer
    put_image(store, image, ["localhost/multi:v1"])
    raw = json.loads((roots.root / "vfs-layers" / "layers.json").read_text())
    assert [r["diff-digest"] for r in raw] == [layer.diff_id for layer in image.layers]
    assert [r["compressed-diff-digest"] for r in raw] == [layer.digest for layer in image.layers]
    assert [r["compressed-size"] for r in raw] == [layer.size for layer in image.layers]
    assert all(r["compression"] == 2 and "flags" not in r for r in raw)
    with store.reading() as view:
        for layer, record in zip(image.layers, raw):
            out = io.BytesIO()
            assert view.layer_diff(record["id"], out) == (layer.diff_id, record["diff-size"])
            assert out.getvalue() == gzip.decompress(layer.data)


def test_a_failed_create_leaves_nothing(roots: Roots, test_images: Any) -> None:
    store = roots.open()
    data = test_images.multi_layer.layers[0].data
    with store.writing() as view:
        with pytest.raises(TarEngineError):
            view.create_layer("", io.BytesIO(data[: len(data) // 2]))
        with pytest.raises(Exception, match="expected"):
            view.create_layer("", io.BytesIO(data), uncompressed_digest="sha256:" + "0" * 64)
        assert view.layers() == []
    assert json.loads((roots.root / "vfs-layers" / "layers.json").read_text()) == []
    assert list((roots.root / "vfs-layers").glob("*.tar-split.gz")) == []
    assert list((roots.root / "vfs" / "dir").iterdir()) == []


def test_delete_layer_checks_references(roots: Roots, test_images: Any) -> None:
    store = roots.open()
    put_image(store, test_images.multi_layer, ["localhost/multi:v1"])
    with store.writing() as view:
        base, middle, top = view.layers()
        with pytest.raises(LayerInUse):
            view.delete_layer(base.id)  # a parent
        with pytest.raises(LayerInUse):
            view.delete_layer(top.id)  # an image's top layer
        with pytest.raises(errors.LayerNotFound):
            view.delete_layer("f" * 64)


# -- images -------------------------------------------------------------------------------------------


def test_image_listed_by_podman_and_copied_by_skopeo_with_same_diff_ids(
        roots: Roots, test_images: Any, podman: str, skopeo: str, tmp_path: Path) -> None:
    store = roots.open()
    image = test_images.multi_layer
    image_id = put_image(store, image, ["localhost/multi:v1"])
    (listed,) = json.loads(roots.podman("images", "--format", "json"))
    assert listed["Id"] == image_id
    assert listed["Names"] == ["localhost/multi:v1"]
    assert listed["Digest"] == image.manifest.digest
    out = tmp_path / "oci"
    result = subprocess.run([skopeo, "copy", "--quiet", "--insecure-policy", roots.spec("localhost/multi:v1"),
                             f"oci:{out}:t"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    index = json.loads((out / "index.json").read_text())
    manifest = json.loads(_blob(out, index["manifests"][0]["digest"]))
    config = json.loads(_blob(out, manifest["config"]["digest"]))
    assert config["rootfs"]["diff_ids"] == [layer.diff_id for layer in image.layers]
    for descriptor, layer in zip(manifest["layers"], image.layers):
        blob = _blob(out, descriptor["digest"])
        plain = gzip.decompress(blob) if blob[:2] == b"\x1f\x8b" else blob
        assert "sha256:" + hashlib.sha256(plain).hexdigest() == layer.diff_id


def test_image_size_is_podmans(roots: Roots, test_images: Any, podman: str) -> None:
    store = roots.open()
    image_id = put_image(store, test_images.multi_layer, ["localhost/multi:v1"])
    with store.reading() as view:
        size = view.image_size(image_id)
        layer = view.layers()[0]
    (listed,) = json.loads(roots.podman("images", "--format", "json"))
    assert size == listed["Size"] > sum(len(item.data) for item in test_images.multi_layer.layers)
    layers_json = roots.root / "vfs-layers" / "layers.json"  # an unknown size is measured from tar-split
    records_ = json.loads(layers_json.read_text())
    for record in records_:
        if record["id"] == layer.id:
            del record["diff-size"], record["diff-digest"]
    layers_json.write_text(json.dumps(records_))
    with roots.open().reading() as view:
        assert view.image_size(image_id) == size


def _blob(layout: Path, digest: str) -> bytes:
    return (layout / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()


def test_names_move_between_images_and_podman_agrees(roots: Roots, test_images: Any, podman: str) -> None:
    store = roots.open()
    first = put_image(store, test_images.multi_layer, ["localhost/a:1", "localhost/shared:1"])
    second = put_image(store, test_images.single_layer, ["localhost/b:1"])
    with store.writing() as view:
        with pytest.raises(errors.DuplicateName):
            view.create_image(records.random_id(), "", ["localhost/a:1"])
        view.add_names(second, ["localhost/shared:1"])
        assert view.lookup_image(first).names == ["localhost/a:1"]
        assert view.lookup_image(first).names_history[:2] == ["localhost/shared:1", "localhost/a:1"]
        assert view.lookup_image("localhost/shared:1").id == second
        view.remove_names(second, ["localhost/b:1", "localhost/absent:1"])
        assert view.lookup_image(second[:12]).names == ["localhost/shared:1"]
        assert view.lookup_image("sha256:" + second).id == second
    listed = {entry["Id"]: entry.get("Names") for entry in json.loads(roots.podman("images", "--format", "json"))}
    assert listed == {first: ["localhost/a:1"], second: ["localhost/shared:1"]}
    roots.podman("tag", "localhost/a:1", "localhost/by-podman:1")
    assert store.lookup_image("localhost/by-podman:1").id == first  # token changed by podman: we reload


def test_delete_image_removes_unshared_layers_only(roots: Roots, test_images: Any, podman: str) -> None:
    store = roots.open()
    multi = test_images.multi_layer
    first = put_image(store, multi, ["localhost/multi:v1"])
    short = images.make_image(multi.layers[:1], labels={"short": "yes"})  # shares the base layer
    second = put_image(store, short, ["localhost/short:v1"])
    with store.writing() as view:
        assert len(view.delete_image(first)) == 2
        assert [layer.id for layer in view.layers()] == [records.layer_chain_id("", multi.layers[0].diff_id)]
    assert json.loads(roots.podman("images", "--format", "json"))[0]["Id"] == second
    with store.writing() as view:
        assert len(view.delete_image("localhost/short:v1")) == 1
        assert view.layers() == [] and view.images() == []
        with pytest.raises(errors.ImageNotFound):
            view.delete_image(second)
    assert list((roots.root / "vfs" / "dir").iterdir()) == []
    assert not (roots.root / "vfs-images" / second).exists()
    assert json.loads(roots.podman("images", "--format", "json")) == []


def test_delete_image_refused_while_a_container_uses_it(roots: Roots, test_images: Any, podman: str) -> None:
    store = roots.open()
    image_id = put_image(store, test_images.multi_layer, ["localhost/multi:v1"])
    roots.podman("create", "--name", "c1", "localhost/multi:v1", "true")  # a storage container record + RW layer
    with store.writing() as view:
        with pytest.raises(ImageInUse):
            view.delete_image(image_id)
    roots.podman("rm", "c1")
    with store.writing() as view:
        assert len(view.delete_image(image_id)) == 3
    assert json.loads(roots.podman("images", "--format", "json")) == []


# -- crash safety and concurrency ---------------------------------------------------------------------


class SlowStream(io.RawIOBase):
    """Hands out ``data`` in ``chunk``-byte reads; after the first read it signals ``ready`` and then crawls."""

    def __init__(self, data: bytes, ready: int = -1, chunk: int = 512, pause: float = 0.2) -> None:
        self._data = data
        self._pos = 0
        self._ready = ready
        self._chunk = chunk
        self._pause = pause

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._pos:
            time.sleep(self._pause)
        chunk = self._data[self._pos:self._pos + min(self._chunk, len(buffer))]
        buffer[:len(chunk)] = chunk
        self._pos += len(chunk)
        if self._ready >= 0:
            os.write(self._ready, b"x")
            os.close(self._ready)
            self._ready = -1
        return len(chunk)


def _killed_in_create_layer(roots: Roots, data: bytes) -> None:
    """Fork a child that creates a layer from a slow stream; SIGKILL it once it is streaming the diff."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        try:
            os.close(read_end)
            with roots.open().writing() as view:
                view.create_layer("", SlowStream(data, write_end))  # type: ignore[arg-type]
        finally:
            os._exit(3)
    os.close(write_end)
    assert os.read(read_end, 1) == b"x"
    time.sleep(0.3)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    os.close(read_end)
    raw = json.loads((roots.root / "vfs-layers" / "layers.json").read_text())
    assert [r.get("flags") for r in raw] == [None, {"incomplete": True}]
    assert len(list((roots.root / "vfs" / "dir").iterdir())) == 2


def test_sigkill_in_create_layer_leaves_an_incomplete_record_that_the_next_writer_removes(
        roots: Roots, test_images: Any, podman: str) -> None:
    store = roots.open()
    put_image(store, test_images.single_layer, ["localhost/kept:1"])
    _killed_in_create_layer(roots, test_images.multi_layer.layers[1].data)
    with store.reading() as view:
        assert len(view.layers()) == 1  # readers never see the half-layer
    with roots.open().writing() as view:
        assert len(view.layers()) == 1
    raw = json.loads((roots.root / "vfs-layers" / "layers.json").read_text())
    assert len(raw) == 1 and "flags" not in raw[0]
    assert len(list((roots.root / "vfs" / "dir").iterdir())) == 1
    assert list((roots.root / "vfs-layers").glob("*.tar-split.gz")) == [
        roots.root / "vfs-layers" / f"{raw[0]['id']}.tar-split.gz"]
    assert [e["Names"] for e in json.loads(roots.podman("images", "--format", "json"))] == [["localhost/kept:1"]]


def test_podman_lists_a_store_we_left_incomplete_and_our_reader_agrees(
        roots: Roots, test_images: Any, podman: str) -> None:
    store = roots.open()
    put_image(store, test_images.single_layer, ["localhost/kept:1"])
    _killed_in_create_layer(roots, test_images.multi_layer.layers[1].data)
    assert [e["Names"] for e in json.loads(roots.podman("images", "--format", "json"))] == [["localhost/kept:1"]]
    roots.podman("image", "rm", "localhost/kept:1")  # podman's write load also drops the half-layer
    assert json.loads((roots.root / "vfs-layers" / "layers.json").read_text()) in ([], None)
    with store.writing() as view:
        assert view.layers() == [] and view.images() == []


def _name_worker(roots: Roots, worker: int, image_ids: Sequence[str], rounds: int) -> None:
    store = roots.open()
    for k in range(rounds):
        with store.writing() as view:
            view.add_names(image_ids[(k // 2) % 2], [f"localhost/w{worker}-{k}:t"])
            if k % 2:  # the even name added just before goes again
                view.remove_names(image_ids[(k // 2) % 2], [f"localhost/w{worker}-{k - 1}:t"])


def test_four_processes_changing_names_lose_nothing(roots: Roots, test_images: Any, podman: str) -> None:
    store = roots.open()
    image_ids = [put_image(store, test_images.multi_layer, ["localhost/a:1"]),
                 put_image(store, test_images.single_layer, ["localhost/b:1"])]
    rounds, pids = 30, []
    for worker in range(4):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                _name_worker(roots, worker, image_ids, rounds)
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    assert all(os.waitpid(pid, 0)[1] == 0 for pid in pids)
    expected: dict[str, set[str]] = {image_id: set() for image_id in image_ids}
    expected[image_ids[0]].add("localhost/a:1")
    expected[image_ids[1]].add("localhost/b:1")
    for worker in range(4):
        for k in range(1, rounds, 2):
            expected[image_ids[(k // 2) % 2]].add(f"localhost/w{worker}-{k}:t")
    got = {image.id: set(image.names) for image in store.images()}
    assert got == expected
    listed = {e["Id"]: set(e["Names"]) for e in json.loads(roots.podman("images", "--format", "json"))}
    assert listed == expected


def test_threads_of_one_process_share_the_store_and_lose_nothing(roots: Roots, test_images: Any) -> None:
    store = roots.open()
    image_id = put_image(store, test_images.single_layer, ["localhost/a:1"])

    def work(worker: int) -> None:
        for k in range(20):
            with store.writing() as view:
                view.add_names(image_id, [f"localhost/t{worker}-{k}:t"])
            with store.reading() as view:
                assert f"localhost/t{worker}-{k}:t" in view.lookup_image(image_id).names

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(store.lookup_image(image_id).names) == 81
    assert len(Store.open(roots.options, VfsDriver(str(roots.root))).lookup_image(image_id).names) == 81


def test_a_failed_write_block_is_not_kept_in_the_cache(roots: Roots, test_images: Any,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    store = roots.open()
    image_id = put_image(store, test_images.single_layer, ["localhost/a:1"])
    with store.reading() as view:
        view.lookup_image(image_id).names.append("localhost/copy:1")  # a copy: the store is not changed
    assert store.lookup_image(image_id).names == ["localhost/a:1"]

    def refuse(path: str, items: Any) -> None:
        raise OSError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(records, "save_records", refuse)
        with pytest.raises(OSError), store.writing() as view:
            view.add_names(image_id, ["localhost/unsaved:1"])  # changed in memory, never saved
    assert store.lookup_image(image_id).names == ["localhost/a:1"]


def test_multi_arch_pull_keeps_the_list_digest_and_skopeo_reads_the_instance(
        roots: Roots, test_images: Any, podman: str, skopeo: str) -> None:
    store = roots.open()
    index = test_images.two_platform_index
    image = index.images[0]
    image_id = put_image(store, image, ["localhost/multi-arch:1"], index)
    (listed,) = json.loads(roots.podman("images", "--format", "json"))
    assert (listed["Id"], listed["Digest"]) == (image_id, index.digest)
    assert set(listed["RepoDigests"]) == {f"localhost/multi-arch@{index.digest}",
                                          f"localhost/multi-arch@{image.manifest.digest}"}
    with store.reading() as view:
        assert view.image_big_data(image_id, "manifest") == image.manifest.data
        assert view.image_big_data(image_id, f"manifest-{index.digest}") == index.index.data
    result = subprocess.run([skopeo, "inspect", "--raw", roots.spec("localhost/multi-arch:1")],
                            capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == image.manifest.data
    assert (roots.root / "vfs-images" / image_id / records.big_data_file_name(image.config.digest)).is_file()


def test_podman_runs_an_image_we_created(roots: Roots, test_images: Any, podman: str, crun: str) -> None:
    put_image(roots.open(), test_images.multi_layer, ["localhost/multi:v1"])
    out = roots.podman("run", "--rm", "--net=none", "localhost/multi:v1", "sh", "-c",
                       "echo ok; cat /hello.txt; ls -A /srv; ls -A /opt/app")
    assert out.split() == ["ok", "hello", "from", "the", "third", "layer", "v2.txt"]


def test_our_writers_and_podman_tag_at_once_lose_no_write(roots: Roots, test_images: Any, podman: str) -> None:
    """No write is lost (names-history only grows, on either side, so it holds every name ever written).

    ``names`` itself may miss some of ours: podman 4.3's ``tag`` is a
    read-modify-write (SetNames with the names it read before locking), and
    it drops names added in between; four podman-only taggers lose their own
    names the same way (measured: 22 of 24 kept).
    """
    store = roots.open()
    image_id = put_image(store, test_images.single_layer, ["localhost/a:1"])
    pids = []
    for worker in range(3):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                child = roots.open()
                for k in range(20):
                    with child.writing() as view:
                        view.add_names(image_id, [f"localhost/w{worker}-{k}:t"])
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    for k in range(8):  # podman (Go, c/storage 1.43) takes the same locks meanwhile
        roots.podman("tag", image_id, f"localhost/pod-{k}:t")
    assert all(os.waitpid(pid, 0)[1] == 0 for pid in pids)
    expected = {"localhost/a:1", *(f"localhost/w{w}-{k}:t" for w in range(3) for k in range(20)),
                *(f"localhost/pod-{k}:t" for k in range(8))}
    image = store.lookup_image(image_id)
    assert set(image.names_history) == expected, "a write was lost"
    assert {"localhost/a:1", *(f"localhost/pod-{k}:t" for k in range(8))} <= set(image.names)
    assert set(json.loads(roots.podman("images", "--format", "json"))[0]["Names"]) == set(image.names)


def test_an_image_skopeo_wrote_is_read_rebuilt_and_deleted_by_us(
        roots: Roots, test_images: Any, skopeo: str, podman: str, tmp_path: Path) -> None:
    image = test_images.multi_layer
    images.write_oci_layout(tmp_path / "oci", {"v1": image})
    result = subprocess.run([skopeo, "copy", "--quiet", "--insecure-policy", f"oci:{tmp_path / 'oci'}:v1",
                             roots.spec("localhost/go:v1")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    store = roots.open()
    with store.reading() as view:
        found = view.lookup_image("localhost/go:v1")
        assert found.id == records.image_id_for_config(image.config.digest)
        assert view.image_big_data(found.id, image.config.digest) == image.config.data
        for layer in image.layers:
            out = io.BytesIO()
            assert view.layer_diff(records.layer_chain_id(_parent_of(view.layers(), layer.diff_id), layer.diff_id),
                                   out)[0] == layer.diff_id
    with store.writing() as view:
        assert len(view.delete_image("localhost/go:v1")) == 3
    assert json.loads(roots.podman("images", "--format", "json")) == []
    assert list((roots.root / "vfs" / "dir").iterdir()) == []


def _parent_of(layers: Sequence[records.Layer], diff_id: str) -> str:
    return next(layer.parent for layer in layers if layer.uncompressed_digest == diff_id)


@pytest.mark.parametrize("driver", ["vfs", "overlay"])
def test_the_driver_package_behind_the_store_and_podman_runs_the_image(
        roots: Roots, test_images: Any, podman: str, crun: str, driver: str) -> None:
    options = StoreOptions(graph_root=str(roots.root), run_root=str(roots.run), driver=driver)
    store = Store.open(options)
    image_id = put_image(store, test_images.multi_layer, ["localhost/multi:v1"])
    with store.reading() as view:
        for layer in view.layers():
            assert view.layer_diff(layer.id, io.BytesIO())[0] == layer.uncompressed_digest
    argv = ["podman", "--root", str(roots.root), "--runroot", str(roots.run), "--tmpdir", str(roots.run / "libpod"),
            "--storage-driver", driver]
    listed = subprocess.run([*argv, "images", "--format", "{{.ID}}", "--no-trunc"], capture_output=True, text=True)
    assert listed.stdout.split() == [f"sha256:{image_id}"], listed.stderr
    ran = subprocess.run([*argv, "run", "--rm", "--net=none", "localhost/multi:v1", "sh", "-c",
                          "cat /hello.txt; ls -A /srv /opt/app"], capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == ["hello", "from", "the", "third", "layer", "/opt/app:", "v2.txt", "/srv:"]
    with store.writing() as view:
        assert len(view.delete_image(image_id)) == 3
    assert str(roots.root) not in Path("/proc/self/mounts").read_text()  # run --rm unmounted its layer


def _slow_pull(roots: Roots, image: images.TestImage) -> None:
    """put_image with every layer streamed slowly (16 KiB every 10 ms)."""
    store, parent = roots.open(), ""
    with store.writing() as view:
        for layer in image.layers:
            layer_id = records.layer_chain_id(parent, layer.diff_id)
            if not any(known.id == layer_id for known in view.layers()):
                stream = SlowStream(layer.data, chunk=16384, pause=0.01)
                view.create_layer(parent, stream, layer_id=layer_id, uncompressed_digest=layer.diff_id)  # type: ignore[arg-type]
            parent = layer_id
    put_image(store, image, ["localhost/multi:v1"])


def test_sigkill_of_a_pull_at_random_points_then_ours_and_podman_work_and_a_repull_succeeds(
        roots: Roots, test_images: Any, podman: str) -> None:
    image = test_images.multi_layer
    chance = random.Random(20261128)
    for _ in range(8):
        pid = os.fork()
        if pid == 0:
            try:
                _slow_pull(roots, image)
            finally:
                os._exit(0)
        time.sleep(chance.uniform(0.0, 1.2))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        roots.podman("images")  # podman copes with whatever we left (its write load drops a half-layer)
        with roots.open().writing() as view:
            assert all(not layer.incomplete for layer in view.layers())
            for found in view.images():
                view.delete_image(found.id)
            for layer in reversed(view.layers()):  # complete layers of a cut-off pull: a fresh pull next time
                view.delete_layer(layer.id)
        raw = json.loads((roots.root / "vfs-layers" / "layers.json").read_text()) or []
        assert all("flags" not in record for record in raw)
        assert {record["id"] for record in raw} == {path.name for path in (roots.root / "vfs" / "dir").iterdir()}
    image_id = put_image(roots.open(), image, ["localhost/multi:v1"])
    assert json.loads(roots.podman("images", "--format", "json"))[0]["Id"] == image_id


def test_four_processes_pulling_and_deleting_images_that_share_layers_leave_no_orphan(
        roots: Roots, test_images: Any, podman: str) -> None:
    multi = test_images.multi_layer
    variants = [images.make_image(multi.layers[:depth], labels={"worker": str(n)}) for n, depth in enumerate((1, 2, 3, 1))]
    roots.open()
    pids = []
    for worker, image in enumerate(variants):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                store = roots.open()
                for _ in range(5):
                    image_id = put_image(store, image, [f"localhost/w{worker}:1"])
                    with store.writing() as view:
                        view.delete_image(image_id)
                put_image(store, image, [f"localhost/w{worker}:1"])
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    assert all(os.waitpid(pid, 0)[1] == 0 for pid in pids)
    with roots.open().reading() as view:
        layers = {layer.id: layer for layer in view.layers()}
        assert len(view.images()) == 4 and len(layers) == 3
        for record in view.images():  # every image's chain is there
            layer_id = record.top_layer
            while layer_id:
                layer_id = layers[layer_id].parent
    raw = json.loads((roots.root / "vfs-layers" / "layers.json").read_text())
    assert all("flags" not in record for record in raw)
    assert {path.name for path in (roots.root / "vfs" / "dir").iterdir()} == set(layers)
    assert {path.name for path in (roots.root / "vfs-layers").glob("*.tar-split.gz")} == {f"{i}.tar-split.gz" for i in layers}
    listed = json.loads(roots.podman("images", "--format", "json"))
    assert sorted(name for entry in listed for name in entry["Names"]) == [f"localhost/w{n}:1" for n in range(4)]
