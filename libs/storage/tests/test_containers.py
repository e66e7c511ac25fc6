"""store: containers (read-write layers, records, directories, big data), mount counts, prune and disk usage,
checked with the real buildah and podman sharing the store (root, vfs and overlay)."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import sys
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pallet.storage import errors, records
from pallet.storage.config import StoreOptions
from pallet.storage.drivers import _mount
from pallet.storage.image_store import pulled_big_data
from pallet.storage.layer_store import LayerInUse
from pallet.storage.store import ImageInUse, Store
from pallet_testing import images

DRIVERS = ["vfs", "overlay"]


@dataclass
class Roots:
    """A short graph root and run root (podman wants run roots under ~50 chars) for one driver."""

    top: Path
    driver: str

    @property
    def root(self) -> Path:
        return self.top / "g"

    @property
    def run(self) -> Path:
        return self.top / "r"

    @property
    def options(self) -> StoreOptions:
        return StoreOptions(graph_root=str(self.root), run_root=str(self.run), driver=self.driver)

    def open(self) -> Store:
        return Store.open(self.options)

    def _run(self, argv: Sequence[str], check: bool = True) -> str:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        if check:
            assert result.returncode == 0, result.stderr
        return result.stdout

    def buildah(self, *args: str, check: bool = True) -> str:
        return self._run(["buildah", "--root", str(self.root), "--runroot", str(self.run),
                          "--storage-driver", self.driver, *args], check)

    def podman(self, *args: str) -> str:
        return self._run(["podman", "--root", str(self.root), "--runroot", str(self.run), "--tmpdir",
                          str(self.run / "libpod"), "--storage-driver", self.driver, *args])

    def raw(self, name: str) -> Any:
        """A records file as JSON (``[]`` when missing or ``null``)."""
        path = self.run / f"{self.driver}-layers" / name if name == "mountpoints.json" else self.root / name
        return (json.loads(path.read_text()) or []) if path.exists() else []


@pytest.fixture(params=DRIVERS)
def roots(request: pytest.FixtureRequest) -> Iterator[Roots]:
    top = Path(tempfile.mkdtemp(prefix="pc-", dir="/tmp"))
    yield Roots(top, request.param)
    for line in reversed(Path("/proc/self/mountinfo").read_text().splitlines()):
        point = line.split(" ")[4]
        if point.startswith(str(top)):
            subprocess.run(["umount", "-l", point], check=False, capture_output=True)
    shutil.rmtree(top, ignore_errors=True)


def put_image(store: Store, image: images.TestImage, names: Sequence[str]) -> str:
    """Pull ``image`` into the store as c/image does (chain IDs, config and manifest big data)."""
    parent = ""
    with store.writing() as view:
        for layer in image.layers:
            layer_id = records.layer_chain_id(parent, layer.diff_id)
            if not any(known.id == layer_id for known in view.layers()):
                view.create_layer(parent, io.BytesIO(layer.data), layer_id=layer_id, uncompressed_digest=layer.diff_id)
            parent = layer_id
        image_id = records.image_id_for_config(image.config.digest)
        big_data = pulled_big_data(image.config.digest, image.config.data, image.manifest.digest, image.manifest.data)
        view.create_image(image_id, parent, names, "{}", big_data, created=images.CREATED)
    return image_id


# -- records, layers and directories ------------------------------------------------------------------


def test_create_container_writes_the_record_layer_and_dirs_as_c_storage(roots: Roots, test_images: Any) -> None:
    store = roots.open()
    image_id = put_image(store, test_images.multi_layer, ["localhost/multi:v1"])
    metadata = json.dumps({"image-name": "localhost/multi:v1", "image-id": image_id, "name": "c1", "created-at": 1})
    with store.writing() as view:
        made = view.create_container("localhost/multi:v1", names=["c1", "c1"], metadata=metadata)
        top = view.lookup_image(image_id).top_layer
    (raw,) = roots.raw(f"{roots.driver}-containers/containers.json")
    assert list(raw) == ["id", "names", "image", "layer", "metadata", "created", "flags"]
    assert (raw["id"], raw["names"], raw["image"], raw["layer"]) == (made.id, ["c1"], image_id, made.layer)
    assert raw["flags"] == {"MountLabel": "", "ProcessLabel": ""} and raw["metadata"] == metadata
    assert records.valid_time(raw["created"])
    layer = next(r for r in roots.raw(f"{roots.driver}-layers/layers.json") if r["id"] == made.layer)
    assert set(layer) == {"id", "parent", "created"} and layer["parent"] == top  # no flags left, no tar-split
    assert not (roots.root / f"{roots.driver}-layers" / f"{made.layer}.tar-split.gz").exists()
    for base in (roots.root, roots.run):
        assert (base / f"{roots.driver}-containers" / made.id / "userdata").is_dir()
    with store.reading() as view:
        for wanted in (made.id, made.id[:10], "c1", made.layer):
            assert view.container(wanted).id == made.id
        assert view.container_dir("c1") == str(roots.root / f"{roots.driver}-containers" / made.id / "userdata")
        assert view.container_run_dir("c1") == str(roots.run / f"{roots.driver}-containers" / made.id / "userdata")
        with pytest.raises(errors.ContainerNotFound):
            view.container("c2")
    assert [c.id for c in store.containers()] == [made.id] and store.lookup_container("c1").id == made.id


def test_container_big_data_names_and_refusals(roots: Roots, test_images: Any) -> None:
    store = roots.open()
    image_id = put_image(store, test_images.single_layer, ["localhost/one:1"])
    with store.writing() as view:
        made = view.create_container(image_id, names=["c1"])
        view.set_container_big_data("c1", "Spec-JSON", b'{"a":1}')
        view.set_container_big_data("c1", "plain.key", b"xyz")
        with pytest.raises(errors.DuplicateName):
            view.create_container(image_id, names=["c1"])
        with pytest.raises(errors.DuplicateID):
            view.create_container(image_id, container_id=made.id)
        with pytest.raises(errors.ImageNotFound):
            view.create_container("localhost/absent:1")
        with pytest.raises(ImageInUse):
            view.delete_image(image_id)
        with pytest.raises(LayerInUse):
            view.delete_layer(made.layer)
        with pytest.raises(LayerInUse):
            view.create_layer(made.layer, io.BytesIO(test_images.single_layer.layers[0].data))
        view.set_container_names("c1", ["renamed"])
    (raw,) = roots.raw(f"{roots.driver}-containers/containers.json")
    assert raw["big-data-names"] == ["Spec-JSON", "plain.key"]
    assert raw["big-data-sizes"] == {"Spec-JSON": 7, "plain.key": 3}
    assert raw["big-data-digests"]["plain.key"] == images.sha256(b"xyz")
    directory = roots.root / f"{roots.driver}-containers" / made.id
    assert (directory / records.big_data_file_name("Spec-JSON")).read_bytes() == b'{"a":1}'
    assert (directory / "plain.key").read_bytes() == b"xyz"
    with store.reading() as view:
        assert view.container_big_data("renamed", "Spec-JSON") == b'{"a":1}'
    # podman's layers and containers readers accept what we wrote
    listed = json.loads(roots.podman("ps", "--external", "--all", "--format", "json"))
    assert [(entry["Id"], entry["Names"]) for entry in listed] == [(made.id, ["renamed"])]
    roots.podman("rm", "renamed")  # podman removes a storage container: record, layer, directories
    with store.reading() as view:
        assert view.containers() == [] and made.layer not in {layer.id for layer in view.layers()}
    assert not (roots.root / f"{roots.driver}-containers" / made.id).exists()


def test_delete_container_removes_layer_record_and_dirs_then_the_image_goes(roots: Roots, test_images: Any) -> None:
    store = roots.open()
    image_id = put_image(store, test_images.multi_layer, ["localhost/multi:v1"])
    with store.writing() as view:
        made = view.create_container(image_id, names=["c1"])
        view.set_container_big_data("c1", "k", b"v")
    store.mount("c1")
    with store.writing() as view:
        view.delete_container("c1")  # mounted: unmounted first, as c/storage's layer Delete does
        assert view.containers() == [] and view.mounts() == []
        assert made.layer not in {layer.id for layer in view.layers()}
        assert len(view.delete_image(image_id)) == 3
    assert roots.raw(f"{roots.driver}-containers/containers.json") == []
    assert roots.raw("mountpoints.json") == []
    for base in (roots.root, roots.run):
        assert not (base / f"{roots.driver}-containers" / made.id).exists()
    assert roots.raw(f"{roots.driver}-layers/layers.json") == []


def test_scratch_container_and_labels(roots: Roots) -> None:
    store = roots.open()
    with store.writing() as view:
        made = view.create_container("", names=["s"], mount_opts=["nodev"], volatile=True)
        with pytest.raises(errors.ConfigError):
            view.create_container("", mount_label="system_u:object_r:container_file_t:s0")
    (raw,) = roots.raw(f"{roots.driver}-containers/containers.json")
    assert raw["image"] == "" and raw["flags"] == {"MountLabel": "", "ProcessLabel": "", "MountOpts": ["nodev"],
                                                   "Volatile": True}
    assert "parent" not in next(r for r in roots.raw(f"{roots.driver}-layers/layers.json") if r["id"] == made.layer)


def test_a_volatile_containers_file_of_a_newer_go_is_read_and_kept(roots: Roots, test_images: Any) -> None:
    store = roots.open()
    image_id = put_image(store, test_images.single_layer, ["localhost/one:1"])
    with store.writing() as view:
        theirs = view.create_container(image_id, names=["theirs"])
    main = roots.root / f"{roots.driver}-containers" / "containers.json"
    volatile = main.parent / "volatile-containers.json"
    volatile.write_bytes(main.read_bytes())  # as c/storage 1.45 keeps a volatile container
    records.atomic_write(str(main), b"[]")
    lock = store._containers.lock
    with lock.writing():
        lock.record_write()
    with store.writing() as view:
        assert [c.names for c in view.containers()] == [["theirs"]]
        ours = view.create_container(image_id, names=["ours"])
        view.set_container_metadata("theirs", "m")
    assert [r["id"] for r in json.loads(main.read_text())] == [ours.id]
    assert [(r["id"], r["metadata"]) for r in json.loads(volatile.read_text())] == [(theirs.id, "m")]
    with store.writing() as view:
        view.delete_container("theirs")
    assert json.loads(volatile.read_text()) == []


# -- mounts ---------------------------------------------------------------------------------------------


def test_mount_counts_same_path_and_force_unmount(roots: Roots, test_images: Any) -> None:
    store = roots.open()
    image_id = put_image(store, test_images.multi_layer, ["localhost/multi:v1"])
    with store.writing() as view:
        made = view.create_container(image_id, names=["c1"])
    first = store.mount("c1")
    assert store.mount(made.id[:12]) == first
    assert roots.raw("mountpoints.json") == [{"id": made.layer, "path": first, "count": 2}]
    assert (Path(first) / "hello.txt").read_text().split() == ["hello", "from", "the", "third", "layer"]
    assert not (Path(first) / "srv" / "data").exists()  # whited out in the image
    if roots.driver == "overlay":
        assert _mount.is_mountpoint(first)
    assert store.unmount("c1") is True
    with store.reading() as view:
        assert view.mount_count("c1") == 1 and view.mount_count(made.layer) == 1
    if roots.driver == "overlay":
        assert _mount.is_mountpoint(first)
    store.mount("c1")
    assert store.unmount(first, force=True) is False  # by mount path, forced: all the way down
    assert roots.raw("mountpoints.json") == []
    if roots.driver == "overlay":
        assert not _mount.is_mountpoint(first)
    assert store.unmount("c1") is False  # not mounted: nothing to do
    with store.reading() as view:
        top = view.lookup_image(image_id).top_layer
    image_path = store.mount(top, readonly=True)  # an image's layer, as 'podman image mount'
    assert (Path(image_path) / "hello.txt").is_file()
    assert store.unmount(top) is False
    with pytest.raises(errors.LayerNotFound):
        store.mount("no-such-thing")


def test_a_containers_mount_opts_are_used(roots: Roots, test_images: Any) -> None:
    from pallet.storage.drivers.errors import UnsupportedStore

    store = roots.open()
    image_id = put_image(store, test_images.single_layer, ["localhost/one:1"])
    with store.writing() as view:
        view.create_container(image_id, names=["c1"], mount_opts=["nodev", "noexec"])
    if roots.driver == "vfs":  # as c/storage 1.43: "vfs driver does not support mount options"
        with pytest.raises(UnsupportedStore):
            store.mount("c1")
        return
    configured = Store.open(StoreOptions(str(roots.root), str(roots.run), "overlay", ("overlay.mountopt=nosuid",)))
    with configured.writing() as view:
        view.create_container(image_id, names=["c2"])
    for name, flags, absent in (("c1", {"nodev", "noexec"}, "nosuid"), ("c2", {"nosuid"}, "nodev")):
        path = configured.mount(name)
        try:
            line = next(line for line in Path("/proc/self/mountinfo").read_text().splitlines()
                        if line.split(" ")[4] == path)
            assert flags <= set(line.split(" ")[5].split(",")) and absent not in line.split(" ")[5]
            assert "nodev" not in line.split(" - ")[1] and "nosuid" not in line.split(" - ")[1]  # not overlay data
        finally:
            configured.unmount(name)


def test_deleting_a_mounted_image_unmounts_its_layer_first(roots: Roots, test_images: Any, podman: str) -> None:
    store = roots.open()
    image_id = put_image(store, test_images.multi_layer, ["localhost/multi:v1"])
    top = store.lookup_image(image_id).top_layer
    path = store.mount(top, readonly=True)
    assert store.mount(top, readonly=True) == path
    with store.writing() as view:
        assert view.mount_count(top) == 2
        assert len(view.delete_image(image_id)) == 3
        assert view.mounts() == []
    assert roots.raw("mountpoints.json") == [] and not _mount.is_mounted_here(path)
    assert json.loads(roots.podman("images", "--format", "json")) == []


# -- with the real buildah and podman -------------------------------------------------------------------


def test_buildah_and_podman_see_our_container_and_mount_counts_agree(
        roots: Roots, test_images: Any, buildah: str, podman: str) -> None:
    store = roots.open()
    image_id = put_image(store, test_images.multi_layer, ["localhost/multi:v1"])
    with store.writing() as view:
        made = view.create_container(image_id, names=["ours"])
    listed = json.loads(roots.buildah("containers", "--all", "--json"))
    assert [(c["id"], c["containername"], c["imageid"]) for c in listed] == [(made.id, "ours", image_id)]
    external = json.loads(roots.podman("ps", "--external", "--all", "--format", "json"))
    assert [(c["Id"], c["Names"], c["ImageID"]) for c in external] == [(made.id, ["ours"], image_id)]
    ours = store.mount("ours")
    (Path(ours) / "ours.txt").write_text("written by pallet\n")
    theirs = roots.buildah("mount", "ours").strip()
    assert theirs == ours
    assert (Path(theirs) / "ours.txt").read_text() == "written by pallet\n"
    assert roots.raw("mountpoints.json") == [{"id": made.layer, "path": ours, "count": 2}]
    roots.buildah("umount", "ours")
    with store.reading() as view:
        assert view.mount_count("ours") == 1
    assert store.unmount("ours") is False
    assert roots.raw("mountpoints.json") == []
    if roots.driver == "overlay":
        assert not _mount.is_mountpoint(ours)
    roots.buildah("rm", "ours")  # podman's/buildah's delete of our container
    with store.writing() as view:
        assert view.containers() == []
        assert made.layer not in {layer.id for layer in view.layers()}
        assert len(view.delete_image(image_id)) == 3


def test_a_buildah_container_is_listed_mounted_and_removed_by_us(
        roots: Roots, test_images: Any, buildah: str, podman: str) -> None:
    store = roots.open()
    image_id = put_image(store, test_images.multi_layer, ["localhost/multi:v1"])
    roots.buildah("from", "--name", "theirs", "--pull-never", "localhost/multi:v1")
    with store.reading() as view:
        found = view.container("theirs")
        assert found.image == image_id and found.flags.get("Volatile") is True
        assert view.layer(found.layer).parent == view.lookup_image(image_id).top_layer
        assert (Path(view.container_dir("theirs")) / "buildah.json").is_file()
    theirs = roots.buildah("mount", "theirs").strip()
    ours = store.mount("theirs")
    assert ours == theirs and (Path(ours) / "hello.txt").is_file()
    with store.reading() as view:
        assert view.mount_count("theirs") == 2
    assert store.unmount("theirs") is True
    with pytest.raises(ImageInUse):
        with store.writing() as view:
            view.delete_image(image_id)
    with store.writing() as view:
        view.delete_container("theirs")  # still mounted once (by buildah): unmounted, then deleted
    assert json.loads(roots.buildah("containers", "--all", "--json") or "[]") in ([], None)
    assert roots.raw("mountpoints.json") == []
    assert not (roots.root / f"{roots.driver}-containers" / found.id).exists()
    with store.writing() as view:
        assert found.layer not in {layer.id for layer in view.layers()}
        view.delete_image(image_id)
    assert json.loads(roots.podman("images", "--format", "json")) == []


def test_a_podman_container_mount_is_counted_with_podman_mount(
        roots: Roots, test_images: Any, podman: str) -> None:
    store = roots.open()
    image_id = put_image(store, test_images.multi_layer, ["localhost/multi:v1"])
    roots.podman("create", "--name", "pod1", "localhost/multi:v1", "true")
    theirs = roots.podman("mount", "pod1").strip()
    with store.reading() as view:
        found = view.container("pod1")
        assert found.image == image_id and view.mount_count("pod1") == 1
    assert store.mount("pod1") == theirs
    assert roots.raw("mountpoints.json") == [{"id": found.layer, "path": theirs, "count": 2}]
    assert store.unmount("pod1") is True
    roots.podman("umount", "pod1")
    assert roots.raw("mountpoints.json") == []
    if roots.driver == "overlay":
        assert not _mount.is_mounted_here(theirs)
    with pytest.raises(ImageInUse), store.writing() as view:
        view.delete_image(image_id)
    roots.podman("rm", "pod1")
    with store.writing() as view:
        assert view.containers() == []
        view.delete_image(image_id)


def test_our_writers_and_buildah_creating_and_removing_containers_at_once(
        roots: Roots, test_images: Any, buildah: str) -> None:
    store = roots.open()
    image_id = put_image(store, test_images.single_layer, ["localhost/one:1"])
    pids = []
    for worker in range(2):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                child = roots.open()
                for k in range(6):
                    with child.writing() as view:
                        view.create_container(image_id, names=[f"w{worker}-{k}"])
                    if k % 2:
                        with child.writing() as view:
                            view.delete_container(f"w{worker}-{k - 1}")
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    for k in range(4):  # buildah (Go, c/storage 1.43) takes the same locks meanwhile
        roots.buildah("from", "--name", f"b{k}", "--pull-never", "localhost/one:1")
        if k % 2:
            roots.buildah("rm", f"b{k - 1}")
    assert all(os.waitpid(pid, 0)[1] == 0 for pid in pids)
    expected = {"b1", "b3", *(f"w{w}-{k}" for w in range(2) for k in (1, 3, 5))}
    with store.writing() as view:
        containers = view.containers()
        assert {name for c in containers for name in c.names} == expected
        layers = {layer.id for layer in view.layers()}
        assert {c.layer for c in containers} | {view.lookup_image(image_id).top_layer} == layers
    raw = roots.raw(f"{roots.driver}-layers/layers.json")
    assert len(raw) == len(layers) and all("flags" not in r for r in raw)
    home = roots.root / "vfs" / "dir" if roots.driver == "vfs" else roots.root / "overlay"
    assert {p.name for p in home.iterdir() if p.is_dir() and p.name != "l"} == layers  # no orphan layer dir
    on_disk = {p.name for p in (roots.root / f"{roots.driver}-containers").iterdir() if p.is_dir()}
    assert on_disk == {c.id for c in containers}
    listed = json.loads(roots.buildah("containers", "--all", "--json"))
    assert {c["containername"] for c in listed} == expected


# -- crash safety -----------------------------------------------------------------------------------------


def _killed_at(roots: Roots, target: Any, name: str, action: str, wanted: str = "") -> None:
    """Fork a child that creates (or deletes) a container and stops at ``target.name``; SIGKILL it there."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child never returns into pytest
        try:
            os.close(read_end)

            def stop(*args: Any, **kwargs: Any) -> None:
                os.write(write_end, b"x")
                time.sleep(60)

            setattr(target, name, stop)
            with roots.open().writing() as view:
                if action == "create":
                    view.create_container(wanted, names=["half"])
                else:
                    view.delete_container(wanted)
        finally:
            os._exit(3)
    os.close(write_end)
    assert os.read(read_end, 1) == b"x"
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    os.close(read_end)


