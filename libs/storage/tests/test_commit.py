"""Commit in-library: a container's diff (Store.container_diff) made into a layer and an image, then run by
podman and set beside buildah's own commit of the same container (root: vfs and overlay; rootless below)."""

from __future__ import annotations

import ast
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from pallet.storage import records
from pallet.storage.image_store import pulled_big_data
from pallet.storage.store import Store
from pallet_testing import images
from pallet_testing.users import end_pause_process

sys.path.insert(0, str(Path(__file__).parent))  # --import-mode=importlib: the sibling module by path
from test_containers import Roots, put_image, roots  # noqa: E402,F401 - roots: the fixture, used by name

SPARSE_SIZE = 8 << 20
SPARSE_HEAD, SPARSE_TAIL = b"head\n", b"tail\n"
CAP_NET_RAW = b"\x01\x00\x00\x02\x00\x20\x00\x00" + bytes(12)  # v2 caps, cap_net_raw permitted + effective


def sparse_bytes() -> bytes:
    return SPARSE_HEAD + bytes(SPARSE_SIZE - len(SPARSE_HEAD) - len(SPARSE_TAIL)) + SPARSE_TAIL


def change_rootfs(root: Path) -> None:
    """What the container does: a deleted file, an opaque directory replacement, a modified file, a hard link
    pair with an xattr, a file capability and a sparse file."""
    (root / "etc" / "pallet-release").unlink()
    shutil.rmtree(root / "opt" / "app")  # a lower directory replaced: overlay makes the new one opaque
    (root / "opt" / "app").mkdir()
    (root / "opt" / "app" / "v3.txt").write_bytes(b"version 3\n")
    (root / "hello.txt").write_bytes(b"hello from the commit\n")
    (root / "data").mkdir()
    (root / "data" / "a").write_bytes(b"linked\n")
    os.link(root / "data" / "a", root / "data" / "b")
    os.setxattr(root / "data" / "a", "user.pallet", b"hello")
    shutil.copyfile(root / "bin" / "busybox", root / "bin" / "ping")
    (root / "bin" / "ping").chmod(0o755)
    if shutil.which("setcap"):
        subprocess.run(["setcap", "cap_net_raw+ep", str(root / "bin" / "ping")], check=True, capture_output=True)
    else:
        os.setxattr(root / "bin" / "ping", "security.capability", CAP_NET_RAW)
    long_dir = root / "data" / ("d" * 70)  # a path over 100 bytes: USTAR prefix + name, as Go splits it
    long_dir.mkdir()
    (long_dir / ("f" * 60)).write_bytes(b"long\n")
    (long_dir / ("x" * 60)).write_bytes(b"long, with an xattr: PAX\n")
    os.setxattr(long_dir / ("x" * 60), "user.long", b"1")
    cut = root / "data" / ("i" * 94)  # with PAX, Go cuts the header name at 100 bytes, here a trailing '/'
    cut.mkdir()
    (cut / "f").write_bytes(b"cut\n")
    os.setxattr(cut / "f", "user.cut", b"1")
    (root / "data" / "\u00e9t\u00e9.txt").write_bytes(b"non-ASCII name\n")
    (root / "data" / "long-link").symlink_to("t" * 150)
    (long_dir / ("l" * 60)).symlink_to("u" * 150)  # PAX path and linkpath records, in Go's (key) order
    with open(root / "data" / "sparse", "wb") as handle:
        handle.write(SPARSE_HEAD)
        handle.seek(SPARSE_SIZE - len(SPARSE_TAIL))
        handle.write(SPARSE_TAIL)


