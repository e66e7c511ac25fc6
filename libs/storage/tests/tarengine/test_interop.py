"""Beside the real containers/storage (through skopeo into a private vfs store): the same tar-split
entries and the same extracted trees for every corpus tar that both accept."""

from __future__ import annotations

import base64
import gzip
import io
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
from corpus import MTIME, Case, corpus

from pallet.storage.tarengine import ApplyOptions, WhiteoutFormat, apply_layer

pytestmark = pytest.mark.interop

# Go refuses these "contained" cases (its chroot does not create dirs through a dangling symlink); we contain them.
GO_REFUSES = {"symlink-relative-escape", "symlink-absolute-escape", "symlink-chain-escape", "symlink-dir-then-deep-write"}


def _go_store(skopeo: str, case: Case, top: Path) -> tuple[list[dict[str, object]], Path]:
    from pallet_testing import images

    layer = images.Layer(images.OCI_LAYER["none"], case.data, diff_id=images.sha256(case.data))
    oci = top / "oci"
    images.write_oci_layout(oci, {"t": images.make_image((layer,))})
    store = f"containers-storage:[vfs@{top}/root+{top}/run]localhost/t:1"
    done = subprocess.run([skopeo, "copy", "--quiet", f"oci:{oci}:t", store], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    (record,) = json.loads((top / "root" / "vfs-layers" / "layers.json").read_text())
    split = gzip.decompress((top / "root" / "vfs-layers" / f"{record['id']}.tar-split.gz").read_bytes())
    return [json.loads(line) for line in split.splitlines()], top / "root" / "vfs" / "dir" / record["id"]


def _without_trailer(entries: list[dict[str, object]]) -> tuple[list[dict[str, object]], bytes]:
    """Entries up to the last member's next segment; the rest joined (Go splits it as its reader delivers)."""
    last = max(i for i, e in enumerate(entries) if e["type"] == 1) if any(e["type"] == 1 for e in entries) else -1
    head = entries[:last + 2]
    tail = b"".join(base64.b64decode(str(e["payload"])) for e in entries[last + 2:] if e["payload"])
    return head, tail


def _tree(root: Path) -> dict[str, tuple[object, ...]]:
    out: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            key = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_rdev)
            if stat.S_ISLNK(st.st_mode):
                out[str(path.relative_to(root))] = key + (os.readlink(path),)
                continue
            xattrs = tuple(sorted((k, os.getxattr(path, k)) for k in os.listxattr(path)))
            data = path.read_bytes() if stat.S_ISREG(st.st_mode) else b""
            # Directories made implicitly (no entry in the tar) carry "now" on both sides: not compared.
            mtime = st.st_mtime_ns if not stat.S_ISDIR(st.st_mode) or abs(st.st_mtime - MTIME) < 1000 else None
            out[str(path.relative_to(root))] = key + (mtime, data, xattrs, st.st_nlink)
    return out


def _cases() -> list[object]:
    return [pytest.param(c, id=c.name) for c in corpus() if c.expect != "refused" and c.name not in GO_REFUSES]


@pytest.mark.skipif(os.geteuid() != 0, reason="a rootful vfs store")
@pytest.mark.parametrize("case", _cases())
def test_same_tar_split_and_tree_as_containers_storage(case: Case, skopeo: str, tmp_path: Path) -> None:
    go_entries, go_dir = _go_store(skopeo, case, tmp_path / "go")
    ours_dir = tmp_path / "ours"
    ours_dir.mkdir()
    split = io.BytesIO()
    apply_layer(io.BytesIO(case.data), ours_dir, tar_split=split,
                options=ApplyOptions(whiteouts=WhiteoutFormat.VFS, limits=case.limits))
    ours = [json.loads(line) for line in gzip.decompress(split.getvalue()).splitlines()]
    assert _without_trailer(ours) == _without_trailer(go_entries)
    if case.name == "overlay-xattr-smuggling":
        # A deliberate difference: containers/storage sets overlay xattrs from the tar; we drop them.
        assert "trusted.overlay.redirect" in os.listxattr(go_dir / "redirected")
        assert not [k for k in os.listxattr(ours_dir / "redirected") if ".overlay." in k]
        return
    assert _tree(ours_dir) == _tree(go_dir)


@pytest.mark.skipif(os.geteuid() != 0, reason="a rootful store")
@pytest.mark.parametrize("driver", ["vfs", "overlay"])
def test_multi_layer_image_like_containers_storage(driver: str, skopeo: str, test_images, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from pallet_testing import images

    image = test_images.multi_layer
    images.write_oci_layout(tmp_path / "oci", {"t": image})
    store = f"containers-storage:[{driver}@{tmp_path}/root+{tmp_path}/run]localhost/t:1"
    try:
        done = subprocess.run([skopeo, "copy", "--quiet", f"oci:{tmp_path}/oci:t", store], capture_output=True,
                              text=True, timeout=120)
    finally:
        home = str(tmp_path / "root" / "overlay")  # the overlay driver bind-mounts its home on itself
        if any(line.split()[1] == home for line in Path("/proc/self/mounts").read_text().splitlines()):
            subprocess.run(["umount", home], check=False)
    if done.returncode != 0 and driver == "overlay" and "overlay" in done.stderr:
        pytest.skip(f"kernel overlay unavailable here: {done.stderr.strip()[-200:]}")
    assert done.returncode == 0, done.stderr
    records = {r["diff-digest"]: r["id"] for r in json.loads((tmp_path / "root" / f"{driver}-layers" / "layers.json").read_text())}
    fmt = WhiteoutFormat.VFS if driver == "vfs" else WhiteoutFormat.OVERLAY
    ours_dir = tmp_path / "ours"
    for layer in image.layers:
        layer_id = records[layer.diff_id]
        go_split = gzip.decompress((tmp_path / "root" / f"{driver}-layers" / f"{layer_id}.tar-split.gz").read_bytes())
        if driver == "overlay":
            ours_dir = tmp_path / "ours" / layer_id
        ours_dir.mkdir(parents=True, exist_ok=True)
        split = io.BytesIO()
        apply_layer(io.BytesIO(layer.data), ours_dir, tar_split=split, options=ApplyOptions(whiteouts=fmt))
        ours = [json.loads(line) for line in gzip.decompress(split.getvalue()).splitlines()]
        assert _without_trailer(ours) == _without_trailer([json.loads(line) for line in go_split.splitlines()])
        go_dir = tmp_path / "root" / "vfs" / "dir" / layer_id if driver == "vfs" else \
            tmp_path / "root" / "overlay" / layer_id / "diff"
        go_tree, our_tree = _tree(go_dir), _tree(ours_dir)
        for tree in (go_tree, our_tree):  # whiteout devices get "now" as mtime on both sides
            for key, value in tree.items():
                if value[0] == stat.S_IFCHR and value[4] == 0:
                    tree[key] = value[:5] + (None,) + value[6:]
        assert our_tree == go_tree