def _layer_dirs(roots: Roots) -> set[str]:
    home = roots.root / "vfs" / "dir" if roots.driver == "vfs" else roots.root / "overlay"
    return {p.name for p in home.iterdir() if p.is_dir() and p.name != "l"}


def test_sigkill_in_create_container_at_each_step_leaves_a_consistent_store(
        roots: Roots, test_images: Any, podman: str) -> None:
    from pallet.storage.container_store import ContainerStore
    from pallet.storage.layer_store import LayerStore
    from pallet.storage.store import GraphDriverLayers

    store = roots.open()
    image_id = put_image(store, test_images.single_layer, ["localhost/one:1"])
    (image_layer,) = _layer_dirs(roots)
    layers_json = f"{roots.driver}-layers/layers.json"
    for stop_at in ((GraphDriverLayers, "create"), (ContainerStore, "create")):
        _killed_at(roots, *stop_at, "create", image_id)  # before the container's record is saved
        (half,) = [r for r in roots.raw(layers_json) if r.get("flags")]
        assert half["flags"].get("pallet-pending-container")
        with store.reading() as view:  # not shown: an incomplete layer, or a pending one no container names
            assert [layer.id for layer in view.layers()] == [image_layer] and view.containers() == []
        assert json.loads(roots.podman("ps", "--external", "--all", "--format", "json")) == []
        with store.writing() as view:
            assert [layer.id for layer in view.layers()] == [image_layer]
        assert [r["id"] for r in roots.raw(layers_json)] == [image_layer] and _layer_dirs(roots) == {image_layer}
    # killed after the record, before the layer's pending flag is cleared: a whole container, for Go as well
    _killed_at(roots, LayerStore, "complete", "create", image_id)
    assert [c["Names"] for c in json.loads(roots.podman("ps", "--external", "--all", "--format", "json"))] == [["half"]]
    with store.writing() as view:
        (container,) = view.containers()
        assert view.layer(container.layer).parent == image_layer
    assert all("flags" not in r for r in roots.raw(layers_json))
    assert store.mount("half") and store.unmount("half") is False


