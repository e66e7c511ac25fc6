"""The real test images' layers: diff_ids, tar-split round trips, and every whiteout form."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest

from pallet.storage.tarengine import ApplyOptions, UnprivilegedFsOps, WhiteoutFormat, apply_layer, reassemble
from pallet.storage.tarengine.errors import UnsupportedEntryError

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (trusted.* xattrs, 0/0 devices)")


def _apply(data: bytes, layer: Path, fmt: WhiteoutFormat = WhiteoutFormat.OVERLAY) -> tuple[str, bytes]:
    layer.mkdir(exist_ok=True)
    split = io.BytesIO()
    result = apply_layer(io.BytesIO(data), layer, tar_split=split, options=ApplyOptions(whiteouts=fmt))
    return result.diff_id, split.getvalue()


def _roundtrip(split: bytes, roots: list[Path]) -> str:
    out = io.BytesIO()
    digest, size = reassemble(io.BytesIO(split), roots, out)
    assert size == len(out.getvalue())
    return digest


def test_busybox_gzip_and_zstd(test_images, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    for name in ("single_layer", "single_layer_zstd", "single_layer_uncompressed"):
        image = getattr(test_images, name)
        layer = image.layers[0]
        diff_id, split = _apply(layer.data, tmp_path / name)
        assert diff_id == layer.diff_id
        assert _roundtrip(split, [tmp_path / name]) == layer.diff_id
        busybox = tmp_path / name / "bin" / "busybox"
        assert busybox.read_bytes() == Path("/bin/busybox").read_bytes()
        assert stat.S_IMODE(busybox.stat().st_mode) == 0o755
        assert os.readlink(tmp_path / name / "bin" / "sh") == "busybox"
        assert stat.S_IMODE((tmp_path / name / "tmp").stat().st_mode) == 0o1777


@root_only
def test_multi_layer_overlay(test_images, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    dirs = []
    for i, layer in enumerate(test_images.multi_layer.layers):
        diff_id, split = _apply(layer.data, tmp_path / f"l{i}")
        assert diff_id == layer.diff_id
        assert _roundtrip(split, [tmp_path / f"l{i}"]) == layer.diff_id
        dirs.append(tmp_path / f"l{i}")
    top = dirs[2]
    st = os.lstat(top / "srv" / "data")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.getxattr(top / "opt" / "app", "trusted.overlay.opaque") == b"y"
    assert not (top / "srv" / ".wh.data").exists()


def test_multi_layer_overlay_userxattr_opaque(test_images, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    if os.geteuid() != 0:
        pytest.skip("0/0 whiteout devices need root or a user namespace")
    layer = test_images.multi_layer.layers[2]
    diff_id, _ = _apply(layer.data, tmp_path / "l", WhiteoutFormat.OVERLAY_USERXATTR)
    assert diff_id == layer.diff_id
    assert os.getxattr(tmp_path / "l" / "opt" / "app", "user.overlay.opaque") == b"y"
    assert "trusted.overlay.opaque" not in os.listxattr(tmp_path / "l" / "opt" / "app")


def test_multi_layer_vfs(test_images, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "vfs"
    splits = []
    for layer in test_images.multi_layer.layers:  # vfs: each layer applied onto a full copy of its parent
        diff_id, split = _apply(layer.data, root, WhiteoutFormat.VFS)
        assert diff_id == layer.diff_id
        splits.append(split)
    assert not (root / "srv" / "data").exists() and (root / "srv").is_dir()
    assert not (root / "opt" / "app" / "v1.txt").exists()
    assert (root / "opt" / "app" / "v2.txt").read_bytes() == b"version 2\n"
    assert not any(p.name.startswith(".wh.") for p in root.rglob("*"))
    assert _roundtrip(splits[2], [root]) == test_images.multi_layer.layers[2].diff_id
    assert _roundtrip(splits[0], [root]) == test_images.multi_layer.layers[0].diff_id


def test_aufs_keeps_whiteout_files(test_images, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    layer = test_images.multi_layer.layers[2]
    _apply(layer.data, tmp_path / "l", WhiteoutFormat.AUFS)
    assert (tmp_path / "l" / "srv" / ".wh.data").is_file()
    assert (tmp_path / "l" / "opt" / "app" / ".wh..wh..opq").is_file()


def test_reassemble_falls_back_to_lower_dirs(test_images, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    layer = test_images.single_layer.layers[0]
    _, split = _apply(layer.data, tmp_path / "lower")
    (tmp_path / "upper").mkdir()
    assert _roundtrip(split, [tmp_path / "upper", tmp_path / "lower"]) == layer.diff_id


def test_unprivileged_fsops_refuse_or_skip_devices(tmp_path: Path) -> None:
    """The rootless policy, exercised through UnprivilegedFsOps (as root too: the strategy decides)."""
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dev = tarfile.TarInfo("null")
        dev.type, dev.devmajor, dev.devminor = tarfile.CHRTYPE, 1, 3
        tar.addfile(dev)
        tar.addfile(tarfile.TarInfo("after"), io.BytesIO(b""))
    (tmp_path / "a").mkdir()
    with pytest.raises(UnsupportedEntryError):
        apply_layer(io.BytesIO(buf.getvalue()), tmp_path / "a", options=ApplyOptions(fsops=UnprivilegedFsOps()))
    (tmp_path / "b").mkdir()
    result = apply_layer(io.BytesIO(buf.getvalue()), tmp_path / "b",
                         options=ApplyOptions(fsops=UnprivilegedFsOps(), skip_devices=True))
    assert not (tmp_path / "b" / "null").exists() and (tmp_path / "b" / "after").exists()
    assert any("null" in warning for warning in result.warnings)
