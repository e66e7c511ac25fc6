"""Diffs for commit: deterministic, whiteouts right, and applying a diff onto the parent gives the new tree."""

from __future__ import annotations

import io
import os
import shutil
import stat
import tarfile
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pallet.storage.tarengine import ApplyOptions, WhiteoutFormat, apply_layer
from pallet.storage.tarengine.diff import diff_trees, diff_upper

MTIME = 1_700_000_000
NAMES = st.sampled_from(["a", "b", "c", "dir", "é", "x.txt"])
NODES = st.recursive(
    st.one_of(st.tuples(st.just("file"), st.binary(max_size=200), st.sampled_from([0o644, 0o755])),
              st.tuples(st.just("symlink"), st.sampled_from(["a", "../b", "/c"]), st.just(0o777))),
    lambda children: st.dictionaries(NAMES, children, max_size=4), max_leaves=15)
TREES = st.dictionaries(NAMES, NODES, max_size=5)


def build_tree(root: Path, tree: dict[str, object], links: bool = False) -> None:
    for name, node in tree.items():
        path = root / name
        if isinstance(node, dict):
            path.mkdir()
            build_tree(path, node)
        elif node[0] == "file":
            path.write_bytes(node[1])
            path.chmod(node[2])
            os.utime(path, (MTIME, MTIME + len(node[1])))
        else:
            path.symlink_to(node[1])


def snapshot(root: Path) -> dict[str, tuple[object, ...]]:
    out: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st_ = path.lstat()
            rel = str(path.relative_to(root))
            if stat.S_ISLNK(st_.st_mode):
                out[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st_.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st_.st_mode))
            else:
                out[rel] = ("file", stat.S_IMODE(st_.st_mode), path.read_bytes(), int(st_.st_mtime))
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(old=TREES, new=TREES)
def test_diff_then_apply_gives_the_new_tree(old: dict[str, object], new: dict[str, object]) -> None:
    top = Path(tempfile.mkdtemp())
    try:
        (top / "old").mkdir()
        (top / "new").mkdir()
        build_tree(top / "old", old)
        build_tree(top / "new", new)
        out = io.BytesIO()
        result = diff_trees(top / "new", top / "old", out, compare_content=True)
        again = io.BytesIO()
        assert diff_trees(top / "new", top / "old", again, compare_content=True) == result
        assert again.getvalue() == out.getvalue()
        shutil.copytree(top / "old", top / "applied", symlinks=True)
        apply_layer(io.BytesIO(out.getvalue()), top / "applied", options=ApplyOptions(whiteouts=WhiteoutFormat.VFS))
        assert snapshot(top / "applied") == snapshot(top / "new")
    finally:
        shutil.rmtree(top)


def test_unchanged_tree_gives_an_empty_diff(tmp_path: Path) -> None:
    for side in ("old", "new"):
        (tmp_path / side).mkdir()
        build_tree(tmp_path / side, {"d": {"f": ("file", b"x", 0o644)}})
    out = io.BytesIO()
    assert diff_trees(tmp_path / "new", tmp_path / "old", out).entries == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="0/0 devices and trusted.* xattrs need root")
def test_upper_dir_whiteouts_hardlinks_xattrs(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    (upper / "opaque").mkdir(parents=True)
    os.setxattr(upper / "opaque", "trusted.overlay.opaque", b"y")
    (upper / "opaque" / "new").write_bytes(b"n")
    os.mknod(upper / "deleted", stat.S_IFCHR, os.makedev(0, 0))
    (upper / "bin").mkdir()
    (upper / "bin" / "ping").write_bytes(b"\x7fELF")
    cap = b"\x01\x00\x00\x02\x00\x20\x00\x00" + bytes(12)
    os.setxattr(upper / "bin" / "ping", "security.capability", cap)
    os.link(upper / "bin" / "ping", upper / "bin" / "ping6")
    out = io.BytesIO()
    diff_upper(upper, out)
    names = {m.name: m for m in tarfile.open(fileobj=io.BytesIO(out.getvalue()))}
    assert {".wh.deleted", "opaque/.wh..wh..opq", "opaque/new", "bin/ping6"} <= names.keys()
    assert names["bin/ping6"].type == tarfile.LNKTYPE and names["bin/ping6"].linkname == "bin/ping"
    assert "trusted.overlay.opaque" not in str(names["opaque"].pax_headers)
    back = tmp_path / "back"
    back.mkdir()
    apply_layer(io.BytesIO(out.getvalue()), back)
    assert os.getxattr(back / "opaque", "trusted.overlay.opaque") == b"y"
    assert os.lstat(back / "deleted").st_rdev == 0 and stat.S_ISCHR(os.lstat(back / "deleted").st_mode)
    assert os.getxattr(back / "bin" / "ping6", "security.capability") == cap
    assert os.lstat(back / "bin" / "ping").st_ino == os.lstat(back / "bin" / "ping6").st_ino
