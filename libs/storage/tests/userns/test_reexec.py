"""needs_reexec: when a tool must run itself again in the rootless user namespace (skopeo's rule)."""

from __future__ import annotations

from pallet.storage.userns.reexec import in_user_namespace, needs_reexec

IMAGES = ["docker://localhost:5000/a:1", "containers-storage:[overlay@/r+/u]localhost/a:1"]


def test_unprivileged_and_a_storage_image_needs_it() -> None:
    assert needs_reexec(IMAGES, env={}, euid=1000)
    assert needs_reexec(["containers-storage:busybox"], env={}, euid=1000)


def test_not_for_root_nor_inside_the_namespace_nor_other_transports() -> None:
    assert not needs_reexec(IMAGES, env={}, euid=0)
    assert not needs_reexec(IMAGES, env={"_CONTAINERS_USERNS_CONFIGURED": "done"}, euid=1000)
    assert not needs_reexec(["docker://x/y:1", "oci:/tmp/l:1", "dir:/tmp/containers-storage:x"], env={}, euid=1000)
    assert in_user_namespace({"_CONTAINERS_USERNS_CONFIGURED": "done"}) and not in_user_namespace({})