def commit(store: Store, container: str, name: str, scratch: Path) -> tuple[str, Any]:
    """Diff the container (gzip), make the layer on the image's top layer and an image whose config lists the
    new diff_id: c/image's layer and image IDs, config and manifest big data. Returns (image ID, the diff)."""
    blob = scratch / "layer.tar.gz"
    with open(blob, "wb") as out:
        diff = store.container_diff(container, out, "gzip")
    with store.reading() as view:
        found = view.container(container)
        base = view.lookup_image(found.image)
        manifest = json.loads(view.image_big_data(base.id, "manifest"))
        config = json.loads(view.image_big_data(base.id, manifest["config"]["digest"]))
    config["rootfs"]["diff_ids"].append(diff.diff_id)
    config["history"].append({"created": images.CREATED, "created_by": "pallet commit test"})
    config_data = images.canonical_json(config)
    config_digest = images.sha256(config_data)
    manifest["config"] = {**manifest["config"], "digest": config_digest, "size": len(config_data)}
    manifest["layers"].append({"mediaType": images.OCI_LAYER["gzip"], "digest": diff.digest, "size": diff.written})
    manifest_data = images.canonical_json(manifest)
    image_id = records.image_id_for_config(config_digest)
    with store.writing() as view, open(blob, "rb") as stream:
        layer = view.create_layer(base.top_layer, stream, layer_id=records.layer_chain_id(base.top_layer, diff.diff_id),
                                  uncompressed_digest=diff.diff_id)
        assert (layer.compressed_digest, layer.compressed_size) == (diff.digest, diff.written)
        view.create_image(image_id, layer.id, [name], "{}",
                          pulled_big_data(config_digest, config_data, images.sha256(manifest_data), manifest_data),
                          created=images.CREATED)
    return image_id, diff


def members(tar_bytes: bytes) -> dict[str, tuple[Any, ...]]:
    """name -> (type, mode, uid, gid, size, linkname, xattrs, content sha256, mtime, uname, gname, other PAX
    keys, header format) of a layer tar."""
    out: dict[str, tuple[Any, ...]] = {}
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        for member in tar:
            content = tar.extractfile(member) if member.isreg() else None
            xattrs = {k: v for k, v in member.pax_headers.items() if k.startswith("SCHILY.xattr.")}
            out[member.name.rstrip("/").removeprefix("./")] = (
                member.type, member.mode, member.uid, member.gid, member.size, member.linkname, xattrs,
                hashlib.sha256(content.read()).hexdigest() if content else "", member.mtime, member.uname,
                member.gname, sorted(k for k in member.pax_headers if not k.startswith("SCHILY.xattr.")),
                _header_format(tar_bytes, member.offset))
    return out


def _header_format(tar_bytes: bytes, offset: int) -> str:
    """The header block's magic and type flag at ``offset`` (``ustar\\x0000`` POSIX, ``ustar  \\x00`` GNU)."""
    block = tar_bytes[offset:offset + 512]
    return repr(block[257:265]) + " " + repr(block[156:157])


CHECK = ("test -e /etc/pallet-release && echo present || echo gone; ls -A /opt/app; cat /hello.txt; "
         "busybox stat -c '%h %i' /data/a /data/b; cat /data/b; busybox stat -c %s /data/sparse; "
         "busybox md5sum /data/sparse; busybox stat -c '%a' /bin/ping")


def check_output(out: str, ino_check: bool = True) -> None:
    lines = out.splitlines()
    assert lines[0] == "gone" and lines[1] == "v3.txt" and lines[2] == "hello from the commit"
    (links_a, ino_a), (links_b, ino_b) = lines[3].split(), lines[4].split()
    assert links_a == links_b == "2" and ino_a == ino_b
    assert lines[5] == "linked" and lines[6] == str(SPARSE_SIZE)
    assert lines[7].split()[0] == hashlib.md5(sparse_bytes()).hexdigest()
    assert lines[8] == "755"


