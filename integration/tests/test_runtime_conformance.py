"""pallet-runtime beside crun: the same bundles, the same observations (issue 5, acceptance 1 and 4).

Each row of :data:`ROWS` is one behaviour of the runtime spec: a change to
crun's default configuration (``crun spec``, without a terminal and without
the cgroup mount, whose v1 layout is crun's own business) and a shell script
that prints what the process observes. The bundle, built from a busybox-static
rootfs, is made afresh at the same path for each runtime, so the paths in
mountinfo agree. Both outputs are normalised for what legitimately differs
(mount IDs, anonymous device numbers, times) and must be equal, exit status
included. The table of rows is printed.

The bad-bundle tests check that each refusal is one clear error and leaves no
process, mount or state directory behind.
"""

from __future__ import annotations

import functools
import json
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pallet_testing.users import RootlessUser

PALLET_RUNTIME = Path(sys.executable).parent / "pallet-runtime"
BUSYBOX = Path("/bin/busybox")
ROOTFS_DIRS = ("proc", "sys", "dev", "tmp", "etc", "root", "home", "var", "mnt", "data")

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(os.geteuid() != 0, reason="the root conformance table runs as root"),
]

Config = dict[str, Any]


@dataclass(frozen=True)
class Row:
    """One behaviour: ``change`` edits the config (and may prepare the bundle directory);
    ``script`` is run by ``sh -c`` in the container."""

    name: str
    script: str
    change: Callable[[Config, Path], None] = lambda config, bundle: None
    expect_failure: bool = False
    after: str | None = None  # a file of the bundle, written by hooks, that is part of the observation


@dataclass(frozen=True)
class Observation:
    status: int
    stdout: str
    stderr: str = field(compare=False)

    def summary(self) -> str:
        text = self.stdout.strip().replace("\n", " | ")
        return f"exit {self.status}: {text[:70]}"


def base_config(script: str, rootless: bool = False) -> Config:
    config: Config = json.loads(_crun_default_spec(rootless))
    config["process"]["terminal"] = False
    config["process"]["args"] = ["sh", "-c", script]
    config["root"]["readonly"] = False
    config["mounts"] = [m for m in config["mounts"] if m["type"] != "cgroup"]
    return config


@functools.cache
def _crun_default_spec(rootless: bool) -> str:
    """``crun spec``'s config.json (``--rootless``'s when asked): the table's starting point."""
    with tempfile.TemporaryDirectory() as directory:
        subprocess.run([shutil.which("crun") or "crun", "spec", *(["--rootless"] if rootless else [])], cwd=directory,
                       check=True)
        return Path(directory, "config.json").read_text()


