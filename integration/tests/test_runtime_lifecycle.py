"""pallet-runtime's lifecycle beside crun (issue 5, acceptance 1 and 4).

Step by step create / state / start / kill / delete, ``spec``, a terminal
through ``--console-socket`` and ``exec`` against crun; ``ps`` and
``kill --all``; and bad bundles, each of which must give one clear error and
leave no process, mount, cgroup or state directory behind.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pallet_testing.bundles import (
    PALLET_RUNTIME,
    Change,
    Config,
    normalise,
    set_field,
    user_namespace,
    write_bundle,
)
from pallet_testing.users import RootlessUser

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(os.geteuid() != 0, reason="the lifecycle tests run as root"),
]

CAPS = "grep -E '^Cap' /proc/self/status"


@pytest.fixture(scope="module")
def crun_argv(crun: str, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    return [crun, "--root", str(tmp_path_factory.mktemp("crun-state"))]


@pytest.fixture(scope="module")
def pallet_argv(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    assert PALLET_RUNTIME.exists(), f"{PALLET_RUNTIME} is missing: install the workspace into .venv"
    return [str(PALLET_RUNTIME), "--root", str(tmp_path_factory.mktemp("pallet-state"))]


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
    bundle = tmp_path / "bundle"
    write_bundle(bundle, "sleep 30")
    crun_steps = _lifecycle(crun_argv, bundle, "lifecycle", tmp_path / "crun.pid")
    write_bundle(bundle, "sleep 30")
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
    user_namespace()(config, bundle)
    mapping = [{"containerID": 0, "hostID": 4294967295, "size": 1}]
    config["linux"]["uidMappings"] = mapping


BAD_BUNDLES: dict[str, tuple[Change, str]] = {
    "missing rootfs": (lambda config, bundle: shutil.rmtree(bundle / "rootfs"), "root.path"),
    "invalid JSON": (lambda config, bundle: None, "not valid JSON"),
    "unknown namespace": (_unknown_namespace, "no-such-namespace"),
    "impossible mapping": (_impossible_mapping, "linux.uidMappings"),
    "mount target escaping through a symlink": (_escape_through_symlink, "escapes the container's rootfs"),
    "missing executable": (set_field("process.args", ["no-such-program"]), "no-such-program"),
}


@pytest.mark.parametrize("case", sorted(BAD_BUNDLES))
def test_bad_bundle_gives_one_error_and_leaves_nothing(case: str, pallet_argv: list[str], tmp_path: Path) -> None:
    change, expected = BAD_BUNDLES[case]
    bundle = tmp_path / "bundle"
    write_bundle(bundle, "true", change)
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
    write_bundle(bundle, "sleep 60 & sleep 60 & wait")

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

    bundle = tmp_path / "bundle"
    write_bundle(bundle, TERMINAL_SCRIPT, terminal)
    crun_sees = _run_with_console(crun_argv, bundle, "console", tmp_path / "crun.sock")
    write_bundle(bundle, TERMINAL_SCRIPT, terminal)
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
    results: dict[str, list[tuple[str, int, str]]] = {}
    for name, argv in (("crun", crun_argv), ("pallet", pallet_argv)):
        bundle = tmp_path / "bundle"
        write_bundle(bundle, "sleep 60", set_field("hostname", "exec-box"))
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
    write_bundle(bundle, "sleep 60")
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


# --- a rootless mapping outside the user's subordinate IDs: newuidmap refuses it

@pytest.mark.rootless
def test_rootless_mapping_outside_the_subordinate_ids_is_one_error(rootless_user: RootlessUser,
                                                                   rootless_tmp_path: Path) -> None:
    bundle = rootless_tmp_path / "bundle"
    owner = (rootless_user.uid, rootless_user.gid)

    def foreign_range(config: Config, path: Path) -> None:
        own = {"containerID": 0, "hostID": rootless_user.uid, "size": 1}
        config["linux"]["uidMappings"] = [own, {"containerID": 1, "hostID": 5000000, "size": 1000}]
        config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": rootless_user.gid, "size": 1}]

    write_bundle(bundle, "id", foreign_range, owner)
    state_root = rootless_tmp_path / "state"
    result = rootless_user.run([str(PALLET_RUNTIME), "--root", str(state_root), "run", "--bundle", str(bundle), "bad"])
    lines = result.stderr.decode().strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, lines
    assert lines[0].startswith("pallet-runtime: linux.uidMappings: newuidmap refused")
    assert not (state_root / "bad").exists()
    leftovers = [entry.name for entry in Path("/proc").iterdir() if entry.name.isdigit()
                 and str(state_root).encode() in _cmdline(entry)]
    assert leftovers == []


def _cmdline(entry: Path) -> bytes:
    try:
        return (entry / "cmdline").read_bytes()
    except OSError:
        return b""


# --- --preserve-fds: descriptors 3.. reach the container as they do under crun

def test_preserve_fds_agrees_with_crun(crun_argv: list[str], pallet_argv: list[str], tmp_path: Path) -> None:
    seen = []
    for argv in (crun_argv, pallet_argv):
        bundle = tmp_path / "bundle"
        write_bundle(bundle, "cat <&3; ls /proc/self/fd | sort -n | tr '\\n' ' '")
        read_end, write_end = os.pipe()
        os.write(write_end, b"through fd 3\n")
        os.close(write_end)
        extra = os.open(os.devnull, os.O_RDONLY)

        def as_fds_3_and_4(read_end: int = read_end, extra: int = extra) -> None:
            os.dup2(read_end, 3)
            os.dup2(extra, 4)  # not preserved: must not reach the container

        try:
            result = subprocess.run([*argv, "run", "--preserve-fds", "1", "--bundle", str(bundle), "fds"],
                                    capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                                    pass_fds=(3, 4), preexec_fn=as_fds_3_and_4)
        finally:
            os.close(read_end)
            os.close(extra)
        seen.append((result.returncode, result.stdout, result.stderr))
    assert seen[0][0] == 0 and "through fd 3" in seen[0][1], seen
    assert seen[1][:2] == seen[0][:2], seen
