"""Property: any small tree → tar (any format) → apply → same tree, and tar-split rebuilds the same bytes."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pallet.storage.tarengine import ApplyOptions, WhiteoutFormat, apply_layer, reassemble

NAMES = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\x00"),
                min_size=1, max_size=40).filter(lambda s: s not in (".", "..") and not s.startswith(".wh.")
                                                and len(s.encode()) <= 255)
FILE = st.tuples(st.just("file"), st.binary(max_size=3000), st.sampled_from([0o644, 0o755, 0o600, 0o4755]))
LINK = st.tuples(st.just("symlink"), st.text(alphabet="abc./", min_size=1, max_size=20), st.just(0o777))
TREES = st.recursive(
    st.one_of(FILE, LINK),
    lambda children: st.dictionaries(NAMES, children, max_size=5),
    max_leaves=25,
)
FORMATS = st.sampled_from([tarfile.PAX_FORMAT, tarfile.GNU_FORMAT])


def _members(tree: object, prefix: str) -> list[tuple[tarfile.TarInfo, bytes]]:
    out: list[tuple[tarfile.TarInfo, bytes]] = []
    items = tree.items() if isinstance(tree, dict) else []
    for name, node in sorted(items):
        path = f"{prefix}{name}"
        info = tarfile.TarInfo(path)
        info.mtime = 1_700_000_000
        if isinstance(node, dict):
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            out.append((info, b""))
            out += _members(node, path + "/")
        elif node[0] == "file":
            info.size, info.mode = len(node[1]), node[2]
            out.append((info, node[1]))
        else:
            info.type, info.linkname, info.mode = tarfile.SYMTYPE, node[1], 0o777
            out.append((info, b""))
    return out


def _tar(tree: object, fmt: int, trailing: bytes) -> tuple[bytes, list[tuple[tarfile.TarInfo, bytes]]]:
    members = _members(tree, "")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue() + trailing, members


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=st.dictionaries(NAMES, TREES, max_size=6), fmt=FORMATS, trailing=st.binary(max_size=600))
def test_tree_roundtrip(tree: dict[str, object], fmt: int, trailing: bytes) -> None:
    data, members = _tar(tree, fmt, trailing)
    layer = Path(tempfile.mkdtemp())
    try:
        split = io.BytesIO()
        result = apply_layer(io.BytesIO(data), layer, tar_split=split,
                             options=ApplyOptions(whiteouts=WhiteoutFormat.VFS))
        assert result.diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
        for info, content in members:
            path = layer / info.name
            if info.isdir():
                assert path.is_dir() and not path.is_symlink()
            elif info.issym():
                assert os.readlink(path) == info.linkname
            else:
                assert path.read_bytes() == content
                assert os.lstat(path).st_mode & 0o7777 == info.mode
                assert os.lstat(path).st_mtime == info.mtime
        out = io.BytesIO()
        digest, _ = reassemble(io.BytesIO(split.getvalue()), [layer], out)
        assert out.getvalue() == data and digest == result.diff_id
    finally:
        shutil.rmtree(layer)
