"""pallet.oci.spec.runtime: runtime-spec config.json as crun and runc write it, and what is refused."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from pallet.oci.errors import InvalidRuntimeConfig
from pallet.oci.spec.runtime import (
    IDMapping,
    Linux,
    Mount,
    Namespace,
    Process,
    RuntimeConfig,
    User,
    parse_runtime_config,
)

DATA = Path(__file__).parent / "data"
FIXTURES = ["runtime-crun-spec.json", "runtime-crun-spec-rootless.json", "runtime-runc-spec-rootless.json",
            "runtime-full.json"]  # fmt: skip


def load(name: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads((DATA / name).read_bytes())
    return value


@pytest.mark.parametrize("name", FIXTURES)
def test_fixtures_round_trip(name: str) -> None:
    config = parse_runtime_config((DATA / name).read_bytes())
    assert json.loads(config.to_json_bytes()) == load(name)
    assert config.to_json_dict() == load(name)


@pytest.mark.skipif(shutil.which("crun") is None, reason="needs crun")
@pytest.mark.parametrize("flags", [[], ["--rootless"]])
def test_what_crun_spec_writes_today_round_trips(tmp_path: Path, flags: list[str]) -> None:
    subprocess.run(["crun", "spec", *flags], cwd=tmp_path, check=True, capture_output=True)
    raw = (tmp_path / "config.json").read_bytes()
    assert json.loads(parse_runtime_config(raw).to_json_bytes()) == json.loads(raw)


def test_process_fields() -> None:
    config = parse_runtime_config((DATA / "runtime-full.json").read_bytes())
    process = config.process
    assert process is not None
    assert process.user == User(uid=1, gid=1, umask=63, additional_gids=(5, 6))
    assert process.console_size is not None and process.console_size.width == 80
    assert process.args == ("sh",) and process.cwd == "/"
    assert process.capabilities is not None and process.capabilities.ambient == ("CAP_NET_BIND_SERVICE",)
    assert process.rlimits is not None and process.rlimits[0].type == "RLIMIT_CORE"
    assert process.no_new_privileges is True and process.oom_score_adj == 100
    assert process.apparmor_profile == "acme_secure_profile"
    assert process.selinux_label is not None and process.selinux_label.startswith("system_u")


def test_hooks_mounts_root() -> None:
    config = parse_runtime_config((DATA / "runtime-full.json").read_bytes())
    assert config.oci_version == "1.1.0"
    assert config.root is not None and config.root.readonly is True
    assert config.domainname == "magrathea.example"
    assert config.hooks is not None
    assert [hook.path for hook in config.hooks.prestart or ()] == ["/usr/bin/fix-mounts", "/usr/bin/setup-network"]
    assert config.hooks.create_runtime and config.hooks.create_container and config.hooks.start_container
    assert config.hooks.poststart is not None and config.hooks.poststart[0].timeout == 5
    assert config.hooks.poststop is not None and config.hooks.poststop[0].args == ("cleanup.sh", "-f")
    idmapped = (config.mounts or ())[2]
    assert idmapped.uid_mappings == (IDMapping(container_id=0, host_id=100000, size=65536),)
    assert config.annotations == {"com.example.key1": "value1", "com.example.key2": "value2"}


def test_linux_fields() -> None:
    linux = parse_runtime_config((DATA / "runtime-full.json").read_bytes()).linux
    assert linux is not None
    assert linux.namespace("network") == Namespace(type="network", path="/var/run/netns/neta")
    assert linux.namespace("nonexistent") is None
    assert linux.uid_mappings is not None and linux.uid_mappings[0].host_range == range(1000, 33000)
    assert linux.sysctl == {"net.ipv4.ip_forward": "1", "net.core.somaxconn": "256"}
    resources = linux.resources
    assert resources is not None
    assert resources.memory is not None and resources.memory.kernel_tcp == -1
    assert resources.memory.disable_oom_killer is False
    assert resources.cpu is not None and resources.cpu.cpus == "2-3"
    assert resources.pids is not None and resources.pids.limit == 32771
    assert resources.block_io is not None and resources.block_io.throttle_write_iops_device is not None
    assert resources.hugepage_limits is not None and resources.hugepage_limits[0].page_size == "2MB"
    assert resources.network is not None and resources.network.class_id == 1048577
    assert resources.rdma is not None and resources.rdma["mlx5_1"].hca_handles == 3
    assert resources.unified == {"io.weight": "100", "memory.high": "max"}
    seccomp = linux.seccomp
    assert seccomp is not None and seccomp.default_action == "SCMP_ACT_ERRNO" and seccomp.default_errno_ret == 1
    assert seccomp.listener_path == "/run/seccomp-agent.socket"
    assert seccomp.syscalls is not None and seccomp.syscalls[2].errno_ret == 38
    assert (seccomp.syscalls[3].args or ())[0].op == "SCMP_CMP_MASKED_EQ"
    assert linux.rootfs_propagation == "slave"
    assert linux.intel_rdt is not None and linux.intel_rdt.enable_cmt is True
    assert linux.personality is not None and linux.personality.domain == "LINUX"
    assert linux.time_offsets is not None and linux.time_offsets["boottime"].secs == -3600


def test_unknown_fields_are_kept_at_every_level() -> None:
    config = parse_runtime_config((DATA / "runtime-full.json").read_bytes())
    assert config.extra_fields == {"io.example.future-top-field": [1, 2, 3]}
    assert config.linux is not None and config.linux.extra_fields == {"io.example.future-linux-field": {"x": 1}}


def test_models_are_frozen_and_buildable_with_python_names() -> None:
    config = RuntimeConfig(
        oci_version="1.1.0",
        process=Process(user=User(uid=0, gid=0), cwd="/", args=("true",), no_new_privileges=True),
        linux=Linux(uid_mappings=(IDMapping(container_id=0, host_id=100000, size=65536),)),
        mounts=(Mount(destination="/proc", type="proc", source="proc"),),
    )
    assert config.to_json_dict() == {
        "ociVersion": "1.1.0",
        "process": {"user": {"uid": 0, "gid": 0}, "args": ["true"], "cwd": "/", "noNewPrivileges": True},
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
        "linux": {"uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}]},
    }
    with pytest.raises(ValidationError):
        config.hostname = "x"  # type: ignore[misc]


def changed(path: str, value: Any) -> bytes:
    """runtime-full.json with the value at a dotted path (list indexes as numbers) replaced."""
    document = copy.deepcopy(load("runtime-full.json"))
    *parents, last = path.split(".")
    target: Any = document
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    if isinstance(target, list):
        target[int(last)] = value
    elif value is _DELETE:
        del target[last]
    else:
        target[last] = value
    return json.dumps(document).encode()


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("ociVersion", _DELETE, "ociVersion: field required"),
        ("process.user", _DELETE, "process.user: field required"),
        ("process.cwd", "relative/dir", "process.cwd: cwd must be an absolute path"),
        ("process.user.uid", -1, "process.user.uid: input should be greater than or equal to 0"),
        ("process.user.uid", 2**32, "process.user.uid: input should be less than or equal to 4294967295"),
        ("process.user.gid", "0", "process.user.gid: input should be a valid integer"),
        ("process.oomScoreAdj", 1001, "process.oomScoreAdj: input should be less than or equal to 1000"),
        ("process.capabilities.bounding", ["NET_ADMIN"], "'NET_ADMIN' is not a capability name"),
        ("process.rlimits.0.type", "NOFILE", "'NOFILE' is not an rlimit type"),
        ("process.rlimits.0", {"type": "RLIMIT_CORE", "hard": 1, "soft": 2}, "soft limit 2 is above the hard limit 1"),
        ("process.rlimits.1", {"type": "RLIMIT_CORE", "hard": 1, "soft": 1}, "listed more than once: RLIMIT_CORE"),
        ("linux.namespaces.0", {"type": "pidns"}, "linux.namespaces[0].type: input should be 'pid', 'network'"),
        ("linux.namespaces.1", {"type": "pid"}, "namespace type 'pid' is listed more than once"),
        ("linux.uidMappings.0", {"containerID": 0, "hostID": 1000, "size": 0}, "size must be at least 1"),
        ("linux.uidMappings.0", {"containerID": 0, "hostID": 4294967295, "size": 2}, "hostID 4294967295 + size 2 overflows"),
        ("linux.gidMappings", [{"containerID": 0, "hostID": 1000, "size": 10}, {"containerID": 5, "hostID": 5000, "size": 1}],
         "ID mappings overlap on the container side: 0:1000:10 and 5:5000:1"),
        ("linux.gidMappings", [{"containerID": 0, "hostID": 1000, "size": 10}, {"containerID": 10, "hostID": 1009, "size": 1}],
         "ID mappings overlap on the host side"),
        ("linux.uidMappings.0", {"containerID": 0, "size": 1}, "linux.uidMappings[0].hostID: field required"),
        ("mounts.2.uidMappings.0", {"containerID": 0, "hostID": 0, "size": 0}, "size must be at least 1"),
        ("mounts.0.destination", "proc", "a mount destination must be an absolute path"),
        ("hooks.poststart.0.timeout", 0, "hooks.poststart[0].timeout: input should be greater than or equal to 1"),
        ("hooks.prestart.0.path", "fix-mounts", "a hook path must be an absolute path"),
        ("linux.seccomp.defaultAction", "SCMP_ACT_MAYBE", "linux.seccomp.defaultAction: input should be 'SCMP_ACT_KILL'"),
        ("linux.seccomp.syscalls.0.action", "ALLOW", "linux.seccomp.syscalls[0].action"),
        ("linux.seccomp.syscalls.0.names", [], "names must list at least one syscall"),
        ("linux.seccomp.syscalls.1.args.0", {"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}, "args[0].index"),
        ("linux.seccomp.syscalls.1.args.0", {"index": 0, "value": 1, "op": "=="}, "args[0].op"),
        ("linux.seccomp.architectures", ["x86_64"], "seccomp architecture 'x86_64' is not of the form"),
        ("linux.seccomp.flags", ["LOG"], "seccomp flag 'LOG' is not of the form"),
        ("linux.rootfsPropagation", "sideways", "linux.rootfsPropagation: input should be"),
        ("linux.resources.devices.1.access", "rwx", "access must be letters of 'rwm'"),
        ("linux.resources.devices.1.type", "x", "linux.resources.devices[1].type"),
        ("linux.devices.0.path", "dev/fuse", "a device path must be an absolute path"),
        ("linux.personality", {"domain": "LINUX64"}, "linux.personality.domain"),
        ("linux.timeOffsets", {"realtime": {"secs": 1}}, "linux.timeOffsets.realtime (key): input should be 'monotonic' or 'boottime'"),
        ("linux.resources.memory.swappiness", -1, "linux.resources.memory.swappiness"),
    ],
)  # fmt: skip
def test_invalid_configs_are_refused_with_the_field_named(path: str, value: Any, message: str) -> None:
    with pytest.raises(InvalidRuntimeConfig) as caught:
        parse_runtime_config(changed(path, value))
    assert str(caught.value).startswith("config.json: ")
    assert message in str(caught.value)


@pytest.mark.parametrize(("data", "message"), [(b"{", "not valid JSON"), (b"[1]", "expected a JSON object")])
def test_non_json_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(InvalidRuntimeConfig, match=message):
        parse_runtime_config(data)
