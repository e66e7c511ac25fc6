"""run_in_userns and run_unshared, measured as the unprivileged test user (and as root).

Each rootless case runs a small Python program as ``pallet-test`` (from
root, through the ``rootless_user`` fixture); the program prints one JSON
line that the test checks, from outside, against the host's view.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from pallet.storage.userns.idmap import RootlessMapping, parse_proc_map, proc_map_text, rootless_idmap, to_host
from pallet.storage.userns.subids import SUBGID_PATH, SUBUID_PATH, SubIDRange, ranges_for_user
from pallet.storage.userns.unshare import UsernsSetup, run_in_userns
from pallet.storage.userns.command import run_unshared
from pallet_testing.users import end_pause_process

pytestmark = pytest.mark.rootless

PRELUDE = """\
import json, os, sys
from pathlib import Path
from pallet.storage.userns import errors
from pallet.storage.userns.unshare import run_in_userns, rootless_setup
from pallet.storage.userns.command import run_unshared

def no_children_left():
    try:
        os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return True
    return False

def error_of(call):
    try:
        call()
    except errors.UsernsError as exc:
        return {"type": type(exc).__name__, "message": str(exc), "reaped": no_children_left()}
    return None
"""


def run_program(user: Any, body: str, *args: str, env: dict[str, str] | None = None) -> Any:
    """Run PRELUDE + ``body`` as ``user``; the JSON value of the last line it prints."""
    result = user.run([sys.executable, "-c", PRELUDE + textwrap.dedent(body), *args], env=env, timeout=90)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return json.loads(result.stdout.decode().splitlines()[-1])


def expected_mapping(user: Any) -> RootlessMapping:
    uid_ranges = ranges_for_user(SUBUID_PATH, user.name, user.uid)
    gid_ranges = ranges_for_user(SUBGID_PATH, user.name, user.uid)
    return RootlessMapping(user.name, user.uid, user.gid, rootless_idmap(user.uid, uid_ranges), rootless_idmap(user.gid, gid_ranges))


def test_inside_the_user_is_root_with_podmans_mapping(rootless_user: Any) -> None:
    seen = run_program(rootless_user, """
        def inside():
            return {"ids": [os.getuid(), os.geteuid(), os.getgid(), os.getegid()], "groups": os.getgroups(),
                    "uid_map": Path("/proc/self/uid_map").read_text(), "gid_map": Path("/proc/self/gid_map").read_text(),
                    "pid": os.getpid()}
        out = run_in_userns(inside)
        out["outer_pid"] = os.getpid()
        out["reaped"] = no_children_left()
        print(json.dumps(out))
    """)
    expected = expected_mapping(rootless_user)
    assert seen["ids"] == [0, 0, 0, 0]
    assert seen["groups"] in ([], [0])
    assert seen["uid_map"] == proc_map_text(expected.uid_map)
    assert seen["gid_map"] == proc_map_text(expected.gid_map)
    assert seen["pid"] != seen["outer_pid"] and seen["reaped"]


def test_the_mapping_is_the_one_podman_unshare_makes(rootless_user: Any, podman: str, rootless_tmp_path: Path) -> None:
    ours = run_program(rootless_user, """
        print(json.dumps(run_in_userns(lambda: [Path(f"/proc/self/{k}_map").read_text() for k in ("uid", "gid")])))
    """)
    runtime = rootless_tmp_path / "run"  # private: podman's pause process (and pause.pid) are this test's own
    runtime.mkdir(mode=0o700)
    if os.geteuid() == 0:
        os.chown(runtime, rootless_user.uid, rootless_user.gid)
    try:
        theirs = rootless_user.run([podman, "unshare", "cat", "/proc/self/uid_map", "/proc/self/gid_map"],
                                   env={"XDG_RUNTIME_DIR": str(runtime)}, timeout=90)
    finally:
        end_pause_process(runtime)
    assert theirs.returncode == 0, theirs.stderr.decode(errors="replace")
    podman_maps = parse_proc_map(theirs.stdout.decode())
    assert parse_proc_map(ours[0] + ours[1]) == podman_maps


def test_chown_inside_lands_on_the_subordinate_id_outside(rootless_user: Any, rootless_tmp_path: Path) -> None:
    target = rootless_tmp_path / "owned"
    seen = run_program(rootless_user, """
        def inside(path):
            Path(path).write_text("x")
            os.chown(path, 1000, 1000)
            st = os.stat(path)
            return [st.st_uid, st.st_gid]
        print(json.dumps(run_in_userns(inside, sys.argv[1])))
    """, str(target))
    expected = expected_mapping(rootless_user)
    assert seen == [1000, 1000]
    outside = os.stat(target)
    assert (outside.st_uid, outside.st_gid) == (to_host(expected.uid_map, 1000), to_host(expected.gid_map, 1000))
    assert outside.st_uid == ranges_for_user(SUBUID_PATH, rootless_user.name, rootless_user.uid)[0].start + 999


def _shared_tmpfs(path: Path) -> bool:
    """As root: a tmpfs on ``path`` made shared (so that a namespace that kept propagation would show it)."""
    if os.geteuid() != 0:
        return False
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(path)], check=True)
    subprocess.run(["mount", "--make-shared", str(path)], check=True)
    return True


def test_a_tmpfs_mounted_inside_is_not_visible_outside(rootless_user: Any, rootless_tmp_path: Path) -> None:
    mountpoint = rootless_tmp_path / "mnt"
    mountpoint.mkdir()
    os.chown(mountpoint, rootless_user.uid, rootless_user.gid)
    shared = rootless_tmp_path / "shared"
    made_shared = _shared_tmpfs(shared)
    try:
        seen = run_program(rootless_user, """
            import ctypes, ctypes.util
            def inside(path):
                libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
                if libc.mount(b"tmpfs", path.encode(), b"tmpfs", 0, b"size=1m") != 0:
                    return {"error": os.strerror(ctypes.get_errno())}
                Path(path, "inside").write_text("x")
                mountinfo = Path("/proc/self/mountinfo").read_text().splitlines()
                optional = [l.split(" - ")[0].split()[6:] for l in mountinfo]
                return {"listing": os.listdir(path), "mounted": any(l.split()[4] == path for l in mountinfo),
                        "propagation": sorted({f for fields in optional for f in fields})}
            print(json.dumps(run_in_userns(inside, sys.argv[1])))
        """, str(mountpoint))
    finally:
        if made_shared:
            subprocess.run(["umount", str(shared)], check=True)
    assert seen.get("error") is None, seen
    assert seen["listing"] == ["inside"] and seen["mounted"]
    assert seen["propagation"] == []  # every mount private inside: no shared:N, no master:N (a kept one is master:N)
    assert os.listdir(mountpoint) == []
    assert all(line.split()[4] != str(mountpoint) for line in Path("/proc/self/mountinfo").read_text().splitlines())


def test_exceptions_results_and_timeouts_of_the_callable(rootless_user: Any) -> None:
    seen = run_program(rootless_user, """
        import threading, time
        out = {}
        try:
            run_in_userns(lambda: int("not a number"))
        except ValueError as exc:
            out["raised"] = str(exc)
        out["unpicklable"] = error_of(lambda: run_in_userns(lambda: threading.Lock()))
        out["exit"] = error_of(lambda: run_in_userns(lambda: os._exit(3)))
        started = time.monotonic()
        out["timeout"] = error_of(lambda: run_in_userns(time.sleep, 30, timeout=0.5))
        out["timeout_took"] = time.monotonic() - started
        out["big"] = len(run_in_userns(lambda: b"x" * (8 << 20)))
        print(json.dumps(out))
    """)
    assert "invalid literal for int()" in seen["raised"]
    assert seen["unpicklable"]["type"] == "ChildFailed" and "cannot send the outcome back" in seen["unpicklable"]["message"]
    assert seen["exit"]["type"] == "ChildFailed" and "exit code 3" in seen["exit"]["message"]
    assert seen["timeout"]["type"] == "UsernsTimeout" and seen["timeout"]["reaped"]
    assert seen["timeout_took"] < 10
    assert seen["big"] == 8 << 20


def test_run_unshared_is_podman_unshare(rootless_user: Any, rootless_tmp_path: Path) -> None:
    seen = run_program(rootless_user, """
        import subprocess
        out = {}
        script = 'id -u > "$1/id"; env | grep ^_CONTAINERS_ | sort > "$1/env"; exit 3'
        out["status"] = run_unshared(["sh", "-c", script, "sh", sys.argv[1]], dict(os.environ))
        out["killed"] = run_unshared(["sh", "-c", "kill -9 $$"])
        out["killed_as_named"] = run_unshared(["sh", "-c", "kill -9 $$"], killed_status=255)
        out["exit_137"] = run_unshared(["sh", "-c", "exit 137"], killed_status=255)
        out["missing"] = error_of(lambda: run_unshared(["/nonexistent/program"]))
        out["reaped"] = no_children_left()
        print(json.dumps(out))
    """, str(rootless_tmp_path))
    assert seen["status"] == 3
    assert seen["killed"] == 128 + 9
    assert (seen["killed_as_named"], seen["exit_137"]) == (255, 137)  # a killed command, not a status of 137
    assert seen["missing"]["type"] == "ExecFailed" and seen["missing"]["reaped"]
    assert "No such file or directory" in seen["missing"]["message"]
    assert (rootless_tmp_path / "id").read_text() == "0\n"
    assert (rootless_tmp_path / "env").read_text().splitlines() == [
        f"_CONTAINERS_ROOTLESS_GID={rootless_user.gid}",
        f"_CONTAINERS_ROOTLESS_UID={rootless_user.uid}",
        "_CONTAINERS_USERNS_CONFIGURED=done",
    ]


def test_setup_errors_are_clear_and_leave_no_child(rootless_user: Any, rootless_tmp_path: Path) -> None:
    subuid = rootless_tmp_path / "subuid"
    subuid.write_text("somebody-else:100000:65536\n")
    not_granted = rootless_tmp_path / "not-granted"
    not_granted.write_text(f"{rootless_user.name}:900000:65536\n")
    empty_bin = rootless_tmp_path / "bin"
    empty_bin.mkdir()
    for path in (subuid, not_granted, empty_bin):
        os.chown(path, rootless_user.uid, rootless_user.gid)
    seen = run_program(rootless_user, """
        tmp = Path(sys.argv[1])
        print(json.dumps({
            "no_ranges": error_of(lambda: rootless_setup(user="nobody-here", subuid_path=tmp / "subuid")),
            "too_small": error_of(lambda: rootless_setup(min_subids=10**9)),
            "no_helper": error_of(lambda: rootless_setup(helper_search_path=str(tmp / "bin"))),
            "refused": error_of(lambda: run_in_userns(os.getuid, setup=rootless_setup(subuid_path=tmp / "not-granted"))),
            "unshare_refused": error_of(lambda: run_unshared(["true"], setup=rootless_setup(subuid_path=tmp / "not-granted"))),
        }))
    """, str(rootless_tmp_path))
    assert seen["no_ranges"]["type"] == "NoSubIDRanges"
    assert "'nobody-here'" in seen["no_ranges"]["message"] and "usermod --add-subuids" in seen["no_ranges"]["message"]
    assert seen["too_small"]["type"] == "SubIDRangesTooSmall"
    assert seen["no_helper"]["type"] == "HelperMissing" and "apt-get install uidmap" in seen["no_helper"]["message"]
    for case in ("refused", "unshare_refused"):  # newuidmap refuses ranges /etc/subuid does not grant
        assert seen[case]["type"] == "IDMapFailed", seen[case]
        assert "newuidmap" in seen[case]["message"] and seen[case]["reaped"]


def test_failing_or_hanging_helpers_kill_the_child(rootless_user: Any, rootless_tmp_path: Path) -> None:
    helpers = {"failing": "echo 'newuidmap: write to uid_map failed: nope' >&2; exit 1", "hanging": "exec sleep 60"}
    for kind, script in helpers.items():
        directory = rootless_tmp_path / kind
        directory.mkdir()
        for name in ("newuidmap", "newgidmap"):
            (directory / name).write_text(f"#!/bin/sh\n{script}\n")
            (directory / name).chmod(0o755)
    seen = run_program(rootless_user, """
        import dataclasses, time
        tmp = Path(sys.argv[1])
        out = {}
        for kind in ("failing", "hanging"):
            setup = dataclasses.replace(rootless_setup(helper_search_path=str(tmp / kind)), handshake_timeout=1.0)
            started = time.monotonic()
            out[kind] = error_of(lambda: run_in_userns(os.getuid, setup=setup))
            out[kind]["took"] = time.monotonic() - started
        print(json.dumps(out))
    """, str(rootless_tmp_path))
    assert seen["failing"]["type"] == "IDMapFailed" and "write to uid_map failed: nope" in seen["failing"]["message"]
    assert seen["hanging"]["type"] == "UsernsTimeout" and seen["hanging"]["took"] < 10
    assert seen["failing"]["reaped"] and seen["hanging"]["reaped"]


@pytest.mark.skipif(os.geteuid() != 0, reason="the root behaviour needs root")
def test_as_root_the_work_runs_directly() -> None:
    assert run_in_userns(os.getpid) == os.getpid()
    probe = 'test -z "$_CONTAINERS_USERNS_CONFIGURED$_CONTAINERS_ROOTLESS_UID" && test "$(id -u)" = 0 && exit 7'
    assert run_unshared(["sh", "-c", probe], {"PATH": "/usr/bin:/bin"}) == 7
    assert run_unshared(["sh", "-c", "kill -9 $$"], killed_status=1) == 1


@pytest.mark.skipif(os.geteuid() != 0, reason="the direct map write needs root")
def test_as_root_an_explicit_setup_writes_the_maps_directly(tmp_path: Path) -> None:
    uid_map = rootless_idmap(0, [SubIDRange(300000, 65536)])
    setup = UsernsSetup(RootlessMapping("root", 0, 0, uid_map, uid_map), helpers=None)
    target = tmp_path / "owned"

    def inside(path: str) -> tuple[int, str]:
        Path(path).write_text("x")
        os.chown(path, 1000, 1000)
        return os.getuid(), Path("/proc/self/uid_map").read_text()

    uid, seen_map = run_in_userns(inside, str(target), setup=setup)
    assert uid == 0 and seen_map == proc_map_text(uid_map)
    assert os.stat(target).st_uid == 300999 and stat.S_ISREG(os.stat(target).st_mode)


def test_the_child_does_not_outlive_a_parent_killed_during_the_handshake(rootless_user: Any, rootless_tmp_path: Path) -> None:
    helper_dir = rootless_tmp_path / "killer"
    helper_dir.mkdir()
    pid_file = rootless_tmp_path / "child.pid"
    for name in ("newuidmap", "newgidmap"):  # the "helper" records the child's pid and kills the parent
        (helper_dir / name).write_text(f'#!/bin/sh\necho "$1" > {pid_file}\nkill -9 "$PPID"\nsleep 5\n')
        (helper_dir / name).chmod(0o755)
    os.chown(rootless_tmp_path, rootless_user.uid, rootless_user.gid)
    code = PRELUDE + f"run_in_userns(os.getuid, setup=rootless_setup(helper_search_path={str(helper_dir)!r}))\n"
    result = rootless_user.run([sys.executable, "-c", code], timeout=90)
    assert result.returncode == -9
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while _running(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(child)


def _running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return status.rsplit(")", 1)[1].split()[0] != "Z"


def test_a_refused_unshare_reads_as_unshare_failed_with_a_hint() -> None:
    from pallet.storage.userns.errors import UnshareFailed
    from pallet.storage.userns.unshare import _raise_setup_error

    with pytest.raises(UnshareFailed) as caught:  # what the child sends when max_user_namespaces is 0
        _raise_setup_error(b"unshare\x0028\x00unshare(CLONE_NEWUSER|CLONE_NEWNS): No space left on device")
    assert caught.value.errno == 28
    assert "max_user_namespaces" in str(caught.value) and "No space left on device" in str(caught.value)