def test_sigkill_in_delete_container_leaves_a_consistent_store(roots: Roots, test_images: Any, podman: str) -> None:
    from pallet.storage.container_store import ContainerStore
    from pallet.storage.layer_store import LayerStore

    store = roots.open()
    image_id = put_image(store, test_images.single_layer, ["localhost/one:1"])
    with store.writing() as view:
        made = view.create_container(image_id, names=["c1"])
    layers_json = f"{roots.driver}-layers/layers.json"
    # killed before the record went: the container stays whole
    _killed_at(roots, ContainerStore, "delete", "delete", "c1")
    with store.reading() as view:
        assert view.container("c1").layer == view.layer(made.layer).id
    with store.writing() as view:
        assert [c.id for c in view.containers()] == [made.id]
    assert all("flags" not in r for r in roots.raw(layers_json))
    # killed after the record went: the layer is hidden, and our next writer deletes it (Go keeps it)
    _killed_at(roots, LayerStore, "delete", "delete", "c1")
    assert roots.raw(f"{roots.driver}-containers/containers.json") == []
    assert json.loads(roots.podman("ps", "--external", "--all", "--format", "json")) == []
    assert made.layer in {r["id"] for r in roots.raw(layers_json)}
    with store.reading() as view:
        assert made.layer not in {layer.id for layer in view.layers()}
    with store.writing() as view:
        assert view.containers() == [] and len(view.layers()) == 1
    assert len(roots.raw(layers_json)) == 1 and len(_layer_dirs(roots)) == 1


