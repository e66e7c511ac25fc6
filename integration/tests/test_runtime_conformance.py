"""pallet-runtime beside crun: the same bundles, the same observations (issue 5, acceptance 1).

Each row of :data:`ROWS` is one behaviour of the runtime spec: a change to
crun's default configuration (``crun spec``, without a terminal and without
the cgroup mount, whose v1 layout is crun's own business) and a shell script
that prints what the process observes. The bundle, built from a busybox-static
rootfs (:mod:`pallet_testing.bundles`), is made afresh at the same path for
each runtime, so the paths in mountinfo agree. Both outputs are normalised for
what legitimately differs (mount IDs, anonymous device numbers) and must be
equal, exit status included. The table is printed, as root and rootless.

The lifecycle, exec, the terminal and the bad bundles are in
``test_runtime_lifecycle.py``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pallet_testing.bundles import (
    PALLET_RUNTIME,
    Change,
    Config,
    capability_sets,
    chain,
    normalise,
    set_field,
    user_namespace,
    with_namespace,
    without_namespace,
    write_bundle,
)
from pallet_testing.users import RootlessUser

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(os.geteuid() != 0, reason="the root conformance table runs as root"),
]


@dataclass(frozen=True)
class Row:
    """One behaviour: ``change`` edits the config (and may prepare the bundle directory);
    ``script`` is run by ``sh -c`` in the container."""

    name: str
    script: str
    change: Change = lambda config, bundle: None
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


def make_bundle(path: Path, row: Row, owner: tuple[int, int] | None = None) -> None:
    write_bundle(path, row.script, row.change, owner)


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

def _add_mount(mount: dict[str, Any], prepare: Callable[[Path], None] | None = None) -> Change:
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


# crun 1.8 gives the hooks of the create stages the status "created"; runc gives "creating", the
# spec's name of the status while create runs, and so does pallet-runtime: the log takes them as one.
HOOK_SCRIPT = """#!/bin/busybox sh
state=$(/bin/busybox cat)
status=$(echo "$state" | /bin/busybox grep -o '"status": *"[a-z]*"' | /bin/busybox tr -d ' "' \\
         | /bin/busybox sed 's/creating/created/')
