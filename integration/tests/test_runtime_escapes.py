"""Escape attempts from a container run by ``pallet-runtime run``, and by crun (issue 5, acceptance 3).

Each attempt is a container made with the default configuration as podman would
give it to crun: ``crun spec`` (:mod:`pallet_testing.bundles`) plus podman's
default seccomp profile (``/usr/share/containers/seccomp.json``, from
containers-common, turned into the OCI form the way podman does it for the
config's bounding capabilities and this machine's architecture). The process
tries the escape with busybox applets or with ``/bin/escape``, a tiny static
helper compiled here for what busybox cannot do (getresuid after a setuid exec,
ptrace, init_module). Each test runs under both runtimes and asserts that the
attempt fails and that the host is unchanged: its hostname, its mounts, its
modules, the sysctl tried, the host file offered, the host process offered to
ptrace. crun is the peer: it must block the same attempts.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pallet_testing.plugin import unavailable
from pallet_testing.bundles import PALLET_RUNTIME, Change, Config, set_field, write_bundle
from pallet_testing.users import RootlessUser

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(os.geteuid() != 0, reason="the escape tests start as root"),
]

SECCOMP_PROFILE = Path("/usr/share/containers/seccomp.json")
# the Go names of seccomp.json's "arches" for this machine
GO_ARCHES = {"x86_64": {"amd64", "x32", "x86"}, "aarch64": {"arm64", "arm"}}.get(platform.machine(), set())

HELPER_SOURCE = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

/* escape ids | escape ptrace PID | escape init_module | escape finit_module FILE */
int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "ids") == 0) {
        uid_t r, e, s;
        getresuid(&r, &e, &s);
        printf("uids %d %d %d\n", (int)r, (int)e, (int)s);
        return 0;
    }
    if (argc >= 3 && strcmp(argv[1], "ptrace") == 0) {
        if (ptrace(PTRACE_ATTACH, atoi(argv[2]), 0, 0) == 0) { printf("ptrace attached\n"); return 0; }
        printf("ptrace refused: %s\n", strerrorname_np(errno));
        return 1;
    }
    if (argc >= 2 && strcmp(argv[1], "init_module") == 0) {
        static char image[64] = "\177ELF not really a module";
        if (syscall(SYS_init_module, image, sizeof image, "") == 0) { printf("init_module loaded\n"); return 0; }
        printf("init_module refused: %s\n", strerrorname_np(errno));
        return 1;
    }
    return 2;
}
"""


@pytest.fixture(scope="session")
def helper(tmp_path_factory: pytest.TempPathFactory) -> Path:
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        unavailable("no C compiler for the static helper (Debian package: gcc)")
    directory = tmp_path_factory.mktemp("escape-helper")
    (directory / "escape.c").write_text(HELPER_SOURCE)
    built = subprocess.run([compiler, "-static", "-O2", "-o", str(directory / "escape"), str(directory / "escape.c")],
                           capture_output=True, text=True)
    if built.returncode != 0:
        unavailable(f"the static helper does not build (Debian package: libc6-dev): {built.stderr[-500:]}")
    return directory / "escape"


# --- podman's default seccomp profile, in OCI form

def podman_seccomp(config: Config, bundle: Path) -> None:
    """``linux.seccomp`` from containers-common's profile, as podman computes it for this config."""
    if not SECCOMP_PROFILE.exists():
        unavailable(f"{SECCOMP_PROFILE} is missing (Debian package: golang-github-containers-common)")
    profile: dict[str, Any] = json.loads(SECCOMP_PROFILE.read_text())
    caps = set(config["process"].get("capabilities", {}).get("bounding", []))
    architectures: list[str] = []
    for entry in profile.get("archMap", []):
        if _native(entry["architecture"]):
            architectures = [entry["architecture"], *entry.get("subArchitectures", [])]
    rules = []
    for rule in profile["syscalls"]:
        includes, excludes = rule.get("includes") or {}, rule.get("excludes") or {}
        if includes.get("arches") and not GO_ARCHES & set(includes["arches"]):
            continue
        if includes.get("caps") and not set(includes["caps"]) <= caps:
            continue
        if excludes.get("arches") and GO_ARCHES & set(excludes["arches"]):
            continue
        if excludes.get("caps") and set(excludes["caps"]) & caps:
            continue
        rules.append({key: value for key, value in rule.items() if key in ("names", "action", "args", "errnoRet")
                      and value not in (None, [])})
    config["linux"]["seccomp"] = {
        "defaultAction": profile["defaultAction"], "defaultErrnoRet": profile.get("defaultErrnoRet", 1),
        "architectures": architectures, "syscalls": rules,
    }