def test_commit_a_container_in_library_podman_runs_it_and_buildah_commits_alike(
        roots: Roots, test_images: Any, podman: str, buildah: str, crun: str, tmp_path: Path) -> None:
    store = roots.open()
    image_id = put_image(store, test_images.multi_layer, ["localhost/multi:v1"])
    with store.writing() as view:
        made = view.create_container(image_id, names=["c1"])
    change_rootfs(Path(store.mount("c1")))
    assert store.unmount("c1") is False
    first, again = io.BytesIO(), io.BytesIO()
    diff = store.container_diff("c1", first)
    assert store.container_diff("c1", again) == diff and again.getvalue() == first.getvalue()  # deterministic
    assert (diff.diff_id, diff.size) == (images.sha256(first.getvalue()), len(first.getvalue()))
    assert (diff.digest, diff.written, diff.compression) == (diff.diff_id, diff.size, "none")
    assert roots.raw("mountpoints.json") == []  # the diff mounted nothing
    ours = members(first.getvalue())
    whiteouts = {"etc/.wh.pallet-release"}
    if roots.driver == "overlay":
        whiteouts.add("opt/app/.wh..wh..opq")
    else:  # vfs compares trees: each child of the replaced directory is whited out
        whiteouts.add("opt/app/.wh.v2.txt")
    assert whiteouts <= ours.keys()
    assert ours["data/b"][0] == tarfile.LNKTYPE and ours["data/b"][5] == "data/a"
    assert ours["data/a"][6] == {"SCHILY.xattr.user.pallet": "hello"}
    assert "SCHILY.xattr.security.capability" in ours["bin/ping"][6]
    assert ours["data/sparse"][4] == SPARSE_SIZE

    new_id, gz = commit(store, "c1", "localhost/committed:1", tmp_path)
    assert (gz.diff_id, gz.size) == (diff.diff_id, diff.size)
    assert gzip.decompress((tmp_path / "layer.tar.gz").read_bytes()) == first.getvalue()
    zst = io.BytesIO()
    assert store.container_diff("c1", zst, "zstd").diff_id == diff.diff_id
    import zstandard
    assert zstandard.ZstdDecompressor().stream_reader(io.BytesIO(zst.getvalue())).read() == first.getvalue()

    # (a) podman runs the new image and sees the changes
    check_output(roots.podman("run", "--rm", "--net=none", "localhost/committed:1", "sh", "-c", CHECK))
    mounted = Path(roots.podman("image", "mount", "localhost/committed:1").strip())
    try:
        assert os.getxattr(mounted / "data" / "a", "user.pallet") == b"hello"
        assert os.getxattr(mounted / "data" / "b", "user.pallet") == b"hello"
        if shutil.which("getcap"):
            assert "cap_net_raw" in subprocess.run(["getcap", str(mounted / "bin" / "ping")], capture_output=True,
                                                   text=True, check=True).stdout
        assert os.getxattr(mounted / "bin" / "ping", "security.capability")[4:8] == CAP_NET_RAW[4:8]
        assert not (mounted / "etc" / "pallet-release").exists()
        assert os.stat(mounted / "data" / "sparse").st_size == SPARSE_SIZE  # holes come back as zeros (as Go's)
    finally:
        roots.podman("image", "unmount", "localhost/committed:1")
    inspected = json.loads(roots.podman("image", "inspect", "localhost/committed:1"))[0]
    assert inspected["Id"] == new_id and inspected["RootFS"]["Layers"][-1] == diff.diff_id

    # (c) buildah's commit of the same container: same files, same contents
    buildah_id = roots.buildah("commit", "--quiet", made.id, "localhost/bcommit:1").strip()
    with store.reading() as view:
        top = view.layer(view.lookup_image(buildah_id).top_layer)
        theirs_tar = io.BytesIO()
        view.layer_diff(top.id, theirs_tar)
    theirs = members(theirs_tar.getvalue())
    report = compare(ours, theirs)
    print(f"[{roots.driver}] ours {diff.diff_id} ({diff.size} bytes), buildah {top.uncompressed_digest} "
          f"({top.uncompressed_size} bytes); differences: {json.dumps(report)}")
    assert (report["only_ours"], report["only_theirs"], report["content"]) == ([], [], [])
    assert report["order_same"] and len(theirs_tar.getvalue()) == diff.size
    if roots.driver == "overlay":  # c/storage reads the upper dir too: the same bytes
        assert theirs_tar.getvalue() == first.getvalue() and top.uncompressed_digest == diff.diff_id
        assert report["fields"] == {}
    else:  # vfs: c/storage's naive diff stamps whiteouts with the time of the diff; ours with the directory's
        assert set(report["fields"]) <= {"mtime"}
        assert {name for name, _, _ in report["fields"].get("mtime", [])} <= whiteouts
    assert store.container_diff("c1", io.BytesIO()) == diff  # buildah's commit changed nothing we diff


