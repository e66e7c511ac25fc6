"""The mounts below a bound directory, from mountinfo (for a recursive read-only remount)."""

from __future__ import annotations

from pathlib import Path

from pallet.runtime.rootfs import mounts_below

MOUNTINFO = """\
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
77 27 0:28 / /b/rootfs/sys/fs/cgroup ro,nosuid - tmpfs tmpfs rw
78 77 0:29 / /b/rootfs/sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
90 78 0:40 / /b/rootfs/sys/fs/cgroup/cpu/deeper rw - tmpfs tmpfs rw
79 77 0:30 / /b/rootfs/sys/fs/cgroup/with\\040space rw - cgroup cgroup rw,pids
80 27 0:31 / /b/rootfs/sys/fs/cgroupx rw - tmpfs tmpfs rw
"""


def test_only_the_mounts_strictly_below_parents_first(tmp_path: Path) -> None:
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(MOUNTINFO)
    assert mounts_below("/b/rootfs/sys/fs/cgroup", str(mountinfo)) == [
        "/b/rootfs/sys/fs/cgroup/cpu", "/b/rootfs/sys/fs/cgroup/with space", "/b/rootfs/sys/fs/cgroup/cpu/deeper"]
