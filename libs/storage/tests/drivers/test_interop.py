"""Beside the real containers/storage (skopeo into a private store): the same layer directories, and
mounts that show the image's tree, for the multi-layer image (its third layer whites out ``srv/data``
and makes ``opt/app`` opaque)."""

from __future__ import annotations

import io
import json
import os
import re
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from drivers_support import check_merged_tree, mounted_under

from pallet.storage.drivers import OverlayDriver, VfsDriver
from pallet.storage.tarengine import ApplyOptions, apply_layer

pytestmark = [pytest.mark.interop, pytest.mark.skipif(os.geteuid() != 0, reason="a rootful store")]
SHORT = re.compile(r"[A-Z2-7]{26}")


@dataclass(frozen=True)
class GoStore:
    """A store written by the real containers/storage: its root and its layer IDs, base first."""

    root: Path
    ids: list[str]


def _unmount_under(top: Path) -> None:
    for point in mounted_under(top):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)


def _go_store(skopeo: str, driver: str, image: object, top: Path) -> GoStore:
    """skopeo copy of ``image`` into ``[driver@top/r+top/u]``; the overlay home's self bind mount undone."""
    from pallet_testing import images

    images.write_oci_layout(top / "oci", {"v1": image})  # type: ignore[dict-item]
    dest = f"containers-storage:[{driver}@{top}/r+{top}/u]x:v1"
    try:
        done = subprocess.run(["skopeo", "copy", "--quiet", "--insecure-policy", f"oci:{top}/oci:v1", dest],
                              capture_output=True, text=True, timeout=120)
    finally:
        _unmount_under(top)
    if done.returncode != 0 and driver == "overlay" and "overlay" in done.stderr:
        pytest.skip(f"kernel overlay unavailable here: {done.stderr.strip()[-200:]}")
    assert done.returncode == 0, done.stderr
    records = {r["id"]: r for r in json.loads((top / "r" / f"{driver}-layers" / "layers.json").read_text())}
    ids = [next(i for i, r in records.items() if not r.get("parent"))]
    while child := next((i for i, r in records.items() if r.get("parent") == ids[-1]), None):
        ids.append(child)
    return GoStore(top / "r", ids)


@pytest.fixture
def image(test_images):  # type: ignore[no-untyped-def]
    return test_images.multi_layer


@pytest.fixture
def go_overlay(skopeo: str, image: object, short_tmp: Path) -> Iterator[GoStore]:
    yield _go_store(skopeo, "overlay", image, short_tmp / "go")
    _unmount_under(short_tmp)


def _layer_files(home: Path, layer_id: str) -> dict[str, tuple[int, int]]:
    """Name -> (file type, mode) of everything directly in ``<home>/<id>/`` (and the dir itself)."""
    layer = home / layer_id
    out = {".": (stat.S_IFMT(layer.lstat().st_mode), stat.S_IMODE(layer.lstat().st_mode))}
    for name in os.listdir(layer):
        st = (layer / name).lstat()
        out[name] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode))
    return out


def _check_links(home: Path, ids: list[str]) -> None:
    """link is 26 base32 chars, l/<link> -> ../<id>/diff, lower is the parents' links, nearest first."""
    links = [(home / i / "link").read_text() for i in ids]
    for n, (layer_id, link) in enumerate(zip(ids, links)):
        assert SHORT.fullmatch(link), link
        assert os.readlink(home / "l" / link) == f"../{layer_id}/diff"
        expected = ":".join(f"l/{parent}" for parent in reversed(links[:n]))
        assert (home / layer_id / "lower").read_text() == expected if n else not (home / layer_id / "lower").exists()
    assert sorted(os.listdir(home / "l")) == sorted(links)


def _ours_like(go: GoStore, top: Path, image: object,
               driver_cls: type[OverlayDriver] | type[VfsDriver]) -> OverlayDriver | VfsDriver:
    """Our driver under ``top`` with the same layer IDs, each layer applied with the tar engine."""
    driver: OverlayDriver | VfsDriver = driver_cls(top / ("overlay" if driver_cls is OverlayDriver else "vfs"))
    for n, (layer_id, layer) in enumerate(zip(go.ids, image.layers)):  # type: ignore[attr-defined]
        driver.create(layer_id, go.ids[n - 1] if n else None)
        apply_layer(io.BytesIO(layer.data), driver.layer_dir(layer_id),
                    options=ApplyOptions(whiteouts=driver.whiteout_form))
    return driver