def test_a_layer_go_left_half_deleted_goes_and_its_container_can_still_be_deleted(
        roots: Roots, test_images: Any, podman: str) -> None:
    store = roots.open()
    image_id = put_image(store, test_images.single_layer, ["localhost/one:1"])
    with store.writing() as view:
        made = view.create_container(image_id, names=["c1"])
    path = roots.root / f"{roots.driver}-layers" / "layers.json"
    raw = json.loads(path.read_text())
    for record in raw:  # as c/storage's DeleteContainer killed between flagging the layer and dropping the record
        if record["id"] == made.layer:
            record["flags"] = {"incomplete": True}
    with store._layers.lock.writing():
        records.atomic_write(str(path), json.dumps(raw).encode())
        store._layers.lock.record_write()
    with store.writing() as view:  # no pending-container flag: its files may be half gone, so it is deleted
        assert made.layer not in {layer.id for layer in view.layers()}
        assert view.container("c1").layer == made.layer
        with pytest.raises(errors.LayerNotFound):
            view.mount("c1")
        view.delete_container("c1")
        assert view.containers() == []
    assert json.loads(roots.podman("ps", "--external", "--all", "--format", "json")) == []


# -- prune and disk usage ------------------------------------------------------------------------------------


def test_disk_usage_matches_podman_and_prune_removes_only_unreferenced_layers(
        roots: Roots, test_images: Any, podman: str) -> None:
    store = roots.open()
    multi = test_images.multi_layer
    image_id = put_image(store, multi, ["localhost/multi:v1"])
    short = images.make_image(multi.layers[:1], labels={"short": "yes"})  # shares the base layer
    short_id = put_image(store, short, ["localhost/short:v1"])
    with store.writing() as view:
        orphan = view.create_layer("", io.BytesIO(test_images.single_layer.layers[0].data))
        made = view.create_container(image_id, names=["c1"])
    path = store.mount("c1")
    (Path(path) / "blob.bin").write_bytes(b"x" * 12345)
    (Path(path) / "hello.txt").write_text("changed\n")
    store.unmount("c1")
    podman_sizes = {e["Id"]: e["Size"] for e in json.loads(roots.podman("images", "--format", "json"))}
    with store.reading() as view:
        usage = view.disk_usage()
    sizes = {u.id: u for u in usage.images}
    assert {key: sizes[key].size for key in sizes} == podman_sizes
    base = multi.layers[0]
    base_size = next(layer.uncompressed_size for layer in store._layers.layers if layer.uncompressed_digest == base.diff_id)
    assert sizes[image_id].shared_size == base_size == sizes[short_id].shared_size
    assert (sizes[image_id].containers, sizes[short_id].containers) == (1, 0)
    assert usage.images_size == sum(s.size for s in sizes.values()) - base_size  # the base layer counted once
    (ctr,) = usage.containers
    assert (ctr.id, ctr.layer, ctr.rw_size) == (made.id, made.layer, 12345 + len("changed\n"))
    assert usage.unreferenced_layers == (orphan.id,)
    stray = [roots.root / f"{roots.driver}-containers" / ("e" * 64) / "userdata",
             roots.run / f"{roots.driver}-containers" / ("e" * 64) / "userdata"]
    for path in stray:  # as a delete cut off after its record went leaves them
        path.mkdir(parents=True)
    with store.writing() as view:
        assert view.prune_layers() == [orphan.id]
        assert view.prune_layers() == []
        assert view.prune_container_dirs() == [str(path.parent) for path in stray]
        assert view.prune_container_dirs() == []
        assert Path(view.container_dir("c1")).is_dir() and Path(view.container_run_dir("c1")).is_dir()
        view.delete_container("c1")
        view.remove_names(short_id, ["localhost/short:v1"])
        view._images.delete(view._images.get(short_id))  # an image record gone without its layers
        assert view.prune_layers() == []  # the base layer is still multi's
        view._images.delete(view._images.get(image_id))
        assert len(view.prune_layers()) == 3
        assert view.layers() == []
    assert json.loads(roots.podman("images", "--format", "json")) == []


