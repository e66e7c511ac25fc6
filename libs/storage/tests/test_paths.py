"""config: graph root, run root, driver and options resolved as containers/storage 1.43 does."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from typing import Any
from dataclasses import replace
from pathlib import Path

import pytest

from pallet.storage import errors
from pallet.storage.config import Host, StoreOptions, expand_env_path, resolve_driver, resolve_store_options, with_overrides


def host(tmp_path: Path, uid: int = 0, env: dict[str, str] | None = None, home: str = "", comm: bytes | None = b"systemd\n") -> Host:
    """A host with no system storage.conf unless the test writes ``tmp_path/etc.conf``."""
    init_comm = tmp_path / "comm"
    if comm is not None:
        init_comm.write_bytes(comm)
    return Host(
        env=env or {},
        uid=uid,
        euid=os.geteuid(),
        home=home,
        init_comm=str(init_comm),
        system_confs=(str(tmp_path / "etc.conf"), str(tmp_path / "usr.conf")),
    )


def test_root_defaults(tmp_path: Path) -> None:
    options = resolve_store_options(host(tmp_path))
    assert (options.graph_root, options.run_root, options.driver, options.driver_options) == (
        "/var/lib/containers/storage",
        "/run/containers/storage",
        "",
        (),
    )
    assert not options.rootless and options.config_file is None


def test_root_reads_the_system_file(tmp_path: Path) -> None:
    (tmp_path / "usr.conf").write_text('[storage]\ndriver = "vfs"\ngraphroot = "/usr-root"\n')
    assert resolve_store_options(host(tmp_path)).graph_root == "/usr-root"
    (tmp_path / "etc.conf").write_text(
        '[storage]\ndriver = "overlay2"\ngraphroot = "/srv/g"\nrunroot = "/srv/r"\n'
        '[storage.options]\nadditionalimagestores = ["/ro"]\n'
        '[storage.options.overlay]\nmountopt = "nodev,metacopy=on"\nmount_program = "/usr/bin/fuse-overlayfs"\n'
    )
    options = resolve_store_options(host(tmp_path))
    assert (options.graph_root, options.run_root, options.driver) == ("/srv/g", "/srv/r", "overlay")
    assert options.config_file == str(tmp_path / "etc.conf")
    assert options.mountopt == "nodev,metacopy=on" and options.mount_program == "/usr/bin/fuse-overlayfs"
    assert options.additional_image_stores == ("/ro",)
    assert "overlay.mountopt=nodev,metacopy=on" in options.driver_options


def test_environment_overrides(tmp_path: Path) -> None:
    (tmp_path / "etc.conf").write_text('[storage]\ndriver = "overlay"\n[storage.options.overlay]\nmountopt = "nodev"\n')
    options = resolve_store_options(host(tmp_path, env={"STORAGE_DRIVER": "vfs", "STORAGE_OPTS": "vfs.ignore_chown_errors=true,x=y"}))
    assert options.driver == "vfs" and options.driver_options == ("vfs.ignore_chown_errors=true", "x=y")
    assert resolve_store_options(host(tmp_path, env={"STORAGE_OPTS": ""})).driver_options == ()
    other = tmp_path / "other.conf"
    other.write_text('[storage]\ndriver = "vfs"\ngraphroot = "/only/this"\n')
    options = resolve_store_options(host(tmp_path, env={"CONTAINERS_STORAGE_CONF": str(other)}))
    assert (options.graph_root, options.driver, options.config_file) == ("/only/this", "vfs", str(other))


def test_xdg_config_home_file_replaces_etc_even_for_root(tmp_path: Path) -> None:
    (tmp_path / "etc.conf").write_text('[storage]\ndriver = "overlay"\n')
    xdg = tmp_path / "xdg"
    (xdg / "containers").mkdir(parents=True)
    (xdg / "containers" / "storage.conf").write_text('[storage]\ndriver = "vfs"\n')
    assert resolve_store_options(host(tmp_path, env={"XDG_CONFIG_HOME": str(xdg)})).driver == "vfs"


def test_rootless_defaults_use_the_xdg_dirs(tmp_path: Path) -> None:
    env = {"XDG_DATA_HOME": "/data", "XDG_RUNTIME_DIR": "/run/user/1000", "HOME": "/home/u"}
    options = resolve_store_options(host(tmp_path, uid=1000, env=env, home="/home/u"))
    assert (options.graph_root, options.run_root, options.driver) == ("/data/containers/storage", "/run/user/1000/containers", "vfs")
    assert options.rootless and options.rootless_uid == 1000


def test_rootless_fallbacks_without_xdg(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {"HOME": str(home), "TMPDIR": str(tmp_path / "tmp")}
    options = resolve_store_options(host(tmp_path, uid=1000, env=env, home=str(home)))
    assert options.graph_root == str(home / ".local/share/containers/storage")
    # /proc/1/comm says "systemd\n", which 1.43 never equals to "systemd": the $TMPDIR dir is used
    assert options.run_root == str(tmp_path / "tmp" / "containers-user-1000" / "containers")
    assert oct((tmp_path / "tmp" / "containers-user-1000").stat().st_mode & 0o777) == "0o700"
    (tmp_path / "file").write_text("")
    env["TMPDIR"] = str(tmp_path / "file")  # cannot hold a directory: $HOME/rundir
    assert resolve_store_options(host(tmp_path, uid=1000, env=env, home=str(home))).run_root == str(home / "rundir" / "containers")


def test_rootless_run_user_dir_when_init_comm_is_unreadable(tmp_path: Path) -> None:
    run_user = tmp_path / "run-user"
    (run_user / "1000").mkdir(parents=True, mode=0o700)
    (run_user / "1000").chmod(0o700)
    base = host(tmp_path, uid=1000, env={"HOME": "/h", "TMPDIR": str(tmp_path)}, home="/h", comm=None)
    assert resolve_store_options(replace(base, run_user_base=str(run_user))).run_root == str(run_user / "1000" / "containers")
    (run_user / "1000").chmod(0o755)  # not private: the $TMPDIR fallback
    expected = str(tmp_path / "containers-user-1000" / "containers")
    assert resolve_store_options(replace(base, run_user_base=str(run_user))).run_root == expected


def test_rootless_takes_little_from_the_system_file(tmp_path: Path) -> None:
    (tmp_path / "etc.conf").write_text(
        '[storage]\ndriver = "overlay"\ngraphroot = "/sys/g"\nrootless_storage_path = "$HOME/stores/$UID/$USER"\n'
        '[storage.options]\npull_options = {enable_partial_images = "false"}\n'
        '[storage.options.overlay]\nmountopt = "nodev"\nignore_chown_errors = "true"\n'
    )
    env = {"HOME": "/home/u", "USER": "u", "XDG_RUNTIME_DIR": "/rt"}
    options = resolve_store_options(host(tmp_path, uid=1000, env=env, home="/home/u"))
    assert options.graph_root == "/home/u/stores/1000/u" and options.run_root == "/rt/containers"
    assert options.driver == "overlay" and options.mountopt is None
    assert options.driver_options == ("overlay.ignore_chown_errors=true",)
    assert options.pull_options == (("enable_partial_images", "false"),)
    (tmp_path / "etc.conf").write_text('[storage]\ndriver = "devicemapper"\n')
    assert resolve_store_options(host(tmp_path, uid=1000, env=env, home="/home/u")).driver == "vfs"
    env["STORAGE_DRIVER"] = "overlay2"
    assert resolve_store_options(host(tmp_path, uid=1000, env=env, home="/home/u")).driver == "overlay"


def test_a_rootless_user_file_replaces_the_system_file(tmp_path: Path) -> None:
    (tmp_path / "etc.conf").write_text('[storage]\ndriver = "overlay"\n[storage.options.overlay]\nmountopt = "nodev"\n')
    home = tmp_path / "home"
    (home / ".config" / "containers").mkdir(parents=True)
    (home / ".config" / "containers" / "storage.conf").write_text('[storage]\ndriver = "overlay"\nrunroot = "/my/run"\n')
    env = {"HOME": str(home), "XDG_DATA_HOME": "/d"}
    options = resolve_store_options(host(tmp_path, uid=1000, env=env, home=str(home)))
    assert options.config_file == str(home / ".config/containers/storage.conf")
    assert (options.graph_root, options.run_root, options.mountopt) == ("/d/containers/storage", "/my/run", None)
    (home / ".config" / "containers" / "storage.conf").write_text('[storage]\nrootless_storage_path = "/rsp/$UID"\n')
    assert resolve_store_options(host(tmp_path, uid=1000, env=env, home=str(home))).graph_root == "/rsp/1000"


def test_expansion_resolves_symlinks_and_cleans(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "link")
    assert expand_env_path("$D/link", 5, {"D": str(tmp_path)}) == str(tmp_path / "real")
    assert expand_env_path("/a/${X}/../b/$UID/$NOPE/", 5, {"X": "x"}) == "/a/b/5"


def test_bad_toml_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "etc.conf").write_text("[storage\n")
    with pytest.raises(errors.ConfigError):
        resolve_store_options(host(tmp_path))


def test_driver_resolution(tmp_path: Path) -> None:
    options = StoreOptions(graph_root=str(tmp_path), run_root="/r")
    filesystems = tmp_path / "filesystems"
    filesystems.write_text("nodev\tproc\nnodev\toverlay\n")
    assert resolve_driver(options, proc_filesystems=str(filesystems)) == "overlay"
    filesystems.write_text("nodev\tproc\n")
    assert resolve_driver(options, proc_filesystems=str(filesystems)) == "vfs"
    (tmp_path / "vfs").mkdir()  # never counts as a prior driver
    (tmp_path / "btrfs").mkdir()
    assert resolve_driver(options, proc_filesystems=str(filesystems)) == "btrfs"
    with pytest.raises(errors.DriverConflict):
        resolve_driver(with_overrides(options, driver="overlay"))
    (tmp_path / "overlay").mkdir()
    with pytest.raises(errors.DriverConflict):
        resolve_driver(options)


def test_tool_flags_override(tmp_path: Path) -> None:
    options = resolve_store_options(host(tmp_path))
    changed = with_overrides(options, root="/g", runroot="/r", driver="overlay2", driver_options=("overlay.mountopt=nodev",))
    assert (changed.graph_root, changed.run_root, changed.driver, changed.mountopt) == ("/g", "/r", "overlay", "nodev")
    with pytest.raises(AttributeError):
        changed.graph_root = "/x"  # type: ignore[misc]


# -- against podman ---------------------------------------------------------------------------


def podman_store(run: Callable[[list[str]], subprocess.CompletedProcess[bytes]]) -> dict[str, Any]:
    result = run(["podman", "info", "--format", "json"])
    assert result.returncode == 0, result.stderr.decode()
    store: dict[str, Any] = json.loads(result.stdout)["store"]
    return store


def rootless_host(user: Any, env: dict[str, str]) -> Host:
    return Host(env=user.environment(env), uid=user.uid, euid=user.uid, home=env["HOME"])


def test_rootless_resolution_matches_podman(rootless_user: Any, rootless_tmp_path: Path, podman: str) -> None:
    home = rootless_tmp_path
    env = {"HOME": str(home)}
    run = lambda argv: rootless_user.run(argv, env=env, cwd=home)  # noqa: E731
    store = podman_store(run)
    ours = resolve_store_options(rootless_host(rootless_user, env))
    assert (ours.graph_root, ours.run_root, ours.driver) == (store["graphRoot"], store["runRoot"], store["graphDriverName"])
    conf = home / "conf" / "storage.conf"
    conf.parent.mkdir()
    conf.write_text('[storage]\ndriver = "vfs"\nrootless_storage_path = "$HOME/rsp/$UID/$USER"\n')
    os.chown(conf.parent, rootless_user.uid, rootless_user.gid)
    env.update(CONTAINERS_STORAGE_CONF=str(conf), XDG_DATA_HOME=str(home / "data"))
    store = podman_store(run)
    ours = resolve_store_options(rootless_host(rootless_user, env))
    assert ours.graph_root == f"{home}/rsp/{rootless_user.uid}/{rootless_user.name}"
    assert (ours.graph_root, ours.run_root, ours.driver) == (store["graphRoot"], store["runRoot"], store["graphDriverName"])


def test_root_resolution_matches_podman(tmp_path: Path, podman: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    short_run = tempfile.mkdtemp(prefix="plt-rr-", dir="/tmp")  # podman refuses run roots over 50 characters
    try:
        conf = tmp_path / "storage.conf"
        conf.write_text(f'[storage]\ndriver = "overlay2"\ngraphroot = "{tmp_path}/g"\nrunroot = "{short_run}"\n')
        env = {**os.environ, "CONTAINERS_STORAGE_CONF": str(conf), "STORAGE_DRIVER": "vfs"}
        tmpdir = ["--tmpdir", f"{short_run}/libpod"]  # not the shared /run/libpod of other workers' podmans
        store = podman_store(lambda argv: subprocess.run([argv[0], *tmpdir, *argv[1:]], env=env, capture_output=True, timeout=120))
        ours = resolve_store_options(Host(env=env, uid=0, euid=0, home="/root"))
        assert (ours.graph_root, ours.run_root, ours.driver) == (store["graphRoot"], store["runRoot"], store["graphDriverName"])
    finally:
        shutil.rmtree(short_run, ignore_errors=True)


def test_the_current_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("_CONTAINERS_ROOTLESS_UID", "4242")
    monkeypatch.setenv("HOME", "/home/someone")
    current = Host.current()
    assert (current.uid, current.euid, current.home, current.rootless) == (4242, os.geteuid(), "/home/someone", True)
    monkeypatch.delenv("_CONTAINERS_ROOTLESS_UID")
    assert Host.current().uid == os.geteuid()
