"""containers-storage: used as a library by the unprivileged test user, without re-executing in the namespace.

The transport then does the store work in a child in podman's user namespace:
the layer files get podman's owners (container uid 1 -> the first
subordinate id), and a file only that uid may read is read back there.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from pallet.storage.userns.subids import SUBGID_PATH, SUBUID_PATH, ranges_for_user

pytestmark = pytest.mark.rootless

PROGRAM = r"""
import hashlib, io, json, os, sys, tarfile
from pathlib import Path
from pallet.oci.copy import Policy, copy_image
from pallet.oci.transports import default_transports
from pallet_testing import images

top = Path(sys.argv[1])
out = io.BytesIO()
with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
    for path, kind, uid, mode, data in [("home", tarfile.DIRTYPE, 0, 0o755, b""),
                                        ("home/daemon", tarfile.DIRTYPE, 1, 0o700, b""),
                                        ("home/daemon/secret", tarfile.REGTYPE, 1, 0o600, b"uid 1 only\n")]:
        info = tarfile.TarInfo(path)
        info.type, info.uid, info.gid, info.mode, info.mtime, info.size = kind, uid, uid, mode, images.EPOCH, len(data)
        tar.addfile(info, io.BytesIO(data) if data else None)
raw = out.getvalue()
layer = images.Layer(images.OCI_LAYER["gzip"], images.compress(raw, "gzip"), diff_id=images.sha256(raw))
image = images.make_image((layer,))
layout = images.write_oci_layout(top / "in", {"v1": image})
spec = f"containers-storage:[overlay@{top}/r+{top}/u]localhost/lib/owned:v1"
transports = default_transports()
copy_image(transports.parse_image_name(f"oci:{layout}:v1"), transports.parse_image_name(spec), policy=Policy.accept_anything())
copy_image(transports.parse_image_name(spec), transports.parse_image_name(f"oci:{top}/out:v1"), policy=Policy.accept_anything())
index = json.loads((top / "out" / "index.json").read_text())
manifest = json.loads((top / "out" / "blobs" / "sha256" / index["manifests"][0]["digest"][7:]).read_text())
blob = (top / "out" / "blobs" / "sha256" / manifest["layers"][0]["digest"][7:]).read_bytes()
plain = images.gzip.decompress(blob) if blob[:2] == b"\x1f\x8b" else blob
print(json.dumps({"euid": os.geteuid(), "diff_id": layer.diff_id, "out_diff_id": images.sha256(plain)}))
"""


def test_library_copy_in_and_out_of_a_rootless_store(rootless_user: Any, rootless_tmp_path: Path, test_images: Any) -> None:
    done = rootless_user.run([sys.executable, "-c", PROGRAM, str(rootless_tmp_path)], timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    seen = json.loads(done.stdout.decode().splitlines()[-1])
    assert seen["euid"] != 0 and seen["out_diff_id"] == seen["diff_id"]
    (layer_dir,) = [p for p in (rootless_tmp_path / "r" / "overlay").iterdir() if p.name != "l" and p.is_dir()]
    secret = (layer_dir / "diff" / "home" / "daemon" / "secret").stat()
    first_uid = ranges_for_user(SUBUID_PATH, rootless_user.name, rootless_user.uid)[0].start
    first_gid = ranges_for_user(SUBGID_PATH, rootless_user.name, rootless_user.uid)[0].start
    assert (secret.st_uid, secret.st_gid) == (first_uid, first_gid)  # container 1:1 -> the first subordinate ids
    assert (layer_dir / "diff" / "home").stat().st_uid == rootless_user.uid
    assert not list((rootless_tmp_path / "r" / "tmp").iterdir())
    if os.geteuid() == 0:
        assert os.stat(rootless_tmp_path / "r" / "overlay-layers" / "layers.json").st_uid == rootless_user.uid