# -- rootless: we work in podman's user namespace, buildah in its own; mounts are each process's own --------

ROOTLESS = r"""
import json, os, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from pallet.storage.userns.unshare import run_in_userns

def work(top, phase, driver):
    from test_containers import put_image
    from pallet.storage.config import StoreOptions
    from pallet.storage.store import Store
    from pallet_testing import images
    store = Store.open(StoreOptions(graph_root=top + "/g", run_root=top + "/r", driver=driver, rootless=True))
    if phase == "ours":
        image_id = put_image(store, images.multi_layer(), ["localhost/multi:v1"])
        with store.writing() as view:
            made = view.create_container(image_id, names=["ours"]).id
        (Path(store.mount("ours")) / "ours.txt").write_text("ours\n")
        store.unmount("ours")
        return {"image": image_id, "ours": made}
    with store.reading() as view:
        theirs = view.container("theirs")
        out = {"image": theirs.image, "buildah_json": (Path(view.container_dir("theirs")) / "buildah.json").is_file()}
    path = store.mount("theirs")
    out["hello"] = (Path(path) / "hello.txt").read_text()
    out["owner"] = os.stat(Path(path) / "hello.txt").st_uid
    with store.reading() as view:
        out["count"] = view.mount_count("theirs")
    out["still"] = store.unmount("theirs")
    with store.writing() as view:
        view.delete_container("theirs")
        out["left"] = [c.names for c in view.containers()]
    return out

print(json.dumps(run_in_userns(work, sys.argv[2], sys.argv[3], sys.argv[4])))
"""


