"""OCI bundles for runtime tests: a busybox-static rootfs and crun's default config, with changes.

- :func:`write_bundle` makes ``path/rootfs`` (``/bin/busybox`` and a link per applet, the usual
  directories, /etc/passwd and /etc/group with ``user`` 1000 and ``extra`` 2000) and
  ``path/config.json``: ``crun spec`` (``--rootless``'s for a rootless owner) without a terminal,
  read-write, without the cgroup mount, running ``sh -c SCRIPT``, then edited by a change;
- changes: :func:`set_field`, :func:`chain`, :func:`without_namespace`, :func:`with_namespace`,
  :func:`user_namespace`, :func:`capability_sets`;
- :func:`normalise` makes two runs' outputs comparable (mount IDs, anonymous devices, peer groups).
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

PALLET_RUNTIME = Path(sys.executable).parent / "pallet-runtime"
BUSYBOX = Path("/bin/busybox")
ROOTFS_DIRS = ("proc", "sys", "dev", "tmp", "etc", "root", "home", "var", "mnt", "data")

Config = dict[str, Any]
Change = Callable[[Config, Path], None]


def base_config(script: str, rootless: bool = False) -> Config:
    config: Config = json.loads(crun_default_spec(rootless))
    config["process"]["terminal"] = False
    config["process"]["args"] = ["sh", "-c", script]
    config["root"]["readonly"] = False
    config["mounts"] = [m for m in config["mounts"] if m["type"] != "cgroup"]
    return config


@functools.cache
def crun_default_spec(rootless: bool) -> str:
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


def write_bundle(path: Path, script: str, change: Change | None = None, owner: tuple[int, int] | None = None) -> None:
    """A fresh bundle at ``path`` running ``script``; ``owner``: a rootless bundle owned by that uid and gid."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    make_rootfs(path / "rootfs")
    config = base_config(script, rootless=owner is not None)
    if change is not None:
        change(config, path)
    (path / "config.json").write_text(json.dumps(config))
    if owner is not None:
        for directory, names, files in os.walk(path):
            for name in [directory, *(os.path.join(directory, n) for n in names + files)]:
                os.lchown(name, *owner)


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


# --- changes to a config

def set_field(path: str, value: Any) -> Change:
    def change(config: Config, bundle: Path) -> None:
        target = config
        keys = path.split(".")
        for key in keys[:-1]:
            target = target.setdefault(key, {})
        target[keys[-1]] = value
    return change


def chain(*changes: Change) -> Change:
    def change(config: Config, bundle: Path) -> None:
        for each in changes:
            each(config, bundle)
    return change


def without_namespace(kind: str) -> Change:
    def change(config: Config, bundle: Path) -> None:
        config["linux"]["namespaces"] = [ns for ns in config["linux"]["namespaces"] if ns["type"] != kind]
    return change


def with_namespace(kind: str, path: str | None = None) -> Change:
    def change(config: Config, bundle: Path) -> None:
        namespaces = [ns for ns in config["linux"]["namespaces"] if ns["type"] != kind]
        namespaces.append({"type": kind, **({"path": path} if path else {})})
        config["linux"]["namespaces"] = namespaces
    return change


def user_namespace(uid: int = 0, gid: int = 0) -> Change:
    mapping = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    return chain(
        with_namespace("user"), set_field("linux.uidMappings", mapping), set_field("linux.gidMappings", mapping),
        set_field("process.user", {"uid": uid, "gid": gid}),
    )


def capability_sets(**sets: list[str]) -> Change:
    return set_field("process.capabilities", {name: sets.get(name, []) for name in
                                          ("bounding", "effective", "inheritable", "permitted", "ambient")})
