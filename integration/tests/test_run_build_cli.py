"""pallet-run and pallet-build beside podman and buildah: ``images`` on one store, ``unshare``, global storage flags.

Images are put in a store by pallet-transfer (``containers-storage:``) and
named again by podman (``podman tag``); then ``pallet-run images`` and
``podman images`` (and ``pallet-build images``, ``buildah images``) must list
the same IDs, names, digests and sizes. As root with explicit
``--root``/``--runroot``/``--storage-driver`` flags; as the rootless test user
in the default rootless store under a private HOME and XDG_RUNTIME_DIR (the
pause process podman starts there is killed by its pid at the end).
``unshare`` is compared as the rootless user (exit statuses, environment);
as root both tools refuse as their peers do.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pallet_testing.push import push_image
from pallet_testing.registry import RegistryServer
from pallet_testing.users import RootlessUser, make_private_home, end_pause_process

pytestmark = [pytest.mark.interop]

BIN = Path(sys.executable).parent
PALLET = {name: str(BIN / name) for name in ("pallet-run", "pallet-build", "pallet-transfer")}


@dataclass
class Side:
    """Who runs the tools: root (``user`` None, explicit vfs store) or the test user (its default store)."""

    user: RootlessUser | None
    top: Path
    run_root: Path  # short: podman refuses run roots of 50 characters or more

    @property
    def env(self) -> dict[str, str]:
        return {"HOME": str(self.top / "home"), "XDG_RUNTIME_DIR": str(self.top / "run")}

    @property
    def store_flags(self) -> list[str]:
        if self.user is not None:
            return []
        return ["--root", str(self.top / "graph"), "--runroot", str(self.run_root), "--storage-driver", "vfs"]

    def run(self, program: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [PALLET.get(program) or program, *args]
        if self.user is None:
            done = subprocess.run(argv, env={**os.environ, **self.env}, cwd=self.top, capture_output=True, timeout=180)
        else:
            done = self.user.run(argv, env=self.env, cwd=self.top, timeout=180)
        result = subprocess.CompletedProcess(argv, done.returncode, done.stdout.decode(), done.stderr.decode())
        if check:
            assert result.returncode == 0, f"{argv} exited {result.returncode}: {result.stderr}"
        return result

    def tool(self, program: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``program`` with the store flags (and, for podman as root, a private --tmpdir)."""
        extra = ["--tmpdir", str(self.run_root / "libpod")] if program == "podman" and self.user is None else []
        return self.run(program, *self.store_flags, *extra, *args, check=check)

    def spec(self, name: str) -> str:
        if self.user is not None:
            return f"containers-storage:{name}"
        return f"containers-storage:[vfs@{self.top / 'graph'}+{self.run_root}]{name}"


@pytest.fixture(params=["root", "rootless"])
def side(request: pytest.FixtureRequest, rootless_tmp_path: Path, podman: str, buildah: str) -> Iterator[Side]:
    user: RootlessUser | None = None
    if request.param == "root":
        if os.geteuid() != 0:
            pytest.skip("the root side needs root")
    else:
        user = request.getfixturevalue("rootless_user")
    make_private_home(rootless_tmp_path, user)
    run_root = Path(tempfile.mkdtemp(prefix="pallet-rb-", dir="/tmp"))
    yield Side(user, rootless_tmp_path, run_root)
    end_pause_process(rootless_tmp_path / "run")  # the one the test's podman started (private XDG_RUNTIME_DIR)
    shutil.rmtree(run_root, ignore_errors=True)


@pytest.fixture(scope="module")
def pushed(registry: RegistryServer, test_images: Any) -> dict[str, str]:
    push_image(registry, "runbuild/single", test_images.single_layer, "v1")
    push_image(registry, "runbuild/multi", test_images.multi_layer, "v1")
    return {"single": f"{registry.host}/runbuild/single:v1", "multi": f"{registry.host}/runbuild/multi:v1"}


def _fill(side: Side, pushed: dict[str, str]) -> None:
    for key, name in (("single", "localhost/rb/single:v1"), ("multi", "localhost/rb/multi:v1")):
        side.run("pallet-transfer", "copy", "--quiet", "--src-tls-verify=false", f"docker://{pushed[key]}", side.spec(name))
    side.tool("podman", "tag", "localhost/rb/multi:v1", "localhost/rb/other:v2")


def _columns(table: str) -> list[list[str]]:
    """The table's rows without the CREATED column (time passes between two listings)."""
    rows = [re.split(r"\s{2,}", line.strip()) for line in table.splitlines()]
    return [row[:-2] + row[-1:] for row in rows]


KEYS = ("Id", "ParentId", "RepoDigests", "Size", "VirtualSize", "Labels", "Containers", "Names", "Digest", "History",
        "Dangling", "Created", "CreatedAt")