@pytest.mark.rootless
@pytest.mark.parametrize("driver", DRIVERS)
def test_rootless_containers_shared_with_buildah(rootless_user, rootless_tmp_path: Path,  # type: ignore[no-untyped-def]
                                                buildah: str, test_images: Any, driver: str) -> None:
    top = str(rootless_tmp_path)
    ours = rootless_user.run([sys.executable, "-c", ROOTLESS, str(Path(__file__).parent), top, "ours", driver])
    if ours.returncode != 0 and b"MountFailed" in ours.stderr and b"Operation not permitted" in ours.stderr:
        pytest.skip("this kernel refuses overlay mounts in a user namespace")
    assert ours.returncode == 0, ours.stderr.decode()
    made = json.loads(ours.stdout)
    argv = [buildah, "--root", f"{top}/g", "--runroot", f"{top}/r", "--storage-driver", driver]

    def listed() -> list[tuple[str, str]]:
        done = rootless_user.run([*argv, "containers", "--all", "--json"])
        assert done.returncode == 0, done.stderr.decode()
        return [(c["id"], c["containername"]) for c in json.loads(done.stdout or b"[]") or []]

    assert listed() == [(made["ours"], "ours")]
    done = rootless_user.run([*argv, "from", "--name", "theirs", "--pull-never", "localhost/multi:v1"])
    assert done.returncode == 0, done.stderr.decode()
    theirs = rootless_user.run([sys.executable, "-c", ROOTLESS, str(Path(__file__).parent), top, "theirs", driver])
    assert theirs.returncode == 0, theirs.stderr.decode()
    got = json.loads(theirs.stdout)
    assert got == {"image": made["image"], "buildah_json": True, "hello": "hello from the third layer\n", "owner": 0,
                   "count": 1, "still": False, "left": [["ours"]]}
    assert listed() == [(made["ours"], "ours")]
    done = rootless_user.run([*argv, "rm", "ours"])
    assert done.returncode == 0, done.stderr.decode()
    assert listed() == []
    assert json.loads(Path(top, "g", f"{driver}-containers", "containers.json").read_text()) in ([], None)


def test_in_use_errors_are_in_the_error_tree_and_stay_importable_where_they_were() -> None:
    from pallet.storage import layer_store, store

    assert store.ImageInUse is errors.ImageInUse and layer_store.LayerInUse is errors.LayerInUse
    assert issubclass(errors.ImageInUse, errors.InUse) and issubclass(errors.LayerInUse, errors.InUse)
    assert issubclass(errors.InUse, errors.StorageError) and issubclass(layer_store.DiffMismatch, errors.StorageError)