def make_rootfs(path: Path) -> None:
    (path / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, path / "bin" / "busybox")
    applets = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True, check=True).stdout.split()
    for applet in applets:
        if applet != "busybox":
            os.symlink("busybox", path / "bin" / applet)
    for name in ROOTFS_DIRS:
        (path / name).mkdir()
    (path / "tmp").chmod(0o1777)
    (path / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home:/bin/sh\n")
    (path / "etc" / "group").write_text("root:x:0:\nuser:x:1000:\nextra:x:2000:\n")


def make_bundle(path: Path, row: Row, owner: tuple[int, int] | None = None) -> None:
    """A fresh bundle for ``row`` at ``path``; ``owner``: a rootless bundle owned by that uid and gid."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    make_rootfs(path / "rootfs")
    config = base_config(row.script, rootless=owner is not None)
    row.change(config, path)
    (path / "config.json").write_text(json.dumps(config))
    if owner is not None:
        for directory, names, files in os.walk(path):
            for name in [directory, *(os.path.join(directory, n) for n in names + files)]:
                os.lchown(name, *owner)


# --- normalisation of what legitimately differs between two runs

_MOUNTINFO = re.compile(r"^(\d+) (\d+) (\d+):(\d+) (.*)$")


def normalise(text: str) -> str:
    ids: dict[str, str] = {}
    lines = []
    for line in text.splitlines():
        match = _MOUNTINFO.match(line)
        if match:
            mount_id, parent, major, minor, rest = match.groups()
            ids.setdefault(mount_id, f"m{len(ids)}")
            parent_name = ids.get(parent, "outside")
            device = f"{major}:{minor}" if major != "0" else "0:anon"
            rest = re.sub(r"(shared|master|propagate_from):\d+", r"\1:N", rest)
            line = f"{ids[mount_id]} {parent_name} {device} {rest}"
        lines.append(line)
    return "\n".join(lines)


def observe(argv: list[str], bundle: Path, container_id: str, row: Row) -> Observation:
    result = subprocess.run(
        [*argv, "run", "--bundle", str(bundle), container_id], capture_output=True, text=True, timeout=60,
        stdin=subprocess.DEVNULL,
    )
    return Observation(result.returncode, normalise(result.stdout) + _after(bundle, row), result.stderr)


def _after(bundle: Path, row: Row) -> str:
    if row.after is None:
        return ""
    path = bundle / row.after
    return f"\n[{row.after}] " + (path.read_text().replace("\n", "; ") if path.exists() else "(missing)")


# --- the rows

def _set(path: str, value: Any) -> Callable[[Config, Path], None]:
    def change(config: Config, bundle: Path) -> None:
        target = config
        keys = path.split(".")
        for key in keys[:-1]:
            target = target.setdefault(key, {})
        target[keys[-1]] = value
    return change


def _chain(*changes: Callable[[Config, Path], None]) -> Callable[[Config, Path], None]:
    def change(config: Config, bundle: Path) -> None:
        for each in changes:
            each(config, bundle)
    return change


def _without_namespace(kind: str) -> Callable[[Config, Path], None]:
    def change(config: Config, bundle: Path) -> None:
        config["linux"]["namespaces"] = [ns for ns in config["linux"]["namespaces"] if ns["type"] != kind]
    return change


def _with_namespace(kind: str, path: str | None = None) -> Callable[[Config, Path], None]:
    def change(config: Config, bundle: Path) -> None:
        namespaces = [ns for ns in config["linux"]["namespaces"] if ns["type"] != kind]
        namespaces.append({"type": kind, **({"path": path} if path else {})})
        config["linux"]["namespaces"] = namespaces
    return change


def _add_mount(mount: dict[str, Any], prepare: Callable[[Path], None] | None = None) -> Callable[[Config, Path], None]:
    def change(config: Config, bundle: Path) -> None:
        if prepare is not None:
            prepare(bundle)
        config["mounts"].append(mount)
    return change


def _host_data(bundle: Path) -> None:
    (bundle / "hostdata").mkdir()
    (bundle / "hostdata" / "file.txt").write_text("from the host\n")


def _host_file(bundle: Path) -> None:
    (bundle / "single.txt").write_text("one file\n")


def _symlinked_target(bundle: Path) -> None:
    _host_data(bundle)
    os.symlink("/data", bundle / "rootfs" / "linked")


def _user_namespace(uid: int = 0, gid: int = 0) -> Callable[[Config, Path], None]:
    mapping = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    return _chain(
        _with_namespace("user"), _set("linux.uidMappings", mapping), _set("linux.gidMappings", mapping),
        _set("process.user", {"uid": uid, "gid": gid}),
    )


def _caps(**sets: list[str]) -> Callable[[Config, Path], None]:
    return _set("process.capabilities", {name: sets.get(name, []) for name in
                                          ("bounding", "effective", "inheritable", "permitted", "ambient")})


# crun 1.8 gives the hooks of the create stages the status "created"; runc gives "creating", the
# spec's name of the status while create runs, and so does pallet-runtime: the log takes them as one.
HOOK_SCRIPT = """#!/bin/busybox sh
state=$(/bin/busybox cat)
status=$(echo "$state" | /bin/busybox grep -o '"status": *"[a-z]*"' | /bin/busybox tr -d ' "' \\
         | /bin/busybox sed 's/creating/created/')
echo "$1 $status" >> "$2"
exit "${3:-0}"
"""


def _hooks(*stages: str, failing: str | None = None) -> Callable[[Config, Path], None]:
    """Hooks of ``stages`` that log their stage and the status they were given into the
    bundle's ``hooks.log`` (startContainer, which runs in the container, logs to /tmp/start.log);
    the hook of stage ``failing`` exits 1."""
    def change(config: Config, bundle: Path) -> None:
        script = bundle / "hook.sh"
        script.write_text(HOOK_SCRIPT)
        script.chmod(0o755)
        hooks: dict[str, list[dict[str, Any]]] = {}
        for stage in stages:
            status = "1" if stage == failing else "0"
            if stage == "startContainer":
                # reads its stdin: crun 1.8 fails the hook when the state cannot be written (EPIPE)
                hook = {"path": "/bin/sh", "args": ["sh", "-c", "cat > /dev/null; "
                                                    f"echo startContainer >> /tmp/start.log; exit {status}"]}
            else:
                hook = {"path": str(script), "args": ["hook.sh", stage, str(bundle / "hooks.log"), status]}
            hooks.setdefault(stage, []).append(hook)
        config["hooks"] = hooks
    return change


CGROUP_HOOK = """#!/bin/busybox sh
state=$(/bin/busybox cat)
pid=$(echo "$state" | /bin/busybox grep -o '"pid": *[0-9]*' | /bin/busybox grep -o '[0-9]*$')
for pair in memory:memory.limit_in_bytes memory:memory.soft_limit_in_bytes pids:pids.max cpu:cpu.shares \\
            cpu:cpu.cfs_quota_us devices:devices.list; do
    controller=${pair%%:*}
    path=$(/bin/busybox grep ":$controller:" /proc/$pid/cgroup | /bin/busybox cut -d: -f3)
    # pallet-runtime also allows, as runc does, the terminal and tun devices crun 1.8 leaves out
    echo "${pair#*:}=$(/bin/busybox cat /sys/fs/cgroup/$controller$path/${pair#*:} \\
        | /bin/busybox grep -v -E '^c (5:1|5:2|136:\\*|10:200) rwm$' | /bin/busybox tr '\\n' ' ')" >> "$1"