def compare(ours: dict[str, tuple[Any, ...]], theirs: dict[str, tuple[Any, ...]]) -> dict[str, Any]:
    fields = ("type", "mode", "uid", "gid", "size", "linkname", "xattrs", "", "mtime", "uname", "gname", "pax",
              "format")
    report: dict[str, Any] = {"only_ours": sorted(ours.keys() - theirs.keys()),
                              "only_theirs": sorted(theirs.keys() - ours.keys()), "content": [], "fields": {},
                              "order_same": [k for k in ours if k in theirs] == [k for k in theirs if k in ours]}
    for name in sorted(ours.keys() & theirs.keys()):
        a, b = ours[name], theirs[name]
        if a[7] != b[7]:
            report["content"].append(name)
        for index, field in enumerate(fields):
            if field and a[index] != b[index]:
                report["fields"].setdefault(field, []).append([name, repr(a[index]), repr(b[index])])
    return report


def test_diff_of_a_mounted_container_keeps_its_mount_counts(roots: Roots, test_images: Any) -> None:
    store = roots.open()
    image_id = put_image(store, test_images.multi_layer, ["localhost/multi:v1"])
    with store.writing() as view:
        view.create_container(image_id, names=["c1"])
    path = store.mount("c1")
    assert store.mount("c1") == path
    (Path(path) / "hello.txt").write_bytes(b"changed\n")
    (Path(path) / "srv").rmdir()
    before = roots.raw("mountpoints.json")
    mounted = io.BytesIO()
    diff = store.container_diff("c1", mounted)
    assert roots.raw("mountpoints.json") == before and before[0]["count"] == 2
    assert Path(path, "hello.txt").read_bytes() == b"changed\n"  # still mounted (overlay) and unchanged
    with store.reading() as view:
        assert view.mount_count("c1") == 2
    assert sorted(members(mounted.getvalue())) == [".wh.srv", "hello.txt"]
    assert store.unmount("c1", force=True) is False
    after = io.BytesIO()
    assert store.container_diff("c1", after) == diff and after.getvalue() == mounted.getvalue()
    with pytest.raises(ValueError):
        store.container_diff("c1", io.BytesIO(), "bzip2")


class _Sink:
    """A file object that only hashes: the diff is never held in memory."""

    def __init__(self) -> None:
        self.sha = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        return len(data)

    def flush(self) -> None:
        pass


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_a_large_diff_streams_in_constant_memory(tmp_path: Path, compression: str) -> None:
    import tracemalloc

    from pallet.storage.config import StoreOptions

    store = Store.open(StoreOptions(graph_root=str(tmp_path / "g"), run_root=str(tmp_path / "r"), driver="vfs"))
    with store.writing() as view:
        view.create_container("", names=["big"])  # scratch: vfs diffs the whole tree
    path = Path(store.mount("big"))
    chunk = os.urandom(1 << 20)
    with open(path / "big.bin", "wb") as handle:
        for _ in range(48):
            handle.write(chunk)
    sink = _Sink()
    tracemalloc.start()
    try:
        diff = store.container_diff("big", sink, compression)  # type: ignore[arg-type]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert diff.size > 48 << 20 and diff.digest == "sha256:" + sink.sha.hexdigest()
    assert peak < 8 << 20, f"{peak} bytes at peak for a {diff.size}-byte diff"


# -- rootless: the store work in podman's user namespace; podman and buildah as the unprivileged user ----------

ROOTLESS = r"""
import hashlib, io, json, os, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from pallet.storage.userns.unshare import run_in_userns

def work(top, phase, driver):
    from test_commit import change_rootfs, commit, compare, members
    from test_containers import put_image
    from pallet.storage.config import StoreOptions
    from pallet.storage.store import Store
    from pallet_testing import images
    store = Store.open(StoreOptions(graph_root=top + "/g", run_root=top + "/r", driver=driver, rootless=True))
    ours = Path(top, "ours.tar")
    if phase == "commit":
        image_id = put_image(store, images.multi_layer(), ["localhost/multi:v1"])
        with store.writing() as view:
            made = view.create_container(image_id, names=["c1"])
        change_rootfs(Path(store.mount("c1")))
        store.unmount("c1")
        with open(ours, "wb") as out:
            first = store.container_diff("c1", out)
        again = io.BytesIO()
        same = store.container_diff("c1", again) == first and again.getvalue() == ours.read_bytes()
        scratch = Path(top, "scratch")
        scratch.mkdir()
        new_id, _ = commit(store, "c1", "localhost/committed:1", scratch)
        names = sorted(members(ours.read_bytes()))
        return {"container": made.id, "image": new_id, "diff_id": first.diff_id, "same": same, "names": names}
    with store.reading() as view:
        found = view.lookup_image("localhost/bcommit:1")
        theirs = io.BytesIO()
        view.layer_diff(found.top_layer, theirs)
        digest = view.layer(found.top_layer).uncompressed_digest
    report = compare(members(ours.read_bytes()), members(theirs.getvalue()))
    return {"identical": theirs.getvalue() == ours.read_bytes(), "digest": digest, "report": report}

print(json.dumps(run_in_userns(work, sys.argv[2], sys.argv[3], sys.argv[4])))
"""