def _native(architecture: str) -> bool:
    return {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64"}.get(platform.machine()) == architecture


# --- the host, before and after

def _mounts() -> list[str]:
    """The host's mount points with their options (IDs left out: a container's mounts never show here)."""
    with open("/proc/self/mountinfo", encoding="utf-8") as mountinfo:
        return sorted(" ".join(line.split()[4:]) for line in mountinfo)


def _modules() -> str:
    path = Path("/proc/modules")
    return path.read_text() if path.exists() else "(no module support)"


def _cgroup_release_files() -> dict[str, str]:
    """The host's cgroup v1 release settings (notify_on_release, release_agent of each hierarchy's root)."""
    files = [*Path("/sys/fs/cgroup").glob("*/notify_on_release"), *Path("/sys/fs/cgroup").glob("*/release_agent")]
    return {str(path): path.read_text() for path in files}


@dataclass(frozen=True)
class HostState:
    hostname: str
    mounts: list[str]
    modules: str
    core_uses_pid: str
    cgroup_release: dict[str, str]

    @classmethod
    def now(cls) -> HostState:
        return cls(os.uname().nodename, _mounts(), _modules(), Path("/proc/sys/kernel/core_uses_pid").read_text(),
                   _cgroup_release_files())


@pytest.fixture
def host() -> Iterator[HostState]:
    """The host as it was before the test; it must be the same after (what a test can put back is put back
    before the assertion fails)."""
    before = HostState.now()
    yield before
    after = HostState.now()
    if after.core_uses_pid != before.core_uses_pid:
        Path("/proc/sys/kernel/core_uses_pid").write_text(before.core_uses_pid)
    for name, value in before.cgroup_release.items():
        if after.cgroup_release.get(name) != value:
            Path(name).write_text(value.strip() or "\n")
    assert after == before


# --- running an attempt

RUNTIMES = ("crun", "pallet-runtime")


@dataclass(frozen=True)
class Outcome:
    status: int
    stdout: str
    stderr: str

    def describe(self) -> str:
        return f"exit {self.status}\nstdout: {self.stdout}\nstderr: {self.stderr}"


@dataclass
class Runner:
    """Runs attempts under one runtime; every container it started is deleted at the end."""

    name: str
    argv: list[str]
    bundle_root: Path
    helper: Path
    user: RootlessUser | None = None
    started: int = 0

    def run(self, script: str, change: Change | None = None, *, extra: Sequence[str] = (),
            fds: Sequence[Path] = ()) -> Outcome:
        """``script`` in a fresh container with podman's seccomp profile; ``fds``: files the runtime is
        started with open for appending at descriptors 3, 4..."""
        self.started += 1
        container_id = f"escape-{os.getpid()}-{self.started}"
        bundle = self.bundle_root / f"bundle-{self.started}"
        owner = (self.user.uid, self.user.gid) if self.user else None

        def prepare(config: Config, path: Path) -> None:
            shutil.copy2(self.helper, path / "rootfs" / "bin" / "escape")
            if change is not None:
                change(config, path)
            podman_seccomp(config, path)

        write_bundle(bundle, script, prepare, owner)
        try:
            return self._command([*self.argv, "run", *extra, "--bundle", str(bundle), container_id], fds)
        finally:
            self._command([*self.argv, "delete", "--force", container_id], ())
            shutil.rmtree(bundle, ignore_errors=True)


    def _command(self, argv: Sequence[str], fds: Sequence[Path]) -> Outcome:
        opens = "".join(f'exec {3 + n}>>"{file}"; ' for n, file in enumerate(fds))
        wrapped = ["sh", "-c", f'{opens}exec "$@"', "sh", *argv]
        if self.user is not None:
            done = self.user.run(wrapped, timeout=60)
            return Outcome(done.returncode, done.stdout.decode(), done.stderr.decode())
        result = subprocess.run(wrapped, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        return Outcome(result.returncode, result.stdout, result.stderr)

    @contextlib.contextmanager
    def running(self, change: Change | None = None, script: str = "exec sleep 600", start: bool = True) -> Iterator[str]:
        """A container created (and started) with the same configuration, running ``script``; its ID."""
        self.started += 1
        container_id = f"escape-{os.getpid()}-{self.started}"
        bundle = self.bundle_root / f"bundle-{self.started}"

        def prepare(config: Config, path: Path) -> None:
            shutil.copy2(self.helper, path / "rootfs" / "bin" / "escape")
            if change is not None:
                change(config, path)
            podman_seccomp(config, path)

        write_bundle(bundle, script, prepare, (self.user.uid, self.user.gid) if self.user else None)
        try:
            # the container keeps create's stdio: no pipe, or waiting for its end would wait for the container
            created = self._command(["sh", "-c", '"$@" </dev/null >/dev/null 2>&1', "sh",
                                     *self.argv, "create", "--bundle", str(bundle), container_id], ())
            assert created.status == 0, f"{self.name} create failed"
            if start:
                started = self._command([*self.argv, "start", container_id], ())
                assert started.status == 0, started.describe()
            yield container_id
        finally:
            self._command([*self.argv, "delete", "--force", container_id], ())
            shutil.rmtree(bundle, ignore_errors=True)

    def exec(self, container_id: str, script: str, *, extra: Sequence[str] = (), fds: Sequence[Path] = ()) -> Outcome:
        """``exec`` of ``sh -c script`` in the running container, started with ``fds`` as :meth:`run` does."""
        return self._command([*self.argv, "exec", *extra, container_id, "sh", "-c", script], fds)


def _argv(name: str, crun: str, state: Path) -> list[str]:
    if name == "crun":
        return [crun, "--root", str(state)]
    assert PALLET_RUNTIME.exists(), f"{PALLET_RUNTIME} is missing: install the workspace into .venv"
    return [str(PALLET_RUNTIME), "--root", str(state)]


@pytest.fixture(params=RUNTIMES)
def runtime(request: pytest.FixtureRequest, crun: str, helper: Path, tmp_path: Path) -> Runner:
    return Runner(request.param, _argv(request.param, crun, tmp_path / "state"), tmp_path, helper)


@pytest.fixture(params=RUNTIMES)
def rootless_runtime(request: pytest.FixtureRequest, crun: str, helper: Path, rootless_user: RootlessUser,
                     rootless_tmp_path: Path) -> Runner:
    helper_copy = rootless_tmp_path / "escape"
    shutil.copy2(helper, helper_copy)
    return Runner(request.param, _argv(request.param, crun, rootless_tmp_path / "state"), rootless_tmp_path,
                  helper_copy, rootless_user)


@pytest.fixture
def host_process() -> Iterator[subprocess.Popen[bytes]]:
    """A host process with a recognisable command line, for the container to look for and ptrace."""
    process = subprocess.Popen(["/bin/busybox", "sleep", "86413"])
    yield process
    process.kill()
    process.wait()


def _tracer(pid: int) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("TracerPid:"):
            return line.split()[1]
    return "?"


BLOCKED = "echo BLOCKED"  # printed when the attempt failed; the escape succeeded when "ESCAPED" is printed


# --- the attempts, as root (and as root in a user namespace when rootless)

def _see_host_processes(runner: Runner, pid: int) -> None:
    outcome = runner.run(
        "ps -o pid,args; ls /proc | grep -c '^[0-9]'; m=864; "  # the marker is not spelled out in the script
        f"if grep -l \"${{m}}13\" /proc/[0-9]*/cmdline 2>/dev/null || [ -e /proc/{pid} ]; then echo ESCAPED; "
        f"else {BLOCKED}; fi")
    assert outcome.status == 0 and outcome.stdout.strip().endswith("BLOCKED"), outcome.describe()
    assert "86413" not in outcome.stdout.replace(f"/proc/{pid}", ""), outcome.describe()


def test_host_processes_are_not_visible(runtime: Runner, host: HostState,
                                        host_process: subprocess.Popen[bytes]) -> None:
    _see_host_processes(runtime, host_process.pid)


def _mount(runner: Runner) -> None:
    outcome = runner.run(
        "mount -t tmpfs none /mnt && echo ESCAPED-tmpfs || echo refused-tmpfs; "
        "mount -o remount,rw / && echo ESCAPED-remount || echo refused-remount; "
        "mount -o remount,rw /sys && echo ESCAPED-sys || echo refused-sys; "
        "mount --bind /proc /mnt && echo ESCAPED-bind || echo refused-bind; "
        "umount /proc && echo ESCAPED-umount || echo refused-umount; "
        "grep -c ' /mnt ' /proc/self/mountinfo; touch /rootfs-write 2>/dev/null && echo ESCAPED-ro || echo refused-ro",
        set_field("root.readonly", True))
    assert outcome.status == 0, outcome.describe()
    assert "ESCAPED" not in outcome.stdout, outcome.describe()
    assert outcome.stdout.split().count("0") == 1, outcome.describe()


def test_mount_and_remount_fail(runtime: Runner, host: HostState) -> None:
    _mount(runtime)


def _kernel_memory_and_firmware(runner: Runner) -> None:
    outcome = runner.run(
        "echo kcore=$(cat /proc/kcore 2>/dev/null | wc -c); echo firmware=$(ls -A /sys/firmware | wc -l); "
        "echo keys=$(cat /proc/keys 2>/dev/null | wc -c); "
        "echo acpi=$(ls -A /proc/acpi 2>/dev/null | wc -l)")
    assert outcome.status == 0, outcome.describe()
    assert outcome.stdout.split() == ["kcore=0", "firmware=0", "keys=0", "acpi=0"], outcome.describe()


def test_proc_kcore_and_sys_firmware_are_masked(runtime: Runner, host: HostState) -> None:
    _kernel_memory_and_firmware(runtime)


def _write_proc_sys(runner: Runner, host: HostState) -> None:
    other = "1" if host.core_uses_pid.strip() == "0" else "0"
    outcome = runner.run(
        f"echo {other} > /proc/sys/kernel/core_uses_pid && echo ESCAPED-sysctl || echo refused-sysctl; "
        "echo 3 > /proc/sys/vm/drop_caches && echo ESCAPED-vm || echo refused-vm; "
        "echo h > /proc/sysrq-trigger && echo ESCAPED-sysrq || echo refused-sysrq; "
        "grep ' /proc/sys ' /proc/self/mountinfo | grep -q ' ro,' && echo sys-ro")
    assert outcome.status == 0, outcome.describe()
    assert outcome.stdout.split() == ["refused-sysctl", "refused-vm", "refused-sysrq", "sys-ro"], outcome.describe()
    assert Path("/proc/sys/kernel/core_uses_pid").read_text() == host.core_uses_pid


def test_writing_proc_sys_fails(runtime: Runner, host: HostState) -> None:
    _write_proc_sys(runtime, host)


def _setuid(config: Config, bundle: Path) -> None:
    helper = bundle / "rootfs" / "bin" / "escape"
    shutil.copy2(helper, bundle / "rootfs" / "bin" / "suid-escape")
    os.chown(bundle / "rootfs" / "bin" / "suid-escape", 0, 0)
    os.chmod(bundle / "rootfs" / "bin" / "suid-escape", 0o4755)
    config["process"]["user"] = {"uid": 1000, "gid": 1000}
    config["process"]["noNewPrivileges"] = True


def test_a_setuid_binary_gives_no_privileges(runtime: Runner, host: HostState) -> None:
    outcome = runtime.run("ls -ln /bin/suid-escape | cut -c1-10; /bin/suid-escape ids; "
                          "grep -E '^(NoNewPrivs|CapEff|Seccomp):' /proc/self/status", _setuid)
    assert outcome.status == 0, outcome.describe()
    assert outcome.stdout.split() == ["-rwsr-xr-x", "uids", "1000", "1000", "1000", "CapEff:", "0000000000000000",
                                      "NoNewPrivs:", "1", "Seccomp:", "2"], outcome.describe()


def _load_module(runner: Runner) -> None:
    outcome = runner.run(
        "head -c 64 /dev/zero > /tmp/evil.ko; insmod /tmp/evil.ko 2>&1; echo insmod=$?; "
        "modprobe evil 2>/dev/null; echo modprobe=$?; escape init_module")
    lines = outcome.stdout.splitlines()
    assert "insmod=0" not in lines and "modprobe=0" not in lines, outcome.describe()
    # EPERM: refused for want of CAP_SYS_MODULE (and by the profile), whether or not the kernel has modules
    assert lines[-1] == "init_module refused: EPERM" and outcome.status == 1, outcome.describe()


def test_loading_a_kernel_module_fails(runtime: Runner, host: HostState) -> None:
    _load_module(runtime)


def _hostname(runner: Runner) -> None:
    outcome = runner.run("hostname evil 2>&1; echo status=$?; "
                         "echo evil > /proc/sys/kernel/hostname 2>/dev/null; echo write=$?; hostname")
    assert outcome.status == 0, outcome.describe()
    lines = outcome.stdout.splitlines()
    assert "status=0" not in lines and "write=0" not in lines and lines[-1] != "evil", outcome.describe()


def test_changing_the_hostname_fails(runtime: Runner, host: HostState) -> None:
    _hostname(runtime)
    assert os.uname().nodename == host.hostname


def _ptrace(runner: Runner, pid: int) -> None:
    outcome = runner.run(f"escape ptrace {pid}; echo ptrace=$?; "
                         f"head -c 16 /proc/{pid}/mem 2>/dev/null && echo ESCAPED-mem || echo refused-mem")
    lines = outcome.stdout.splitlines()
    assert outcome.status == 0, outcome.describe()
    assert lines == ["ptrace refused: ESRCH", "ptrace=1", "refused-mem"], outcome.describe()
    assert _tracer(pid) == "0"


def test_ptrace_of_a_host_process_fails(runtime: Runner, host: HostState,
                                       host_process: subprocess.Popen[bytes]) -> None:
    _ptrace(runtime, host_process.pid)


# pid 1's descriptors, and the host files the process can reach; busybox sh runs ls in its own process and
# keeps its stdout at 10 while ls writes to /tmp/fds
FD_SCRIPT = ("ls /proc/1/fd > /tmp/fds; echo pid1 $(sort -n /tmp/fds); ls -l /proc/self/fd/ | grep -o 'host-[a-z]*' | sort; "
             "(echo evil >&3) 2>/dev/null && echo wrote3 || echo refused3; "
             "(echo evil >&4) 2>/dev/null && echo wrote4 || echo refused4")


def _host_files(directory: Path) -> list[Path]:
    files = [directory / "host-preserved", directory / "host-secret"]
    for file in files:
        file.write_text("untouched\n")
        file.chmod(0o666)
    return files


def _file_descriptors(runner: Runner, directory: Path) -> None:
    files = _host_files(directory)
    without = runner.run(FD_SCRIPT, fds=files)
    assert without.status == 0, without.describe()
    assert without.stdout.split() == ["pid1", "0", "1", "2", "10", "refused3", "refused4"], without.describe()
    assert [file.read_text() for file in files] == ["untouched\n"] * 2
    # --preserve-fds 1 hands over descriptor 3, and only it
    preserved = runner.run(FD_SCRIPT, extra=["--preserve-fds", "1"], fds=files)
    assert preserved.status == 0, preserved.describe()
    assert preserved.stdout.split() == ["pid1", "0", "1", "2", "3", "10", "host-preserved", "wrote3", "refused4"], \
        preserved.describe()
    assert files[0].read_text() == "untouched\nevil\n"
    assert files[1].read_text() == "untouched\n"


def test_no_host_descriptor_beyond_preserve_fds(runtime: Runner, host: HostState, tmp_path: Path) -> None:
    _file_descriptors(runtime, tmp_path)


# --- the checks see an escape: with the privileges taken away above, the same attempts succeed

ALL_CAPS = ["CAP_SYS_ADMIN", "CAP_SETUID", "CAP_SETGID", "CAP_SYS_MODULE", "CAP_SYS_PTRACE"]


def _privileged(config: Config, bundle: Path) -> None:
    config["process"]["capabilities"] = {name: ALL_CAPS for name in ("bounding", "effective", "permitted")}
    config["process"]["noNewPrivileges"] = False


def test_the_checks_see_an_escape_from_a_privileged_container(runtime: Runner, host: HostState) -> None:
    """Control: with CAP_SYS_ADMIN and without no_new_privs the mount and the setuid exec go through
    (in the container's own namespaces: the host stays unchanged), so the tests above would see them."""
    mounted = runtime.run("mount -t tmpfs none /mnt && echo ESCAPED-tmpfs", _privileged)
    assert mounted.stdout.split() == ["ESCAPED-tmpfs"], mounted.describe()

    def setuid_without_nnp(config: Config, bundle: Path) -> None:
        _setuid(config, bundle)
        _privileged(config, bundle)
        config["process"]["capabilities"] = {"bounding": ALL_CAPS}

    raised = runtime.run("/bin/suid-escape ids", setuid_without_nnp)
    assert raised.stdout.split() == ["uids", "1000", "0", "0"], raised.describe()


# --- rootless: the same attempts from a user namespace (crun spec --rootless)

@pytest.mark.rootless
def test_rootless_escapes_fail(rootless_runtime: Runner, host: HostState, host_process: subprocess.Popen[bytes],
                               rootless_tmp_path: Path) -> None:
    _see_host_processes(rootless_runtime, host_process.pid)
    _mount(rootless_runtime)
    _kernel_memory_and_firmware(rootless_runtime)
    _write_proc_sys(rootless_runtime, host)
    _load_module(rootless_runtime)
    _hostname(rootless_runtime)
    _ptrace(rootless_runtime, host_process.pid)
    files = rootless_tmp_path / "files"
    files.mkdir()
    files.chmod(0o777)
    _file_descriptors(rootless_runtime, files)
    cgroups = rootless_runtime.run(CGROUP_SCRIPT, _cgroup_mount)
    assert cgroups.stdout.split() == ["end"], cgroups.describe()
    assert os.uname().nodename == host.hostname


# --- the same through exec: a process added to a running container is held as its first one is

def test_exec_escapes_fail(runtime: Runner, host: HostState, host_process: subprocess.Popen[bytes],
                           tmp_path: Path) -> None:
    with runtime.running() as container_id:
        status = runtime.exec(container_id, "grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status")
        # the config's three capabilities (kill, net_bind_service, audit_write) and the filter; no_new_privs is
        # off, as runc's and crun's exec leave it without --no-new-privs
        assert status.stdout.split() == ["CapEff:", "0000000020000420", "NoNewPrivs:", "0", "Seccomp:", "2"], \
            status.describe()
        mounted = runtime.exec(container_id, "mount -t tmpfs none /mnt && echo ESCAPED || echo refused; "
                                             "escape init_module; hostname evil 2>/dev/null || echo refused; "
                                             f"escape ptrace {host_process.pid}")
        assert mounted.stdout.split("\n")[:4] == ["refused", "init_module refused: EPERM", "refused",
                                                  "ptrace refused: ESRCH"], mounted.describe()
        files = _host_files(tmp_path)
        without = runtime.exec(container_id, FD_SCRIPT.replace("/proc/1/fd", "/proc/self/fd"), fds=files)
        assert "host-" not in without.stdout and "wrote" not in without.stdout, without.describe()
        preserved = runtime.exec(container_id, FD_SCRIPT, extra=["--preserve-fds", "1"], fds=files)
        assert preserved.stdout.split()[-3:] == ["host-preserved", "wrote3", "refused4"], preserved.describe()
        assert files[1].read_text() == "untouched\n"
    assert os.uname().nodename == host.hostname


# --- the runtime itself: until it execs the program, a process in the container is the host's runtime
# (for pallet-runtime the host's Python): its /proc/<pid>/exe, fd, root must be out of the container's reach
# (CVE-2019-5736: a container overwrote the host's runc through /proc/<pid>/exe)

RUNTIME_PROC = ("readlink /proc/1/exe || echo refused-exe-link; "
                "head -c 4 /proc/1/exe >/dev/null 2>&1 && echo ESCAPED-exe || echo refused-exe; "
                "ls /proc/1/root/ >/dev/null 2>&1 && echo ESCAPED-root || echo refused-root; "
                "readlink /proc/1/fd/0 || echo refused-fd")


def test_a_created_containers_init_is_out_of_reach(runtime: Runner, host: HostState) -> None:
    """Between create and start, init is the runtime; a process exec'd into the container looks at it."""
    with runtime.running(start=False) as container_id:
        outcome = runtime.exec(container_id, RUNTIME_PROC)
    assert outcome.stdout.split() == ["refused-exe-link", "refused-exe", "refused-root", "refused-fd"], \
        outcome.describe()


WATCHER = r"""
while true; do
  for p in /proc/[0-9]*; do
    l=$(readlink $p/exe 2>/dev/null) || continue
    case "$l" in /bin/busybox|/bin/escape) ;; *) echo "$p $l" >> /tmp/seen;; esac
  done
done
"""


def test_an_exec_in_progress_is_out_of_reach(runtime: Runner, host: HostState) -> None:
    """A watcher in the container reads the exe link of every process it sees while execs come and go:
    it must only ever see the container's programs, never the runtime's binary."""
    with runtime.running(script=WATCHER) as container_id:
        for _ in range(20):
            assert runtime.exec(container_id, "true").status == 0
        seen = runtime.exec(container_id, "cat /tmp/seen 2>/dev/null; echo end")
    assert seen.stdout.split() == ["end"], seen.describe()


@pytest.mark.rootless
def test_rootless_exec_escapes_fail(rootless_runtime: Runner, host: HostState,
                                    host_process: subprocess.Popen[bytes], rootless_tmp_path: Path) -> None:
    runtime = rootless_runtime
    with runtime.running(start=False) as container_id:
        outcome = runtime.exec(container_id, RUNTIME_PROC)
    # without privilege neither runtime can join a created container's user namespace (init is not dumpable)
    assert (outcome.status != 0 and not outcome.stdout) or \
        outcome.stdout.split() == ["refused-exe-link", "refused-exe", "refused-root", "refused-fd"], outcome.describe()
    with runtime.running(script=WATCHER) as container_id:
        for _ in range(10):
            assert runtime.exec(container_id, "true").status == 0
        attempts = runtime.exec(container_id, "mount -t tmpfs none /mnt 2>/dev/null && echo ESCAPED || echo refused; "
                                              f"escape init_module; escape ptrace {host_process.pid}; "
                                              "cat /tmp/seen 2>/dev/null; echo end")
        assert attempts.stdout.splitlines() == ["refused", "init_module refused: EPERM", "ptrace refused: ESRCH",
                                                "end"], attempts.describe()
        files = rootless_tmp_path / "files"
        files.mkdir()
        files.chmod(0o777)
        host_files = _host_files(files)
        without = runtime.exec(container_id, FD_SCRIPT.replace("/proc/1/fd", "/proc/self/fd"), fds=host_files)
        assert "host-" not in without.stdout and "wrote" not in without.stdout, without.describe()
        assert [file.read_text() for file in host_files] == ["untouched\n"] * 2


# --- the cgroup file system: podman's config mounts it read-only; the host's release_agent and its
# hierarchies must stay out of reach (CVE-2022-0492)

def _cgroup_mount(config: Config, bundle: Path) -> None:
    config["mounts"].append({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]})


CGROUP_SCRIPT = ("for h in /sys/fs/cgroup/*; do "
                 "  mkdir $h/escape 2>/dev/null && echo ESCAPED-mkdir-$h; "
                 "  [ -e $h/release_agent ] && { echo /evil > $h/release_agent; } 2>/dev/null && echo ESCAPED-agent-$h; "
                 "  [ -e $h/notify_on_release ] && { echo 1 > $h/notify_on_release; } 2>/dev/null && echo ESCAPED-notify-$h; "
                 "done; echo end")


def test_the_host_cgroups_stay_read_only(runtime: Runner, host: HostState) -> None:
    outcome = runtime.run(CGROUP_SCRIPT, _cgroup_mount)
    made = list(Path("/sys/fs/cgroup").glob("*/escape"))
    for directory in made:  # a cgroup made by the container: removed before failing
        directory.rmdir()
    assert outcome.stdout.split() == ["end"], outcome.describe()
    assert not made