done
"""


def _cgroup_limits(resources: dict[str, Any], cgroups_path: str | None = None) -> Callable[[Config, Path], None]:
    """``resources``, and a createRuntime hook that logs what the host's cgroup files say."""
    def change(config: Config, bundle: Path) -> None:
        config["linux"]["resources"] = resources
        if cgroups_path:
            config["linux"]["cgroupsPath"] = cgroups_path
        script = bundle / "cgroup-hook.sh"
        script.write_text(CGROUP_HOOK)
        script.chmod(0o755)
        config["hooks"] = {"createRuntime": [{"path": str(script), "args": ["cgroup-hook.sh", str(bundle / "cgroup.log")]}]}
    return change


ALL_HOOKS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
MOUNTINFO = "cat /proc/self/mountinfo"
CAPS = "grep -E '^Cap' /proc/self/status"
FIVE = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_KILL", "CAP_NET_RAW"]
HOST_NET = os.readlink("/proc/self/ns/net") if os.path.exists("/proc/self/ns/net") else ""
HOST_IPC = os.readlink("/proc/self/ns/ipc") if os.path.exists("/proc/self/ns/ipc") else ""
HOST_NAME = os.uname().nodename

ROWS: tuple[Row, ...] = (
    Row("default identity", "id"),
    Row("default hostname", "hostname"),
    Row("hostname from config", "hostname; cat /proc/sys/kernel/hostname", _set("hostname", "pallet-box")),
    Row("domainname", "cat /proc/sys/kernel/domainname", _set("domainname", "example.org")),
    Row("default capability sets", CAPS),
    Row("five capability sets", CAPS, _caps(bounding=FIVE, effective=FIVE[:3], permitted=FIVE[:4],
                                            inheritable=FIVE[:2], ambient=FIVE[:1])),
    Row("no capabilities", CAPS, _caps()),
    Row("ambient needs inheritable", CAPS, _caps(bounding=FIVE, permitted=FIVE, effective=FIVE, ambient=FIVE)),
    Row("no_new_privs on", "grep NoNewPrivs /proc/self/status"),
    Row("no_new_privs off", "grep NoNewPrivs /proc/self/status", _set("process.noNewPrivileges", False)),
    Row("uid and gid", "id", _set("process.user", {"uid": 1000, "gid": 1000})),
    Row("additional gids", "id; id -G", _set("process.user", {"uid": 1000, "gid": 1000, "additionalGids": [2000, 5]})),
    Row("uid 1000 capabilities", CAPS, _set("process.user", {"uid": 1000, "gid": 1000})),
    Row("umask default", "umask"),
    Row("umask 077", "umask", _set("process.user", {"uid": 0, "gid": 0, "umask": 63})),
    Row("cwd", "pwd", _set("process.cwd", "/tmp")),
    Row("environment", "env | sort", _set("process.env", ["PATH=/bin", "A=1", "B=two words", "EMPTY="])),
    Row("exit status", "exit 3"),
    Row("killed by a signal", "kill -9 $$", _without_namespace("pid")),  # pid 1 ignores a SIGKILL from inside
    Row("absolute executable", "unused", _set("process.args", ["/bin/busybox", "echo", "direct"])),
    Row("executable missing", "unused", _set("process.args", ["no-such-program"]), expect_failure=True),
    Row("rlimit nofile lowered", "ulimit -n; ulimit -Hn"),
    Row("rlimit nofile 512/2048", "ulimit -n; ulimit -Hn",
        _set("process.rlimits", [{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 2048}])),
    Row("rlimit nofile above the hard limit", "ulimit -n",
        _set("process.rlimits", [{"type": "RLIMIT_NOFILE", "soft": 40000, "hard": 40000}]), expect_failure=True),
    Row("rlimit core and nproc", "ulimit -c; ulimit -u",
        _set("process.rlimits", [{"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
                                 {"type": "RLIMIT_NPROC", "soft": 100, "hard": 200}])),
    Row("mountinfo", MOUNTINFO),
    Row("read-only root", f"touch /x 2>/dev/null && echo wrote || echo refused; {MOUNTINFO} | head -1",
        _set("root.readonly", True)),
    Row("masked paths", "cat /proc/keys | wc -c; ls /sys/firmware | wc -l"),
    Row("missing masked path ignored", "echo ok", _set("linux.maskedPaths", ["/proc/no-such-thing", "/proc/acpi"])),
    Row("read-only paths", "echo 1 > /proc/sys/kernel/ns_last_pid 2>/dev/null && echo wrote || echo refused"),
    Row("devices in /dev", "stat -c '%n %F %a %t:%T %u:%g' /dev/* /dev/pts/ptmx"),
    Row("extra device node", "stat -c '%n %F %a %t:%T %u:%g' /dev/fuse",
        _set("linux.devices", [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229,
                                "fileMode": 0o620, "uid": 0, "gid": 5}])),
    Row("shm writable", "touch /dev/shm/x && echo ok"),
    Row("sysfs read-only", "touch /sys/x 2>/dev/null && echo wrote || echo refused"),
    Row("tmpfs size and mode", f"stat -c '%a' /scratch; {MOUNTINFO} | grep scratch",
        _add_mount({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
                    "options": ["nosuid", "nodev", "size=1m", "mode=1770"]})),
    Row("bind read-only", f"cat /data/file.txt; touch /data/y 2>/dev/null && echo wrote || echo refused; {MOUNTINFO} | grep data",
        _add_mount({"destination": "/data", "type": "bind", "source": "hostdata", "options": ["rbind", "ro"]},
                   _host_data)),
    Row("bind nosuid nodev noexec", f"{MOUNTINFO} | grep data",
        _add_mount({"destination": "/data", "type": "bind", "source": "hostdata",
                    "options": ["bind", "nosuid", "nodev", "noexec"]}, _host_data)),
    Row("bind a file", f"cat /etc/single.txt; {MOUNTINFO} | grep single",
        _add_mount({"destination": "/etc/single.txt", "type": "bind", "source": "single.txt", "options": ["bind"]},
                   _host_file)),
    Row("bind target made in a new directory", "ls /new/deeper",
        _add_mount({"destination": "/new/deeper", "type": "bind", "source": "hostdata", "options": ["rbind"]},
                   _host_data)),
    Row("bind through an absolute symlink", "cat /data/file.txt; ls /linked",
        _add_mount({"destination": "/linked", "type": "bind", "source": "hostdata", "options": ["rbind"]},
                   _symlinked_target)),
    Row("pid namespace", "echo $$; cat /proc/1/cmdline | tr '\\0' ' '"),
    Row("no pid namespace", "[ $$ -eq 1 ] && echo one || echo other", _without_namespace("pid")),
    Row("no uts namespace", f"[ \"$(hostname)\" = '{HOST_NAME}' ] && echo host || echo other",
        _chain(_without_namespace("uts"), _set("hostname", None))),
    Row("ipc namespace", f"[ \"$(readlink /proc/self/ns/ipc)\" = '{HOST_IPC}' ] && echo host || echo new"),
    Row("no ipc namespace", f"[ \"$(readlink /proc/self/ns/ipc)\" = '{HOST_IPC}' ] && echo host || echo new",
        _without_namespace("ipc")),
    Row("network namespace", "cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '"),
    Row("join the host network by path", f"[ \"$(readlink /proc/self/ns/net)\" = '{HOST_NET}' ] && echo host || echo new",
        _with_namespace("network", f"/proc/{os.getpid()}/ns/net")),
    Row("sysctl in the network namespace", "cat /proc/sys/net/ipv4/ip_forward",
        _set("linux.sysctl", {"net.ipv4.ip_forward": "1"})),
    Row("oom score adjustment", "cat /proc/self/oom_score_adj", _set("process.oomScoreAdj", 500)),
    Row("no seccomp filter", "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status"),
    Row("rootfs propagation rslave", f"{MOUNTINFO} | head -1", _set("linux.rootfsPropagation", "rslave")),
    Row("user namespace maps", "cat /proc/self/uid_map /proc/self/gid_map; id", _user_namespace()),
    Row("user namespace, uid 1000 inside", f"id; {CAPS}", _user_namespace(1000, 1000)),
    Row("user namespace mountinfo", MOUNTINFO, _user_namespace()),
    Row("seccomp errno for mkdir", "mkdir /tmp/a 2>&1; echo $?; grep -E '^Seccomp' /proc/self/status",
        _set("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]})),
    Row("seccomp errnoRet and unknown names", "mkdir /tmp/a 2>&1; echo $?",
        _set("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW",
                               "syscalls": [{"names": ["mkdir", "mkdirat", "no_such_syscall"],
                                             "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]})),
    Row("seccomp argument condition", "kill -0 1 && echo zero-ok; kill -USR1 1; echo $?",
        _set("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 1, "value": 10, "op": "SCMP_CMP_EQ"}]}]})),
    Row("seccomp kill process", "echo still-runs; mkdir /tmp/a; echo $?",
        _set("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL_PROCESS"}]})),
    Row("seccomp without no_new_privs", "mkdir /tmp/a; echo $?; grep NoNewPrivs /proc/self/status",
        _chain(_set("process.noNewPrivileges", False),
               _set("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW",
                                      "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}))),
    Row("cgroup membership", "cat /proc/self/cgroup"),
    Row("cgroup namespace", "cat /proc/self/cgroup", _with_namespace("cgroup")),
    Row("cgroup limits", "echo ran", _cgroup_limits({
        "memory": {"limit": 67108864, "reservation": 33554432}, "pids": {"limit": 64},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000},
        "devices": [{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 10, "minor": 229,
                                                         "access": "rw"}]}), after="cgroup.log"),
    Row("cgroups path", "cat /proc/self/cgroup", _set("linux.cgroupsPath", "/pallet-conformance/nested")),  # see below
    Row("hooks of every stage", "cat /tmp/start.log", _hooks(*ALL_HOOKS), after="hooks.log"),
    Row("failing createRuntime hook", "echo ran", _hooks("createRuntime", "poststop", failing="createRuntime"),
        expect_failure=True),
    Row("failing poststart hook is a warning", "echo ran", _hooks("poststart", failing="poststart"),
        after="hooks.log"),
    Row("unknown capability names are left out", CAPS, _caps(bounding=["CAP_KILL", "CAP_NO_SUCH_THING"],
                                                             effective=["CAP_KILL"], permitted=["CAP_KILL"])),
)


@pytest.fixture(scope="module")
def crun_argv(crun: str, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    return [crun, "--root", str(tmp_path_factory.mktemp("crun-state"))]


@pytest.fixture(scope="module")
def pallet_argv(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    assert PALLET_RUNTIME.exists(), f"{PALLET_RUNTIME} is missing: install the workspace into .venv"
    return [str(PALLET_RUNTIME), "--root", str(tmp_path_factory.mktemp("pallet-state"))]


def test_the_table_has_at_least_forty_rows() -> None:
    assert len(ROWS) >= 40
    assert len({row.name for row in ROWS}) == len(ROWS)


def test_pallet_runtime_agrees_with_crun(crun_argv: list[str], pallet_argv: list[str], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    bundle = tmp_path / "bundle"
    table = [("behaviour", "crun", "pallet-runtime", "agree")]
    disagreements = []
    for number, row in enumerate(ROWS):
        make_bundle(bundle, row)
        crun_sees = observe(crun_argv, bundle, f"conformance-{number}", row)
        make_bundle(bundle, row)
        pallet_sees = observe(pallet_argv, bundle, f"conformance-{number}", row)
        agree = _agree(row, crun_sees, pallet_sees)
        table.append((row.name, crun_sees.summary(), pallet_sees.summary(), "yes" if agree else "NO"))
        if not agree:
            disagreements.append(f"{row.name}:\n--- crun (exit {crun_sees.status}):\n{crun_sees.stdout}\n{crun_sees.stderr}"
                                 f"--- pallet-runtime (exit {pallet_sees.status}):\n{pallet_sees.stdout}\n{pallet_sees.stderr}")
    shutil.rmtree(bundle, ignore_errors=True)
    for parent in Path("/sys/fs/cgroup").glob(f"*/{NESTED_CGROUP_PARENT}"):  # both runtimes leave the parent
        parent.rmdir()
    with capsys.disabled():
        print("\n" + _render(table))
    assert not disagreements, "\n\n".join(disagreements)


def _agree(row: Row, crun_sees: Observation, pallet_sees: Observation) -> bool:
    if row.expect_failure:
        return crun_sees.status != 0 and pallet_sees.status != 0 and not pallet_sees.stdout
    return crun_sees == pallet_sees


def _render(table: list[tuple[str, str, str, str]]) -> str:
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    lines = ["| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths)) + " |" for row in table]
    lines.insert(1, "|" + "|".join("-" * (width + 2) for width in widths) + "|")
    return "\n".join(lines)


# --- the same table without privilege (crun spec --rootless as the base)

# rows whose behaviour needs privileges a rootless runtime does not have; both runtimes must refuse them
ROOTLESS_REFUSED = frozenset({"join the host network by path"})
# rows that do not apply: mknod is root's (a rootless /dev binds the host's nodes: covered by "devices in /dev")
# and cgroups: v1 cannot be delegated, so crun fails to make an explicit cgroupsPath, pallet-runtime leaves it alone
ROOTLESS_SKIPPED = frozenset({"extra device node", "cgroups path"})
NESTED_CGROUP_PARENT = "pallet-conformance"


@pytest.mark.rootless
def test_rootless_pallet_runtime_agrees_with_crun(crun: str, rootless_user: RootlessUser, rootless_tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert PALLET_RUNTIME.exists()
    owner = (rootless_user.uid, rootless_user.gid)
    bundle = rootless_tmp_path / "bundle"
    crun_argv = [crun, "--root", str(rootless_tmp_path / "crun-state")]
    pallet_argv = [str(PALLET_RUNTIME), "--root", str(rootless_tmp_path / "pallet-state")]

    def observe_as_user(argv: list[str], container_id: str) -> Observation:
        result = rootless_user.run([*argv, "run", "--bundle", str(bundle), container_id], timeout=60)
        return Observation(result.returncode, normalise(result.stdout.decode()) + _after(bundle, row),
                           result.stderr.decode())

    table = [("behaviour (rootless)", "crun", "pallet-runtime", "agree")]
    disagreements = []
    for number, original in enumerate(ROWS):
        if original.name in ROOTLESS_SKIPPED:
            continue
        row = Row(original.name, original.script, original.change,
                  original.expect_failure or original.name in ROOTLESS_REFUSED, original.after)
        make_bundle(bundle, row, owner)
        crun_sees = observe_as_user(crun_argv, f"rootless-{number}")
        make_bundle(bundle, row, owner)
        pallet_sees = observe_as_user(pallet_argv, f"rootless-{number}")
        agree = _agree(row, crun_sees, pallet_sees)
        table.append((row.name, crun_sees.summary(), pallet_sees.summary(), "yes" if agree else "NO"))
        if not agree:
            disagreements.append(f"{row.name}:\n--- crun (exit {crun_sees.status}):\n{crun_sees.stdout}\n{crun_sees.stderr}"
                                 f"--- pallet-runtime (exit {pallet_sees.status}):\n{pallet_sees.stdout}\n{pallet_sees.stderr}")
    with capsys.disabled():
        print("\n" + _render(table))
    assert len(table) > 40
    assert not disagreements, "\n\n".join(disagreements)


# --- the lifecycle, step by step, beside crun

def _lifecycle(argv: list[str], bundle: Path, container_id: str, pid_file: Path) -> list[str]:
    """What each step of create / state / start / state / kill / state / delete gives."""
    def step(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*argv, *args], capture_output=True, stdin=subprocess.DEVNULL, text=True, timeout=60)

    def status() -> str:
        result = step("state", container_id)
        return json.loads(result.stdout)["status"] if result.returncode == 0 else f"state failed {result.returncode}"

    seen = []
    # the container keeps create's stdio: no pipe here, or waiting for its end would wait for the container
    created = subprocess.run([*argv, "create", "--bundle", str(bundle), "--pid-file", str(pid_file), container_id],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    seen.append(f"create {created.returncode}")
    try:
        seen += _after_create(step, status, container_id, pid_file)
    finally:
        step("delete", "--force", container_id)
    return seen


def _after_create(step: Callable[..., subprocess.CompletedProcess[str]], status: Callable[[], str],
                  container_id: str, pid_file: Path) -> list[str]:
    seen = []
    state = json.loads(step("state", container_id).stdout)
    seen.append(f"state {state['status']} pid-file-matches={int(pid_file.read_text()) == state['pid']}")
    seen.append(f"keys {sorted(set(state) & {'ociVersion', 'id', 'pid', 'status', 'bundle'})}")
    seen.append(f"start {step('start', container_id).returncode}")
    seen.append(f"state {status()}")
    seen.append(f"start again fails {step('start', container_id).returncode != 0}")
    seen.append(f"delete running fails {step('delete', container_id).returncode != 0}")
    seen.append(f"kill {step('kill', container_id, 'KILL').returncode}")
    for _ in range(50):
        if status() == "stopped":
            break
        time.sleep(0.1)
    seen.append(f"state {status()}")
    seen.append(f"delete {step('delete', container_id).returncode}")
    seen.append(f"state after delete fails {step('state', container_id).returncode != 0}")
    return seen


def test_lifecycle_agrees_with_crun(crun_argv: list[str], pallet_argv: list[str], tmp_path: Path) -> None:
    row = Row("lifecycle", "sleep 30")
    bundle = tmp_path / "bundle"
    make_bundle(bundle, row)
    crun_steps = _lifecycle(crun_argv, bundle, "lifecycle", tmp_path / "crun.pid")
    make_bundle(bundle, row)
    pallet_steps = _lifecycle(pallet_argv, bundle, "lifecycle", tmp_path / "pallet.pid")
    assert crun_steps[0] == "create 0"
    assert pallet_steps == crun_steps


# --- bad bundles: one clear error, nothing left behind

def _leftovers(state_root: Path, container_id: str, bundle: Path) -> list[str]:
    found = []
    if (state_root / container_id).exists():
        found.append(f"state directory {state_root / container_id}")
    if str(bundle) in Path("/proc/self/mountinfo").read_text():
        found.append("a mount under the bundle")
    found += [f"cgroup {path}" for path in Path("/sys/fs/cgroup").glob(f"*/{container_id}")]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(state_root) in cmdline:
            found.append(f"process {entry.name}: {cmdline}")
    return found


def _escape_through_symlink(config: Config, bundle: Path) -> None:
    os.symlink("../../../../../../../../tmp", bundle / "rootfs" / "escape")
    config["mounts"].append({"destination": "/escape/pallet-escaped", "type": "tmpfs", "source": "tmpfs"})


def _unknown_namespace(config: Config, bundle: Path) -> None:
    config["linux"]["namespaces"].append({"type": "no-such-namespace"})


def _impossible_mapping(config: Config, bundle: Path) -> None:
    _user_namespace()(config, bundle)
    mapping = [{"containerID": 0, "hostID": 4294967295, "size": 1}]
    config["linux"]["uidMappings"] = mapping


BAD_BUNDLES: dict[str, tuple[Callable[[Config, Path], None], str]] = {
    "missing rootfs": (lambda config, bundle: shutil.rmtree(bundle / "rootfs"), "root.path"),
    "invalid JSON": (lambda config, bundle: None, "not valid JSON"),
    "unknown namespace": (_unknown_namespace, "no-such-namespace"),
    "impossible mapping": (_impossible_mapping, "linux.uidMappings"),
    "mount target escaping through a symlink": (_escape_through_symlink, "escapes the container's rootfs"),
    "missing executable": (_set("process.args", ["no-such-program"]), "no-such-program"),
}


@pytest.mark.parametrize("case", sorted(BAD_BUNDLES))
def test_bad_bundle_gives_one_error_and_leaves_nothing(case: str, pallet_argv: list[str], tmp_path: Path) -> None:
    change, expected = BAD_BUNDLES[case]
    bundle = tmp_path / "bundle"
    make_bundle(bundle, Row(case, "true", change))
    if case == "invalid JSON":
        (bundle / "config.json").write_text('{"ociVersion": "1.0.0", "process": ')
    state_root = Path(pallet_argv[-1])
    for command in ("run", "create"):
        result = subprocess.run([*pallet_argv, command, "--bundle", str(bundle), "bad"], capture_output=True,
                                text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert result.returncode == 1, result
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("pallet-runtime: "), result.stderr
        assert expected in lines[0]
        assert "Traceback" not in result.stderr
        assert _leftovers(state_root, "bad", bundle) == []
    assert not Path("/tmp/pallet-escaped").exists()


# --- spec: the same default configuration as crun's

@pytest.mark.parametrize("rootless", [False, True], ids=["root", "rootless"])
def test_spec_writes_crun_default(crun: str, rootless: bool, tmp_path: Path) -> None:
    flags = ["--rootless"] if rootless else []
    (tmp_path / "crun").mkdir()
    (tmp_path / "pallet").mkdir()
    subprocess.run([crun, "spec", *flags], cwd=tmp_path / "crun", check=True)
    subprocess.run([str(PALLET_RUNTIME), "spec", "--bundle", str(tmp_path / "pallet"), *flags], check=True)
    ours = json.loads((tmp_path / "pallet" / "config.json").read_text())
    assert ours == json.loads((tmp_path / "crun" / "config.json").read_text())
    again = subprocess.run([str(PALLET_RUNTIME), "spec", "--bundle", str(tmp_path / "pallet")], capture_output=True,
                           text=True)
    assert again.returncode == 1 and "exists already" in again.stderr


# --- ps and kill --all (pallet-runtime alone: crun 1.8's ps needs cgroups)

def test_ps_lists_every_process_and_kill_all_signals_them(pallet_argv: list[str], tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    make_bundle(bundle, Row("ps", "sleep 60 & sleep 60 & wait"))

    def step(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*pallet_argv, *args], capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL)

    started = subprocess.run([*pallet_argv, "run", "--detach", "--bundle", str(bundle), "psx"], timeout=60,
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert started.returncode == 0
    try:
        pid = json.loads(step("state", "psx").stdout)["pid"]
        for _ in range(50):
            pids = json.loads(step("ps", "--format", "json", "psx").stdout)
            if len(pids) == 3:
                break
            time.sleep(0.1)
        assert pid in pids and len(pids) == 3
        table = step("ps", "psx").stdout.splitlines()
        assert "PID" in table[0] and len(table) == 4 and sum(line.endswith(" sleep 60") for line in table) == 2
        assert step("kill", "--all", "psx", "KILL").returncode == 0
        for _ in range(50):
            if not any(os.path.exists(f"/proc/{each}") and _not_zombie(each) for each in pids):
                break
            time.sleep(0.1)
        assert json.loads(step("state", "psx").stdout)["status"] == "stopped"
    finally:
        step("delete", "--force", "psx")
    assert step("state", "psx").returncode == 1


def _not_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# --- a terminal through --console-socket, as conmon asks for one

TERMINAL_SCRIPT = (
    "tty; [ -t 0 ] && [ -t 1 ] && echo stdio-is-a-tty; stat -c '%n %F %t:%T' /dev/console; "
    "cut -d' ' -f6,7 /proc/self/stat; grep -E ' /dev/console ' /proc/self/mountinfo | cut -d' ' -f4,5,6; "
    "stty size; echo $TERM"
)


def _run_with_console(argv: list[str], bundle: Path, container_id: str, socket_path: Path) -> str:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(socket_path))
    server.listen(1)
    server.settimeout(30)
    create = subprocess.Popen([*argv, "create", "--bundle", str(bundle), "--console-socket", str(socket_path),
                               container_id], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    try:
        connection, _ = server.accept()
        _, ancillary, _, _ = connection.recvmsg(1024, socket.CMSG_LEN(4))
        master = int.from_bytes(ancillary[0][2][:4], sys.byteorder)
        connection.close()
        assert create.wait(timeout=60) == 0, create.stderr.read() if create.stderr else ""
        subprocess.run([*argv, "start", container_id], check=True, timeout=60)
        output = b""
        while select.select([master], [], [], 10)[0]:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the last slave descriptor is closed
                break
            if not chunk:
                break
            output += chunk
        os.close(master)
        return output.decode().replace("\r\n", "\n")
    finally:
        if create.poll() is None:
            create.kill()
        if create.stderr:
            create.stderr.close()
        server.close()
        subprocess.run([*argv, "delete", "--force", container_id], capture_output=True, timeout=60)


def test_terminal_through_console_socket_agrees_with_crun(crun_argv: list[str], pallet_argv: list[str],
                                                          tmp_path: Path) -> None:
    def terminal(config: Config, bundle: Path) -> None:
        config["process"]["terminal"] = True
        config["process"]["consoleSize"] = {"height": 33, "width": 101}

    row = Row("terminal", TERMINAL_SCRIPT, terminal)
    bundle = tmp_path / "bundle"
    make_bundle(bundle, row)
    crun_sees = _run_with_console(crun_argv, bundle, "console", tmp_path / "crun.sock")
    make_bundle(bundle, row)
    pallet_sees = _run_with_console(pallet_argv, bundle, "console", tmp_path / "pallet.sock")
    assert "stdio-is-a-tty" in crun_sees and "33 101" in crun_sees
    assert pallet_sees == crun_sees


# --- exec: a new process in a running container, beside crun

EXEC_CASES: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    # (name, exec arguments after the container ID is inserted, expect failure)
    ("identity and capabilities", ("sh", "-c", f"id; {CAPS}; grep NoNewPrivs /proc/self/status"), False),
    ("namespaces of the container", ("sh", "-c", "hostname; [ $$ -ne 1 ] && echo not-init; "
                                     "cat /proc/1/cmdline | tr '\\0' ' '"), False),
    ("mount view", ("sh", "-c", "cat /proc/self/mountinfo"), False),
    ("environment and HOME", ("env",), False),
    ("exit status", ("sh", "-c", "exit 5"), False),
    ("missing executable", ("no-such-program",), True),
)
EXEC_OPTION_CASES: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("--user and --cwd", ("--user", "1000:1000", "--cwd", "/tmp"), ("sh", "-c", f"id; pwd; {CAPS}")),
    ("--env", ("--env", "EXTRA=1", "--env", "PATH=/bin"), ("sh", "-c", "env | sort")),
)


def test_exec_agrees_with_crun(crun_argv: list[str], pallet_argv: list[str], tmp_path: Path) -> None:
    row = Row("exec target", "sleep 60", _set("hostname", "exec-box"))
    results: dict[str, list[tuple[str, int, str]]] = {}
    for name, argv in (("crun", crun_argv), ("pallet", pallet_argv)):
        bundle = tmp_path / "bundle"
        make_bundle(bundle, row)
        started = subprocess.run([*argv, "run", "--detach", "--bundle", str(bundle), "exec-target"], timeout=60,
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert started.returncode == 0
        seen = results.setdefault(name, [])
        try:
            cases = [(case, (), args, failure) for case, args, failure in EXEC_CASES]
            cases += [(case, options, args, False) for case, options, args in EXEC_OPTION_CASES]
            for case, options, args, failure in cases:
                result = subprocess.run([*argv, "exec", *options, "exec-target", *args], capture_output=True,
                                        text=True, timeout=60, stdin=subprocess.DEVNULL)
                status = (result.returncode != 0) if failure else result.returncode
                seen.append((case, int(status), "" if failure else normalise(result.stdout)))
        finally:
            subprocess.run([*argv, "delete", "--force", "exec-target"], capture_output=True, timeout=60)
    for crun_case, pallet_case in zip(results["crun"], results["pallet"]):
        assert pallet_case == crun_case


def test_exec_process_file_and_detach(pallet_argv: list[str], tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    make_bundle(bundle, Row("exec target", "sleep 60"))
    assert subprocess.run([*pallet_argv, "run", "--detach", "--bundle", str(bundle), "exec-more"], timeout=60,
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0
    try:
        process = {"user": {"uid": 1000, "gid": 1000}, "args": ["sh", "-c", "id -u; pwd; echo $ONLY"], "cwd": "/tmp",
                   "env": ["ONLY=this", "PATH=/bin"]}
        (tmp_path / "process.json").write_text(json.dumps(process))
        result = subprocess.run([*pallet_argv, "exec", "--process", str(tmp_path / "process.json"), "exec-more"],
                                capture_output=True, text=True, timeout=60)
        assert (result.returncode, result.stdout) == (0, "1000\n/tmp\nthis\n"), result.stderr
        pid_file = tmp_path / "exec.pid"
        with open(tmp_path / "exec.err", "w+") as errors:  # not a pipe: the detached process keeps it open
            detached = subprocess.run([*pallet_argv, "exec", "--detach", "--pid-file", str(pid_file), "exec-more",
                                       "sleep", "30"], stdout=subprocess.DEVNULL, stderr=errors, timeout=60,
                                      stdin=subprocess.DEVNULL)
        assert detached.returncode == 0, (tmp_path / "exec.err").read_text()
        pids = json.loads(subprocess.run([*pallet_argv, "ps", "--format", "json", "exec-more"], capture_output=True,
                                         text=True, timeout=60).stdout)
        assert int(pid_file.read_text()) in pids
    finally:
        subprocess.run([*pallet_argv, "kill", "--all", "exec-more", "KILL"], capture_output=True, timeout=60)
        subprocess.run([*pallet_argv, "delete", "--force", "exec-more"], capture_output=True, timeout=60)
