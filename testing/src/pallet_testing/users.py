"""The unprivileged user that rootless tests run as.

As root, ``ensure_rootless_user`` creates the user (once, under a lock that
pytest-xdist workers share) with /etc/subuid and /etc/subgid ranges and an
XDG_RUNTIME_DIR it owns, as a rootless podman user has. When the tests
themselves run unprivileged, the current user is the rootless user.
"""

from __future__ import annotations

import fcntl
import os
import pwd
import signal
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

USER_NAME = "pallet-test"
SUBID_START = 200_000
SUBID_COUNT = 65_536
LOCK_PATH = Path("/tmp/pallet-testing-user.lock")


class RootlessUnavailable(RuntimeError):
    pass


@dataclass(frozen=True)
class RootlessUser:
    name: str
    uid: int
    gid: int
    home: Path
    runtime_dir: Path

    def environment(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment a login of this user would have, with the venv's bin on PATH."""
        venv_bin = str(Path(sys.executable).parent)
        env = {
            "HOME": str(self.home), "USER": self.name, "LOGNAME": self.name,
            "XDG_RUNTIME_DIR": str(self.runtime_dir),
            "PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            "LANG": "C.UTF-8",
        }
        env.update(extra or {})
        return env

    def run(self, args: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None,
            input: bytes | None = None, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
        """Run ``args`` as this user (from root: switching uid, gid and groups)."""
        switch = os.geteuid() == 0 and self.uid != 0
        return subprocess.run(
            list(args), env=self.environment(env), cwd=cwd or self.home, input=input, capture_output=True,
            timeout=timeout, user=self.uid if switch else None, group=self.gid if switch else None,
            extra_groups=[] if switch else None,
        )


def _has_subid_range(path: Path, name: str, uid: int) -> bool:
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return False
    return any(line.split(":")[0] in (name, str(uid)) for line in lines if line.count(":") == 2)


def _create_user() -> None:
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    result = subprocess.run([useradd, "--create-home", "--shell", "/bin/sh", USER_NAME], capture_output=True, text=True)
    if result.returncode not in (0, 9):  # 9: exists already
        raise RootlessUnavailable(f"useradd {USER_NAME} failed: {result.stderr.strip()}")


def ensure_rootless_user() -> RootlessUser:
    if os.geteuid() != 0:
        entry = pwd.getpwuid(os.geteuid())
        runtime = Path(os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{entry.pw_uid}")
        return RootlessUser(entry.pw_name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir), runtime)
    if not (Path("/usr/bin/newuidmap").exists() and Path("/usr/bin/newgidmap").exists()):
        raise RootlessUnavailable("newuidmap/newgidmap are missing (Debian package: uidmap)")
    with LOCK_PATH.open("a") as lock:
        fcntl.lockf(lock, fcntl.LOCK_EX)
        try:
            entry = pwd.getpwnam(USER_NAME)
        except KeyError:
            _create_user()
            entry = pwd.getpwnam(USER_NAME)
        for path in (Path("/etc/subuid"), Path("/etc/subgid")):
            if not _has_subid_range(path, USER_NAME, entry.pw_uid):
                with path.open("a") as subids:
                    subids.write(f"{USER_NAME}:{SUBID_START}:{SUBID_COUNT}\n")
        runtime = Path(f"/run/user/{entry.pw_uid}")
        runtime.mkdir(parents=True, exist_ok=True)
        os.chown(runtime, entry.pw_uid, entry.pw_gid)
        runtime.chmod(0o700)
    return RootlessUser(entry.pw_name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir), runtime)


def make_private_home(top: Path, user: RootlessUser | None) -> dict[str, str]:
    """``top/home`` (0755) and ``top/run`` (0700), owned by ``user`` (None: the caller), as HOME and XDG_RUNTIME_DIR.

    With its own XDG_RUNTIME_DIR, the rootless podman a test runs keeps its
    pause process (and pause.pid) to the test: see :func:`end_pause_process`.
    """
    for sub, mode in (("home", 0o755), ("run", 0o700)):
        path = top / sub
        path.mkdir(mode=mode)
        path.chmod(mode)
        if os.geteuid() == 0 and user is not None:
            os.chown(path, user.uid, user.gid)
    return {"HOME": str(top / "home"), "XDG_RUNTIME_DIR": str(top / "run")}


def end_pause_process(runtime_dir: Path) -> None:
    """Kill the pause process rootless podman left for ``runtime_dir`` (its XDG_RUNTIME_DIR or --tmpdir), if any."""
    for pid_file in runtime_dir.glob("**/pause.pid"):
        try:
            os.kill(int(pid_file.read_text().strip()), signal.SIGKILL)
        except (ValueError, ProcessLookupError):
            pass