@pytest.mark.rootless
@pytest.mark.parametrize("driver", ["vfs", "overlay"])
def test_rootless_commit_podman_runs_it_and_buildah_commits_alike(  # type: ignore[no-untyped-def]
        rootless_user, rootless_tmp_path: Path, podman: str, buildah: str, crun: str, test_images: Any,
        driver: str) -> None:
    try:
        _rootless_commit(rootless_user, str(rootless_tmp_path), podman, buildah, driver)
    finally:  # podman's pause process for this --tmpdir: this test's own
        end_pause_process(rootless_tmp_path / "r" / "libpod")


def _rootless_commit(rootless_user: Any, top: str, podman: str, buildah: str, driver: str) -> None:
    here = str(Path(__file__).parent)
    done = rootless_user.run([sys.executable, "-c", ROOTLESS, here, top, "commit", driver], timeout=300)
    if done.returncode != 0 and b"MountFailed" in done.stderr and b"Operation not permitted" in done.stderr:
        pytest.skip("this kernel refuses overlay mounts in a user namespace")
    assert done.returncode == 0, done.stderr.decode()
    made = json.loads(done.stdout)
    assert made["same"]  # deterministic in the user namespace too
    whiteout = "opt/app/.wh..wh..opq" if driver == "overlay" else "opt/app/.wh.v2.txt"
    assert {"etc/.wh.pallet-release", whiteout, "data/b", "bin/ping"} <= set(made["names"])
    store_args = ["--root", f"{top}/g", "--runroot", f"{top}/r", "--storage-driver", driver]
    ran = rootless_user.run([podman, *store_args, "--tmpdir", f"{top}/r/libpod", "run", "--rm", "--net=none",
                             "localhost/committed:1", "sh", "-c", CHECK], timeout=300)
    assert ran.returncode == 0, ran.stderr.decode()
    check_output(ran.stdout.decode())
    inspected = rootless_user.run([podman, *store_args, "--tmpdir", f"{top}/r/libpod", "image", "inspect",
                                   "localhost/committed:1"])
    assert inspected.returncode == 0, inspected.stderr.decode()
    assert json.loads(inspected.stdout)[0]["RootFS"]["Layers"][-1] == made["diff_id"]
    committed = rootless_user.run([buildah, *store_args, "commit", "--quiet", made["container"],
                                   "localhost/bcommit:1"], timeout=300)
    assert committed.returncode == 0, committed.stderr.decode()
    done = rootless_user.run([sys.executable, "-c", ROOTLESS, here, top, "compare", driver], timeout=300)
    assert done.returncode == 0, done.stderr.decode()
    got = json.loads(done.stdout)
    print(f"[rootless {driver}] ours {made['diff_id']}, buildah {got['digest']}: {json.dumps(got['report'])}")
    report = got["report"]
    assert (report["only_ours"], report["only_theirs"], report["content"]) == ([], [], [])
    if driver == "vfs":
        assert set(report["fields"]) <= {"mtime"}
        return
    # c/storage 1.43 in a user namespace keeps the upper dir's user.overlay.origin/impure xattrs in the tar
    # (so a PAX header where we write none); we leave every overlay xattr out. Nothing else differs.
    assert set(report["fields"]) <= {"xattrs", "format"}
    for name, ours_xattrs, theirs_xattrs in report["fields"].get("xattrs", []):
        leaked = ast.literal_eval(theirs_xattrs).keys() - ast.literal_eval(ours_xattrs).keys()
        assert all(key.startswith("SCHILY.xattr.user.overlay.") for key in leaked), name
    assert {name for name, _, _ in report["fields"].get("format", [])} <= {
        name for name, _, _ in report["fields"].get("xattrs", [])}