def _diff_tree(root: Path) -> dict[str, tuple[object, ...]]:
    """Every entry under ``root`` (root included): type, mode, owner, rdev, xattrs, data, nlink, mtime.

    The mtime of the root and of 0/0 whiteout devices is "now" on both sides: left out.
    """
    out: dict[str, tuple[object, ...]] = {}
    for path in [root, *sorted(root.rglob("*"))]:
        st = path.lstat()
        xattrs = tuple(sorted((k, os.getxattr(path, k, follow_symlinks=False))
                              for k in os.listxattr(path, follow_symlinks=False)))
        data = path.read_bytes() if stat.S_ISREG(st.st_mode) else os.readlink(path) if path.is_symlink() else b""
        now = path == root or (stat.S_ISCHR(st.st_mode) and st.st_rdev == 0)
        out[str(path.relative_to(root))] = (st.st_mode, st.st_uid, st.st_gid, st.st_rdev, xattrs, data, st.st_nlink,
                                            None if now else st.st_mtime_ns)
    return out


def test_overlay_layout_like_containers_storage(go_overlay: GoStore, image: object, short_tmp: Path) -> None:
    go_home = go_overlay.root / "overlay"
    ours = _ours_like(go_overlay, short_tmp / "ours", image, OverlayDriver)
    home = Path(ours.home)
    for path in (go_home, home):
        _check_links(path, go_overlay.ids)
    assert (home / ".has-mount-program").read_text() == (go_home / ".has-mount-program").read_text() == "false"
    assert stat.S_IMODE((home / "l").stat().st_mode) == stat.S_IMODE((go_home / "l").stat().st_mode)
    assert sorted(os.listdir(home)) == sorted(os.listdir(go_home))
    for layer_id in go_overlay.ids:
        assert _layer_files(home, layer_id) == _layer_files(go_home, layer_id), layer_id
        assert _diff_tree(home / layer_id / "diff") == _diff_tree(go_home / layer_id / "diff"), layer_id


def test_overlay_mounts_show_the_image(go_overlay: GoStore, image: object, short_tmp: Path) -> None:
    ours = _ours_like(go_overlay, short_tmp / "ours", image, OverlayDriver)
    theirs = OverlayDriver(go_overlay.root / "overlay")  # our mount over the layer dirs c/storage made
    top = go_overlay.ids[-1]
    for driver in (ours, theirs):
        try:
            merged = Path(driver.mount(top))
            check_merged_tree(merged)
            assert merged == Path(driver.home) / top / "merged"
            assert str(merged) in mounted_under(merged)
        finally:
            driver.unmount(top)
        assert not mounted_under(Path(driver.home))
    assert theirs.metadata(top)["LowerDir"] == ":".join(
        str(go_overlay.root / "overlay" / i / "diff") for i in reversed(go_overlay.ids[:-1]))


def test_vfs_layers_like_containers_storage(skopeo: str, image: object, short_tmp: Path) -> None:
    go = _go_store(skopeo, "vfs", image, short_tmp / "go")
    ours = _ours_like(go, short_tmp / "ours", image, VfsDriver)
    go_dir = go.root / "vfs" / "dir"
    assert stat.S_IMODE(go_dir.stat().st_mode) == stat.S_IMODE(Path(ours.home, "dir").stat().st_mode)
    for layer_id in go.ids:
        assert _diff_tree(Path(ours.layer_dir(layer_id))) == _diff_tree(go_dir / layer_id), layer_id
    top = Path(ours.layer_dir(go.ids[-1]))
    assert sorted(os.listdir(top / "srv")) == [] and sorted(os.listdir(top / "opt" / "app")) == ["v2.txt"]


def _mount_options(point: Path) -> tuple[list[str], list[str]]:
    """(per-mount flags, superblock options) of the mount at ``point``, from /proc/self/mountinfo."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == str(point):
            return fields[5].split(","), line.split(" - ")[1].split()[2].split(",")
    raise AssertionError(f"{point} is not mounted")


def test_readonly_mount_like_podman_image_mount(go_overlay: GoStore, podman: str, short_tmp: Path) -> None:
    top = go_overlay.ids[-1]
    merged = go_overlay.root / "overlay" / top / "merged"
    base = [podman, "--root", str(go_overlay.root), "--runroot", str(short_tmp / "go" / "u"),
            "--tmpdir", str(short_tmp / "podman-tmp"), "--storage-driver", "overlay"]
    try:
        done = subprocess.run([*base, "image", "mount", "x:v1"], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == str(merged)
        podman_flags, podman_options = _mount_options(merged)
    finally:
        subprocess.run([*base, "image", "unmount", "x:v1"], capture_output=True, timeout=120)
        _unmount_under(short_tmp)
    assert not merged.exists()  # c/storage removes merged/ on unmount, as we do
    theirs = OverlayDriver(go_overlay.root / "overlay")
    (ours_lowerdir,) = [o for o in theirs.mount_data(top, readonly=True).split(",") if o.startswith("lowerdir=")]
    assert ours_lowerdir in podman_options and "ro" in podman_flags
    try:
        check_merged_tree(Path(theirs.mount(top, readonly=True)))
        flags, options = _mount_options(merged)
        assert "ro" in flags and ours_lowerdir in options and not [o for o in options if o.startswith("upperdir")]
        with pytest.raises(OSError, match="Read-only"):
            (merged / "new.txt").write_text("no")
    finally:
        theirs.unmount(top)
    assert not merged.exists()