echo "$1 $status" >> "$2"
exit "${3:-0}"
"""


def _hooks(*stages: str, failing: str | None = None) -> Change:
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


def _cgroup_limits(resources: dict[str, Any], cgroups_path: str | None = None) -> Change:
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
    Row("hostname from config", "hostname; cat /proc/sys/kernel/hostname", set_field("hostname", "pallet-box")),
    Row("domainname", "cat /proc/sys/kernel/domainname", set_field("domainname", "example.org")),
    Row("default capability sets", CAPS),
    Row("five capability sets", CAPS, capability_sets(bounding=FIVE, effective=FIVE[:3], permitted=FIVE[:4],
                                            inheritable=FIVE[:2], ambient=FIVE[:1])),
    Row("no capabilities", CAPS, capability_sets()),
    Row("ambient needs inheritable", CAPS, capability_sets(bounding=FIVE, permitted=FIVE, effective=FIVE, ambient=FIVE)),
    Row("no_new_privs on", "grep NoNewPrivs /proc/self/status"),
    Row("no_new_privs off", "grep NoNewPrivs /proc/self/status", set_field("process.noNewPrivileges", False)),
    Row("uid and gid", "id", set_field("process.user", {"uid": 1000, "gid": 1000})),
    Row("additional gids", "id; id -G", set_field("process.user", {"uid": 1000, "gid": 1000, "additionalGids": [2000, 5]})),
    Row("uid 1000 capabilities", CAPS, set_field("process.user", {"uid": 1000, "gid": 1000})),
    Row("umask default", "umask"),
    Row("umask 077", "umask", set_field("process.user", {"uid": 0, "gid": 0, "umask": 63})),
    Row("cwd", "pwd", set_field("process.cwd", "/tmp")),
    Row("environment", "env | sort", set_field("process.env", ["PATH=/bin", "A=1", "B=two words", "EMPTY="])),
    Row("exit status", "exit 3"),
    Row("killed by a signal", "kill -9 $$", without_namespace("pid")),  # pid 1 ignores a SIGKILL from inside
    Row("absolute executable", "unused", set_field("process.args", ["/bin/busybox", "echo", "direct"])),
    Row("executable missing", "unused", set_field("process.args", ["no-such-program"]), expect_failure=True),
    Row("rlimit nofile lowered", "ulimit -n; ulimit -Hn"),
    Row("rlimit nofile 512/2048", "ulimit -n; ulimit -Hn",
        set_field("process.rlimits", [{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 2048}])),
    Row("rlimit nofile above the hard limit", "ulimit -n",
        set_field("process.rlimits", [{"type": "RLIMIT_NOFILE", "soft": 40000, "hard": 40000}]), expect_failure=True),
    Row("rlimit core and nproc", "ulimit -c; ulimit -u",
        set_field("process.rlimits", [{"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
                                 {"type": "RLIMIT_NPROC", "soft": 100, "hard": 200}])),
    Row("mountinfo", MOUNTINFO),
    Row("read-only root", f"touch /x 2>/dev/null && echo wrote || echo refused; {MOUNTINFO} | head -1",
        set_field("root.readonly", True)),
    Row("masked paths", "cat /proc/keys | wc -c; ls /sys/firmware | wc -l"),
    Row("missing masked path ignored", "echo ok", set_field("linux.maskedPaths", ["/proc/no-such-thing", "/proc/acpi"])),
    Row("read-only paths", "echo 1 > /proc/sys/kernel/ns_last_pid 2>/dev/null && echo wrote || echo refused"),
    Row("devices in /dev", "stat -c '%n %F %a %t:%T %u:%g' /dev/* /dev/pts/ptmx"),
    Row("extra device node", "stat -c '%n %F %a %t:%T %u:%g' /dev/fuse",
        set_field("linux.devices", [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229,
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
    Row("no pid namespace", "[ $$ -eq 1 ] && echo one || echo other", without_namespace("pid")),
    Row("no uts namespace", f"[ \"$(hostname)\" = '{HOST_NAME}' ] && echo host || echo other",
        chain(without_namespace("uts"), set_field("hostname", None))),
    Row("ipc namespace", f"[ \"$(readlink /proc/self/ns/ipc)\" = '{HOST_IPC}' ] && echo host || echo new"),
    Row("no ipc namespace", f"[ \"$(readlink /proc/self/ns/ipc)\" = '{HOST_IPC}' ] && echo host || echo new",
        without_namespace("ipc")),
    Row("network namespace", "cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '"),
    Row("join the host network by path", f"[ \"$(readlink /proc/self/ns/net)\" = '{HOST_NET}' ] && echo host || echo new",
        with_namespace("network", f"/proc/{os.getpid()}/ns/net")),
    Row("sysctl in the network namespace", "cat /proc/sys/net/ipv4/ip_forward",
        set_field("linux.sysctl", {"net.ipv4.ip_forward": "1"})),
    Row("oom score adjustment", "cat /proc/self/oom_score_adj", set_field("process.oomScoreAdj", 500)),
    Row("no seccomp filter", "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status"),
    Row("rootfs propagation rslave", f"{MOUNTINFO} | head -1", set_field("linux.rootfsPropagation", "rslave")),
    Row("user namespace maps", "cat /proc/self/uid_map /proc/self/gid_map; id", user_namespace()),
    Row("user namespace, uid 1000 inside", f"id; {CAPS}", user_namespace(1000, 1000)),
    Row("user namespace mountinfo", MOUNTINFO, user_namespace()),
    Row("seccomp errno for mkdir", "mkdir /tmp/a 2>&1; echo $?; grep -E '^Seccomp' /proc/self/status",
        set_field("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]})),
    Row("seccomp errnoRet and unknown names", "mkdir /tmp/a 2>&1; echo $?",
        set_field("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW",
                               "syscalls": [{"names": ["mkdir", "mkdirat", "no_such_syscall"],
                                             "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]})),
    Row("seccomp argument condition", "kill -0 1 && echo zero-ok; kill -USR1 1; echo $?",
        set_field("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 1, "value": 10, "op": "SCMP_CMP_EQ"}]}]})),
    Row("seccomp kill process", "echo still-runs; mkdir /tmp/a; echo $?",
        set_field("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL_PROCESS"}]})),
    Row("seccomp without no_new_privs", "mkdir /tmp/a; echo $?; grep NoNewPrivs /proc/self/status",
        chain(set_field("process.noNewPrivileges", False),
               set_field("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW",
                                      "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}))),
    Row("cgroup membership", "cat /proc/self/cgroup"),
    Row("cgroup namespace", "cat /proc/self/cgroup", with_namespace("cgroup")),
    Row("cgroup limits", "echo ran", _cgroup_limits({
        "memory": {"limit": 67108864, "reservation": 33554432}, "pids": {"limit": 64},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000},
        "devices": [{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 10, "minor": 229,
                                                         "access": "rw"}]}), after="cgroup.log"),
    Row("cgroups path", "cat /proc/self/cgroup", set_field("linux.cgroupsPath", "/pallet-conformance/nested")),  # see below
    Row("hooks of every stage", "cat /tmp/start.log", _hooks(*ALL_HOOKS), after="hooks.log"),
    Row("failing createRuntime hook", "echo ran", _hooks("createRuntime", "poststop", failing="createRuntime"),
        expect_failure=True),
    Row("failing poststart hook is a warning", "echo ran", _hooks("poststart", failing="poststart"),
        after="hooks.log"),
    Row("unknown capability names are left out", CAPS, capability_sets(bounding=["CAP_KILL", "CAP_NO_SUCH_THING"],
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
