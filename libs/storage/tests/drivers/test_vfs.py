"""The vfs driver: full copies (owners, modes, xattrs, hard links, devices), whiteouts as deletions."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest

from pallet.storage.drivers import VfsDriver
from pallet.storage.drivers.errors import DriverError, LayerExists, LayerMissing
from pallet.storage.records import layer_chain_id, random_id
from pallet.storage.tarengine import ApplyOptions, apply_layer

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (owners, device nodes, trusted xattrs)")


def tree(root: Path) -> dict[str, tuple[object, ...]]:
    """Everything comparable about each entry under ``root`` (and the root itself as ``.``)."""
    out: dict[str, tuple[object, ...]] = {}
    inodes: dict[tuple[int, int], str] = {}
    for path in [root, *sorted(root.rglob("*"))]:
        st = path.lstat()
        rel = str(path.relative_to(root))
        link = inodes.setdefault((st.st_dev, st.st_ino), rel) if st.st_nlink > 1 and not path.is_dir() else None
        xattrs = tuple(sorted((k, os.getxattr(path, k, follow_symlinks=False))
                              for k in os.listxattr(path, follow_symlinks=False)))
        data = path.read_bytes() if stat.S_ISREG(st.st_mode) else os.readlink(path) if path.is_symlink() else b""
        out[rel] = (st.st_mode, st.st_uid, st.st_gid, st.st_rdev, st.st_mtime_ns, st.st_nlink, link, xattrs, data)
    return out


def _apply(driver: VfsDriver, data: bytes, layer_id: str) -> None:
    apply_layer(io.BytesIO(data), driver.layer_dir(layer_id), options=ApplyOptions(whiteouts=driver.whiteout_form))


def test_create_copy_remove(tmp_path: Path) -> None:
    driver = VfsDriver(tmp_path / "vfs")
    assert stat.S_IMODE((tmp_path / "vfs" / "dir").stat().st_mode) == 0o700
    base, child = random_id(), random_id()
    with pytest.raises(LayerMissing):
        driver.create(child, base)
    driver.create(base)
    top = Path(driver.layer_dir(base))
    assert stat.S_IMODE(top.stat().st_mode) == 0o555
    top.chmod(0o755)
    (top / "d" / "e").mkdir(parents=True)
    (top / "d" / "e" / "f").write_bytes(b"x" * 100_000)
    (top / "d" / "e" / "f").chmod(0o4711)
    os.link(top / "d" / "e" / "f", top / "hard")
    (top / "sym").symlink_to("d/e/f")
    (top / "esc").symlink_to("/etc/passwd")
    os.mkfifo(top / "fifo")
    os.setxattr(top / "d", "user.k", b"v")
    os.utime(top / "d", ns=(1, 2_000_000_001))
    os.utime(top / "sym", ns=(1, 3), follow_symlinks=False)
    (top / "ro").mkdir(mode=0o500)
    top.chmod(0o750)
    driver.create(child, base)
    assert tree(Path(driver.layer_dir(child))) == tree(top)
    with pytest.raises(LayerExists):
        driver.create(child, base)
    assert driver.mount(child) == driver.layer_dir(child) and driver.metadata(child) == {}
    driver.unmount(child)
    driver.remove(child)
    assert not driver.exists(child) and driver.exists(base)
    driver.remove(child)
    with pytest.raises(DriverError):
        driver.remove("..")


@root_only
def test_copy_as_root_keeps_owners_devices_and_trusted_xattrs(tmp_path: Path) -> None:
    driver = VfsDriver(tmp_path / "vfs")
    base, child = random_id(), random_id()
    driver.create(base)
    top = Path(driver.layer_dir(base))
    (top / "f").write_text("owned")
    os.chown(top / "f", 1234, 5678)
    os.chmod(top / "f", 0o2755)
    os.setxattr(top / "f", "security.capability",
                bytes.fromhex("0100000200200000000000000000000000000000"))
    os.mknod(top / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.link(top / "null", top / "null2")
    (top / "dir").mkdir()
    os.setxattr(top / "dir", "trusted.x", b"1")
    os.lchown(top / "dir", 7, 8)
    driver.create(child, base)
    assert tree(Path(driver.layer_dir(child))) == tree(top)


def test_multi_layer_whiteouts_applied(test_images, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    driver = VfsDriver(tmp_path / "vfs")
    ids: list[str] = []
    for n, layer in enumerate(test_images.multi_layer.layers):
        layer_id = layer_chain_id(ids[-1] if ids else "", "sha256:" + f"{n:064x}")
        driver.create(layer_id, ids[-1] if ids else None)
        _apply(driver, layer.data, layer_id)
        ids.append(layer_id)
    second, top = Path(driver.layer_dir(ids[1])), Path(driver.layer_dir(ids[2]))
    assert (second / "srv" / "data" / "old.txt").is_file() and (second / "opt" / "app" / "v1.txt").is_file()
    assert sorted(os.listdir(top / "srv")) == []
    assert sorted(os.listdir(top / "opt" / "app")) == ["v2.txt"]
    assert (top / "hello.txt").is_file() and (top / "bin" / "busybox").is_file()
    assert not any(p.name.startswith(".wh.") for p in top.rglob("*"))