@pytest.mark.rootless
def test_pallet_run_images_lists_what_podman_lists(side: Side, pushed: dict[str, str], test_images: Any) -> None:
    _fill(side, pushed)
    ours = json.loads(side.tool("pallet-run", "images", "--format", "json").stdout)
    theirs = json.loads(side.tool("podman", "images", "--format", "json").stdout)
    assert [[entry.get(key) for key in KEYS] for entry in ours] == [[entry.get(key) for key in KEYS] for entry in theirs]
    assert list(ours[0]) == list(theirs[0])  # the keys in podman's order
    assert {entry["Id"] for entry in ours} == {
        test_images.single_layer.config.digest.split(":", 1)[1], test_images.multi_layer.config.digest.split(":", 1)[1]}
    for flags in (["-q"], ["-q", "--no-trunc"], ["-a", "--quiet"], ["-q", "localhost/rb/multi"], ["-q", "single"],
                  ["-q", "other:v2"], ["-q", "nothere"]):
        assert side.tool("pallet-run", "images", *flags).stdout == side.tool("podman", "images", *flags).stdout, flags
    for flags in ([], ["--no-trunc"], ["--digests", "-n"]):
        ours_table = side.tool("pallet-run", "images", *flags).stdout
        assert _columns(ours_table) == _columns(side.tool("podman", "images", *flags).stdout), flags
        assert len(ours_table.splitlines()) == 3 + (not flags or flags == ["--no-trunc"])


@pytest.mark.rootless
def test_pallet_build_images_lists_what_buildah_lists(side: Side, pushed: dict[str, str]) -> None:
    _fill(side, pushed)
    ours = json.loads(side.tool("pallet-build", "images", "--json").stdout)
    theirs = json.loads(side.tool("buildah", "images", "--json").stdout)
    for entry in ours + theirs:
        del entry["createdat"]  # "N seconds ago": time passes
    assert ours == theirs and len(ours) == 2
    for flags in (["-q"], ["-q", "--no-trunc"], ["--json", "--no-trunc", "-a"], ["-q", "rb/other:v2"]):
        ours_out = side.tool("pallet-build", "images", *flags).stdout
        theirs_out = side.tool("buildah", "images", *flags).stdout
        if "--json" in flags:
            ours_out, theirs_out = (re.sub(r'"createdat": "[^"]*"', "", out) for out in (ours_out, theirs_out))
        assert ours_out == theirs_out, flags
    for flags in ([], ["--no-trunc", "--noheading"]):
        assert _columns(side.tool("pallet-build", "images", *flags).stdout) == _columns(
            side.tool("buildah", "images", *flags).stdout), flags
    missing = side.tool("pallet-build", "images", "localhost/rb/multi", check=False)  # buildah: no :latest of it
    assert (missing.returncode, missing.stderr) == (125, "Error: localhost/rb/multi: image not known\n")
    assert side.tool("buildah", "images", "localhost/rb/multi", check=False).returncode == 125


@pytest.mark.parametrize("side", ["root"], indirect=True)  # explicit store flags; the rootless side uses the default store
def test_storage_opt_and_driver_flags_open_the_store_podman_opens(side: Side, pushed: dict[str, str]) -> None:
    graph = side.top / "graph"
    flags = ["--root", str(graph), "--runroot", str(side.run_root), "--storage-driver", "vfs", "--storage-opt", ""]
    side.run("pallet-transfer", "copy", "--quiet", "--src-tls-verify=false", f"docker://{pushed['single']}",
             side.spec("localhost/rb/single:v1"))
    ours = side.run("pallet-run", "images", "-q", *flags).stdout  # the flags after the subcommand too
    assert ours == side.run("podman", *flags, "--tmpdir", str(side.run_root / "libpod"), "images", "-q").stdout != ""
    assert side.run("pallet-build", *flags, "images", "-q").stdout == ours
    other = side.run("pallet-run", "--root", str(graph), "--runroot", str(side.run_root), "--storage-driver", "overlay",
                     "images", "-q")
    assert other.stdout == ""  # overlay's records are its own (a vfs directory is no prior driver, as in c/storage)


UNSHARE_CASES = [
    ("false",),
    ("sh", "-c", "exit 7"),
    ("sh", "-c", "kill -9 $$"),
    ("/nonexistent",),
    ("/etc/passwd",),
    ("id", "-u"),
]


@pytest.mark.rootless
@pytest.mark.parametrize(("ours", "peer"), [("pallet-run", "podman"), ("pallet-build", "buildah")])
def test_unshare_exits_as_the_peer(side: Side, ours: str, peer: str) -> None:
    if side.user is None:  # as root both refuse: podman 125 with its message, buildah 1
        theirs = side.run(peer, "unshare", "true", check=False)
        mine = side.run(ours, "unshare", "true", check=False)
        assert mine.returncode == theirs.returncode == (125 if peer == "podman" else 1)
        assert mine.stderr.startswith("Error: please use unshare with rootless")
        return
    for command in UNSHARE_CASES:
        theirs = side.run(peer, "unshare", *command, check=False)
        mine = side.run(ours, "unshare", *command, check=False)
        assert (mine.returncode, mine.stdout) == (theirs.returncode, theirs.stdout), command
        if command[0].startswith("/"):  # cannot be executed: one line that says why
            assert mine.stderr.startswith("Error: cannot execute"), (command, mine.stderr)
    script = ("env | grep -E '^(_CONTAINERS_|BUILDAH_ISOLATION=|TMPDIR=|CONTAINERS_GRAPHROOT=|CONTAINERS_RUNROOT=)' | sort;"
              " cat /proc/self/uid_map")
    mine = side.run(ours, "unshare", "sh", "-c", script)
    assert mine.stdout == side.run(peer, "unshare", "sh", "-c", script).stdout
    assert "_CONTAINERS_USERNS_CONFIGURED=done" in mine.stdout.splitlines()
