"""Rootless overlay: layers written and mounted (``userxattr``) inside a user namespace with podman's
mapping, as the unprivileged test user."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

SCRIPT = r"""
import json, os, stat, sys
sys.path.insert(0, sys.argv[1])
from pallet.storage.userns.unshare import run_in_userns

def work(top):
    from drivers_support import apply_chain, check_merged_tree, mounted_under
    from pallet.storage.drivers import OverlayDriver
    from pallet_testing import images
    driver = OverlayDriver(os.path.join(top, "overlay"), rootless=True)
    ids = apply_chain(driver, [layer.data for layer in images.multi_layer().layers])
    diff = driver.layer_dir(ids[-1])
    out = {"opaque": os.getxattr(os.path.join(diff, "opt/app"), "user.overlay.opaque").decode(),
           "trusted": [k for k in os.listxattr(os.path.join(diff, "opt/app")) if k.startswith("trusted.")],
           "whiteout": stat.S_ISCHR(os.lstat(os.path.join(diff, "srv/data")).st_mode),
           "uid_in_ns": os.geteuid()}
    try:
        merged = driver.mount(ids[-1])
        check_merged_tree(__import__("pathlib").Path(merged))
        line = next(l for l in open("/proc/self/mountinfo") if l.split()[4] == merged)
        out["options"] = line.split(" - ")[1].split()[2].split(",")
        with open(os.path.join(merged, "written-in-ns"), "w") as file:
            file.write("rootless upper\n")
    finally:
        driver.unmount(ids[-1])
    out["left_mounted"] = mounted_under(__import__("pathlib").Path(top))
    out["upper"] = open(os.path.join(diff, "written-in-ns")).read()
    driver.remove(ids[-1])
    out["removed"] = not driver.exists(ids[-1])
    return out

print(json.dumps(run_in_userns(work, sys.argv[2])))
"""


@pytest.mark.rootless
def test_rootless_overlay_mount_with_userxattr(rootless_user, rootless_tmp_path: Path, test_images) -> None:  # type: ignore[no-untyped-def]
    done = rootless_user.run([sys.executable, "-c", SCRIPT, str(Path(__file__).parent), str(rootless_tmp_path)])
    if done.returncode != 0 and b"MountFailed" in done.stderr and b"Operation not permitted" in done.stderr:
        pytest.skip("this kernel refuses overlay mounts in a user namespace")
    assert done.returncode == 0, done.stderr.decode()
    got = json.loads(done.stdout)
    assert got["uid_in_ns"] == 0
    assert got["opaque"] == "y" and got["trusted"] == [] and got["whiteout"] is True
    assert "userxattr" in got["options"]
    (lowerdir,) = [option for option in got["options"] if option.startswith("lowerdir=")]
    assert [entry.rsplit("/", 1)[0] for entry in lowerdir[len("lowerdir="):].split(":")] == \
        [f"{rootless_tmp_path}/overlay/l"] * 2  # the unresolved short links, nearest parent first
    assert got["left_mounted"] == [] and got["upper"] == "rootless upper\n" and got["removed"] is True


INTEROP = r"""
import io, json, os, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from pallet.storage.userns.unshare import run_in_userns

def work(top, ids):
    from drivers_support import check_merged_tree, mounted_under
    from test_interop import _check_links, _diff_tree, _layer_files
    from pallet.storage.drivers import OverlayDriver
    from pallet.storage.tarengine import ApplyOptions, apply_layer
    from pallet_testing import images
    go_home = Path(top, "r", "overlay")
    ours = OverlayDriver(Path(top, "ours", "overlay"), rootless=True)
    for n, (layer_id, layer) in enumerate(zip(ids, images.multi_layer().layers)):
        ours.create(layer_id, ids[n - 1] if n else None)
        apply_layer(io.BytesIO(layer.data), ours.layer_dir(layer_id), options=ApplyOptions(whiteouts=ours.whiteout_form))
    home = Path(ours.home)
    for path in (go_home, home):
        _check_links(path, ids)
    out = {"files": [_layer_files(home, i) == _layer_files(go_home, i) for i in ids],
           "trees": [_diff_tree(home / i / "diff") == _diff_tree(go_home / i / "diff") for i in ids]}
    theirs = OverlayDriver(go_home, rootless=True)
    try:
        check_merged_tree(Path(theirs.mount(ids[-1])))
    finally:
        theirs.unmount(ids[-1])
    out["left_mounted"] = mounted_under(Path(top))
    return out

ids = json.loads(sys.argv[3])
print(json.dumps(run_in_userns(work, sys.argv[2], ids)))
"""


@pytest.mark.rootless
@pytest.mark.interop
def test_rootless_layout_like_containers_storage(rootless_user, rootless_tmp_path: Path, skopeo: str,  # type: ignore[no-untyped-def]
                                                 test_images) -> None:
    from pallet_testing import images

    images.write_oci_layout(rootless_tmp_path / "oci", {"v1": test_images.multi_layer})
    for path in [rootless_tmp_path / "oci", *(rootless_tmp_path / "oci").rglob("*")]:
        os.chown(path, rootless_user.uid, rootless_user.gid)
    dest = f"containers-storage:[overlay@{rootless_tmp_path}/r+{rootless_tmp_path}/u]x:v1"
    done = rootless_user.run([skopeo, "copy", "--quiet", "--insecure-policy", f"oci:{rootless_tmp_path}/oci:v1", dest])
    assert done.returncode == 0, done.stderr.decode()
    records = {r["id"]: r for r in json.loads((rootless_tmp_path / "r" / "overlay-layers" / "layers.json").read_text())}
    ids = [next(i for i, r in records.items() if not r.get("parent"))]
    while child := next((i for i, r in records.items() if r.get("parent") == ids[-1]), None):
        ids.append(child)
    done = rootless_user.run([sys.executable, "-c", INTEROP, str(Path(__file__).parent), str(rootless_tmp_path),
                              json.dumps(ids)])
    assert done.returncode == 0, done.stderr.decode()
    got = json.loads(done.stdout)
    assert got == {"files": [True] * 3, "trees": [True] * 3, "left_mounted": []}
