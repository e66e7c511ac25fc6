"""Rootless overlay: layers written and mounted (``userxattr``) inside a user namespace with podman's
mapping, as the unprivileged test user."""

from __future__ import annotations

import json
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
