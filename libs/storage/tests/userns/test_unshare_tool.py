"""``unshare`` (the tools' ``unshare`` command) beside the real ``buildah unshare`` and ``podman unshare``.

The same shell script runs, as the unprivileged test user, under our
:func:`pallet.storage.userns.command.unshare` and under the peer; it prints
what a command sees in the namespace (ids, maps, setgroups, the variables
the tools set) and exits 3. The outputs and exit statuses must be equal.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pallet.storage.userns.command import unshare
from pallet.storage.userns.errors import NoUnshareCommand, UnshareNeedsRootless
from pallet_testing.users import end_pause_process, make_private_home

pytestmark = [pytest.mark.rootless, pytest.mark.interop]

SCRIPT = (
    "id -u; id -G; cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups; "
    "env | grep -E '^(_CONTAINERS_|BUILDAH_ISOLATION=|TMPDIR=|CONTAINERS_GRAPHROOT=|CONTAINERS_RUNROOT=|XDG_CONFIG_HOME=)'"
    " | sort; exit 3"
)
OURS = """
import sys
from pallet.storage.config import Host, resolve_store_options
from pallet.storage.userns.command import unshare
style = sys.argv[1]
store = resolve_store_options(Host.current()) if style == "podman" else None
sys.exit(unshare(sys.argv[2:], style=style, store=store))
"""


@pytest.fixture
def private_env(rootless_user: Any, rootless_tmp_path: Path) -> Iterator[dict[str, str]]:
    """A private HOME and XDG_RUNTIME_DIR (podman's pause process is then the test's own, ended at the end)."""
    yield make_private_home(rootless_tmp_path, rootless_user)
    end_pause_process(rootless_tmp_path / "run")


def _ours(user: Any, style: str, *command: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    done = user.run([sys.executable, "-c", OURS, style, *command], env=env, timeout=90)
    return done.returncode, done.stdout.decode() + done.stderr.decode()


def test_buildah_unshare_sees_the_same(rootless_user: Any, buildah: str) -> None:
    theirs = rootless_user.run([buildah, "unshare", "sh", "-c", SCRIPT], timeout=90)
    status, out = _ours(rootless_user, "buildah", "sh", "-c", SCRIPT)
    assert (status, out) == (theirs.returncode, theirs.stdout.decode()) == (3, out)
    lines = out.splitlines()
    assert lines[0] == "0" and "BUILDAH_ISOLATION=rootless" in lines and "_CONTAINERS_USERNS_CONFIGURED=done" in lines
    kept = rootless_user.run([sys.executable, "-c", OURS, "buildah", "sh", "-c", "echo $BUILDAH_ISOLATION $TMPDIR"],
                             env={"BUILDAH_ISOLATION": "chroot", "TMPDIR": "/tmp"}, timeout=90)
    theirs = rootless_user.run([buildah, "unshare", "sh", "-c", "echo $BUILDAH_ISOLATION $TMPDIR"],
                               env={"BUILDAH_ISOLATION": "chroot", "TMPDIR": "/tmp"}, timeout=90)
    assert kept.stdout == theirs.stdout == b"chroot /tmp\n"


def test_no_command_runs_shell_or_fails_as_buildah_does(rootless_user: Any, buildah: str) -> None:
    shell = {"SHELL": "/bin/echo"}
    theirs = rootless_user.run([buildah, "unshare"], env=shell, timeout=90)
    assert _ours(rootless_user, "buildah", env=shell) == (theirs.returncode, theirs.stdout.decode()) == (0, "\n")
    theirs = rootless_user.run([buildah, "unshare"], timeout=90)  # no SHELL in the user's environment
    assert theirs.returncode == 1 and b"no command specified" in theirs.stderr
    status, out = _ours(rootless_user, "buildah")
    assert status == 1 and "NoUnshareCommand" in out and "no command specified" in out


def test_podman_unshare_sees_the_same(rootless_user: Any, podman: str, private_env: dict[str, str]) -> None:
    # podman sets XDG_CONFIG_HOME to ~/.config only when that exists (and its first run makes it): ours runs first
    for config_dir in (False, True):
        if config_dir:
            rootless_user.run(["mkdir", "-p", f"{private_env['HOME']}/.config"], timeout=30)
        status, out = _ours(rootless_user, "podman", "sh", "-c", SCRIPT, env=private_env)
        theirs = rootless_user.run([podman, "unshare", "sh", "-c", SCRIPT], env=private_env, timeout=90)
        lines = out.splitlines()
        assert lines == theirs.stdout.decode().splitlines()
        assert status == theirs.returncode == 3
        assert f"CONTAINERS_GRAPHROOT={private_env['HOME']}/.local/share/containers/storage" in lines
        assert (f"XDG_CONFIG_HOME={private_env['HOME']}/.config" if config_dir else "XDG_CONFIG_HOME=") in lines


def test_errors_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(NoUnshareCommand):
        unshare([], env={"PATH": "/usr/bin"})
    if os.geteuid() == 0:
        with pytest.raises(UnshareNeedsRootless, match="please use unshare with rootless"):
            unshare(["true"])
