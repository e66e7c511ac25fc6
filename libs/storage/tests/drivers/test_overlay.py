"""The overlay driver on its own: layout, lower chains, removal, mounting the multi-layer image."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest
from drivers_support import apply_chain, check_merged_tree, mounted_under

from pallet.storage.drivers import OverlayDriver, new_driver
from pallet.storage.drivers.errors import DriverError, LayerExists, LayerMissing, MaxDepthExceeded, UnsupportedStore
from pallet.storage.records import layer_chain_id, random_id

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (trusted.* xattrs, kernel overlay mounts)")
SHORT = re.compile(r"[A-Z2-7]{26}")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_layout_of_a_chain(tmp_path: Path) -> None:
    driver = OverlayDriver(tmp_path / "overlay")
    home = tmp_path / "overlay"
    assert (home / ".has-mount-program").read_text() == "false"
    assert _mode(home / "l") == 0o755 and _mode(home) == 0o700
    ids = [random_id() for _ in range(3)]
    driver.create(ids[0])
    driver.create(ids[1], ids[0])
    driver.create(ids[2], ids[1])
    links = [(home / i / "link").read_text() for i in ids]
    assert all(SHORT.fullmatch(link) for link in links)
    for layer_id, link in zip(ids, links):
        assert os.readlink(home / "l" / link) == f"../{layer_id}/diff"
        assert _mode(home / layer_id) == 0o700 and _mode(home / layer_id / "diff") == 0o555
        assert _mode(home / layer_id / "work") == _mode(home / layer_id / "merged") == 0o700
        assert _mode(home / layer_id / "link") == 0o644
    assert sorted(os.listdir(home / ids[0])) == ["diff", "empty", "link", "merged", "work"]
    assert sorted(os.listdir(home / ids[2])) == ["diff", "link", "lower", "merged", "work"]
    assert not (home / ids[0] / "lower").exists()
    assert (home / ids[1] / "lower").read_text() == f"l/{links[0]}"
    assert (home / ids[2] / "lower").read_text() == f"l/{links[1]}:l/{links[0]}"
    assert driver.layer_dir(ids[2]) == str(home / ids[2] / "diff")
    assert driver.metadata(ids[2]) == {
        "WorkDir": f"{home}/{ids[2]}/work", "MergedDir": f"{home}/{ids[2]}/merged",
        "UpperDir": f"{home}/{ids[2]}/diff", "LowerDir": f"{home}/{ids[1]}/diff:{home}/{ids[0]}/diff",
    }
    assert "LowerDir" not in driver.metadata(ids[0])


def test_child_copies_parent_diff_mode_and_mount_data(tmp_path: Path) -> None:
    driver = OverlayDriver(tmp_path / "overlay", mount_options=("nodev", "metacopy=off"), rootless=True)
    base, child = random_id(), random_id()
    driver.create(base)
    os.chmod(driver.layer_dir(base), 0o755)
    driver.create(child, base)
    assert _mode(Path(driver.layer_dir(child))) == 0o755
    home, link = driver.home, driver.short_name(base)
    assert driver.mount_data(child) == (f"lowerdir={home}/l/{link},upperdir={home}/{child}/diff,"
                                        f"workdir={home}/{child}/work,metacopy=off,userxattr")
    assert driver.mount_data(base, "system_u:object_r:container_file_t:s0", relative=True) == (
        f"lowerdir={base}/empty,upperdir={base}/diff,workdir={base}/work,metacopy=off,userxattr,"
        'context="system_u:object_r:container_file_t:s0"')
    assert driver.mount_data(child, readonly=True) == (f"lowerdir={home}/{child}/diff:{home}/l/{link},metacopy=off,userxattr")
    # nodev is a mount(2) flag (the kernel's overlay refuses it as data: "Unknown parameter 'nodev'")
    assert driver.mount_data(child, options=["nodev", "noexec", "index=off"]).endswith("/work,index=off,userxattr")


def test_errors_and_remove(tmp_path: Path) -> None:
    driver = OverlayDriver(tmp_path / "overlay")
    base = random_id()
    with pytest.raises(LayerMissing):
        driver.create(random_id(), base)
    driver.create(base)
    with pytest.raises(LayerExists):
        driver.create(base)
    with pytest.raises(DriverError):
        driver.create("../../etc")
    with pytest.raises(DriverError):
        driver.layer_dir("A" * 64)
    child = random_id()
    driver.create(child, base)
    Path(driver.layer_dir(child), "ro").mkdir(mode=0o500)
    link = driver.short_name(child)
    driver.remove(child)
    assert not driver.exists(child) and not (tmp_path / "overlay" / "l" / link).exists()
    driver.remove(child)  # a missing layer: nothing to do
    bad = random_id()
    driver.create(bad, base)
    Path(driver.home, bad, "lower").write_text("l/AAAAAAAAAAAAAAAAAAAAAAAAAA,upperdir=/x")
    with pytest.raises(DriverError):
        driver.mount_data(bad)
    Path(driver.home, bad, "link").write_text("../../etc")
    with pytest.raises(DriverError):
        driver.create(random_id(), bad)
    driver.remove(bad)
    assert driver.exists(base) and len(os.listdir(tmp_path / "overlay" / "l")) == 1


def test_max_depth(tmp_path: Path) -> None:
    driver = OverlayDriver(tmp_path / "overlay")
    parent = None
    for depth in range(129):
        layer = layer_chain_id(parent or "", "sha256:" + f"{depth:064x}")
        driver.create(layer, parent)
        parent = layer
    assert len(driver.lowers(parent or "")) == 128
    with pytest.raises(MaxDepthExceeded):
        driver.create(random_id(), parent)
    assert len(os.listdir(tmp_path / "overlay")) == 129 + 2  # nothing left by the refused create


def test_fuse_pinned_store_refused_and_new_driver(tmp_path: Path) -> None:
    (tmp_path / "overlay").mkdir()
    (tmp_path / "overlay" / ".has-mount-program").write_text("true")
    with pytest.raises(UnsupportedStore):
        new_driver("overlay2", tmp_path)
    assert new_driver("vfs", tmp_path).name == "vfs"
    with pytest.raises(UnsupportedStore):
        new_driver("btrfs", tmp_path)


@root_only
def test_mount_shows_the_merged_image(test_images, short_tmp: Path) -> None:  # type: ignore[no-untyped-def]
    driver = OverlayDriver(short_tmp / "overlay")
    ids = apply_chain(driver, [layer.data for layer in test_images.multi_layer.layers])
    try:
        merged = Path(driver.mount(ids[-1]))
        assert driver.mount(ids[-1]) == str(merged)  # mounted already: the same path, no second mount
        check_merged_tree(merged)
        (merged / "new.txt").write_text("container write\n")
        assert Path(driver.layer_dir(ids[-1]), "new.txt").read_text() == "container write\n"
        with pytest.raises(DriverError):
            driver.remove(ids[-1])
    finally:
        driver.unmount(ids[-1])
    assert not (Path(driver.home) / ids[-1] / "merged").exists()
    driver.unmount(ids[-1])  # not mounted: nothing to do
    driver.remove(ids[-1])


@root_only
def test_long_mount_data_uses_relative_paths(test_images, short_tmp: Path) -> None:  # type: ignore[no-untyped-def]
    driver = OverlayDriver(short_tmp / "overlay")
    ids = apply_chain(driver, [layer.data for layer in test_images.multi_layer.layers])
    parent = ids[-1]
    for depth in range(120):  # ~55 chars per absolute lower: more than a page; ~29 relative: less
        layer = layer_chain_id(parent, "sha256:" + f"{depth + 1000:064x}")
        driver.create(layer, parent)
        parent = layer
    assert len(driver.mount_data(parent)) >= os.sysconf("SC_PAGE_SIZE")
    try:
        check_merged_tree(Path(driver.mount(parent)))
    finally:
        driver.unmount(parent)


@root_only
def test_mount_through_a_symlinked_graph_root(test_images, short_tmp: Path) -> None:  # type: ignore[no-untyped-def]
    (short_tmp / "real").mkdir()
    (short_tmp / "link").symlink_to("real")
    driver = OverlayDriver(short_tmp / "link" / "overlay")
    ids = apply_chain(driver, [layer.data for layer in test_images.multi_layer.layers])
    try:
        merged = driver.mount(ids[-1])
        assert driver.mount(ids[-1]) == merged
        home = short_tmp / "real" / "overlay"  # bound onto itself as c/storage does, until nothing is mounted
        assert mounted_under(short_tmp) == [str(home / ids[-1] / "merged"), str(home)]
        with pytest.raises(DriverError):
            driver.remove(ids[-1])
    finally:
        driver.unmount(ids[-1])
    assert mounted_under(short_tmp) == []
