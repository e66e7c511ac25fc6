"""podman (through conmon) drives pallet-runtime: ``podman --runtime .venv/bin/pallet-runtime``.

The image is a busybox-static rootfs imported into a private store (vfs, no
registry); podman's own seccomp profile, capabilities and mounts are what the
runtime gets, so this is the config a real podman writes, not one of ours.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pallet_testing.bundles import PALLET_RUNTIME, make_rootfs

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(os.geteuid() != 0, reason="runs podman as root with a private store"),
]
IMAGE = "localhost/pallet-runtime-test:latest"


@pytest.fixture
def podman_with_pallet(podman: str, tmp_path: Path) -> Iterator[list[str]]:
    runroot = Path(tempfile.mkdtemp(prefix="pallet-rr-"))  # podman refuses a runroot over 50 characters
    argv = [podman, "--root", str(tmp_path / "root"), "--runroot", str(runroot),
            "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "none",
            "--runtime", str(PALLET_RUNTIME)]
    make_rootfs(tmp_path / "rootfs")
    subprocess.run(["tar", "-C", str(tmp_path / "rootfs"), "-cf", str(tmp_path / "rootfs.tar"), "."], check=True)
    imported = subprocess.run([*argv, "import", str(tmp_path / "rootfs.tar"), IMAGE], capture_output=True, text=True)
    assert imported.returncode == 0, imported.stderr
    yield argv
    subprocess.run([*argv, "rm", "--all", "--force", "--time", "0"], capture_output=True, timeout=120)
    subprocess.run([*argv, "rmi", "--all", "--force"], capture_output=True, timeout=120)
    shutil.rmtree(runroot, ignore_errors=True)


def podman_run(argv: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*argv, *args], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def test_podman_run_with_its_seccomp_profile_and_capabilities(podman_with_pallet: list[str]) -> None:
    result = podman_run(podman_with_pallet, "run", "--rm", "--net", "none", IMAGE, "sh", "-c",
                        "echo hello; id -u; grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; exit 3")
    assert result.returncode == 3, result.stderr
    assert result.stdout.splitlines() == ["hello", "0", "NoNewPrivs:\t0", "Seccomp:\t2"]


def test_podman_detached_exec_stop_and_rm(podman_with_pallet: list[str]) -> None:
    started = podman_run(podman_with_pallet, "run", "--detach", "--name", "pallet-w", "--net", "none", IMAGE,
                         "sleep", "100")
    assert started.returncode == 0, started.stderr
    executed = podman_run(podman_with_pallet, "exec", "pallet-w", "sh", "-c", "echo exec-ok; [ $$ -ne 1 ] && echo pid")
    assert (executed.returncode, executed.stdout) == (0, "exec-ok\npid\n"), executed.stderr
    listed = podman_run(podman_with_pallet, "ps", "--format", "{{.Names}} {{.Status}}")
    assert listed.stdout.startswith("pallet-w Up"), listed.stdout  # podman asked pallet-runtime state
    assert podman_run(podman_with_pallet, "stop", "--time", "1", "pallet-w").returncode == 0
    assert podman_run(podman_with_pallet, "rm", "pallet-w").returncode == 0
