"""cgroups: the v1 hierarchies from mountinfo, device rules as the kernel reads them, seccomp codes."""

from __future__ import annotations

from pathlib import Path

from pallet.oci.spec.runtime import DeviceCgroupRule
from pallet.runtime.cgroups import Cgroup, _device_rule, v1_hierarchies
from pallet.runtime.seccomp import action_code

MOUNTINFO = """\
35 25 0:30 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
36 25 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
37 25 0:32 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
38 25 0:33 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
39 25 0:34 / /tmp rw,relatime - tmpfs tmpfs rw
"""


def test_hierarchies_by_name(tmp_path: Path) -> None:
    (tmp_path / "mountinfo").write_text(MOUNTINFO)
    assert v1_hierarchies(str(tmp_path / "mountinfo")) == {
        "cpu": Path("/sys/fs/cgroup/cpu"), "memory": Path("/sys/fs/cgroup/memory"),
        "name=systemd": Path("/sys/fs/cgroup/systemd"), "unified": Path("/sys/fs/cgroup/unified"),
    }


def test_container_path_defaults_to_the_id() -> None:
    cgroup = Cgroup.for_container(None, "web")
    assert cgroup.path == "/web"
    assert Cgroup.for_container("a/b/", "web").path == "/a/b"


def test_device_rules() -> None:
    assert _device_rule(DeviceCgroupRule(allow=False, access="rwm")) == "a"
    assert _device_rule(DeviceCgroupRule(allow=True, type="c", major=10, minor=229, access="rw")) == "c 10:229 rw"
    assert _device_rule(DeviceCgroupRule(allow=True, type="b", major=8)) == "b 8:* rwm"


def test_seccomp_action_codes() -> None:
    assert action_code("SCMP_ACT_ALLOW", None) == 0x7FFF0000
    assert action_code("SCMP_ACT_ERRNO", None) == 0x00050001
    assert action_code("SCMP_ACT_ERRNO", 38) == 0x00050026
    assert action_code("SCMP_ACT_KILL_PROCESS", None) == 0x80000000
